"""Request figures kept in plain Python numbers, turned into Prometheus families at scrape.

prometheus-client's own ``Histogram.observe`` takes a lock and walks its buckets: about
2 us. A request here costs one ``bisect`` and a few additions instead; the collector builds
prometheus-client's metric families from these numbers when ``/metrics`` is read, and
prometheus-client writes the text format.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Sequence

from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric

# Seconds. Finer than prometheus-client's defaults below 10 ms, where a Python server lives.
DEFAULT_BUCKETS: tuple[float, ...] = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
_METHODS = frozenset(
    ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE")
)


def bounded_method(method: str) -> str:
    """``method`` if it is a standard one, else ``OTHER``: a label set a client can't grow."""
    return method if method in _METHODS else "OTHER"


class Latency:
    """One histogram's numbers: bucket counts (not cumulative), the sum and the count."""

    __slots__ = ("bounds", "buckets", "count", "sum")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = bounds
        self.buckets = [0] * (len(bounds) + 1)  # the last one is +Inf
        self.count = 0
        self.sum = 0.0

    def observe(self, seconds: float) -> None:
        self.buckets[bisect_left(self.bounds, seconds)] += 1
        self.count += 1
        self.sum += seconds

    def cumulative(self) -> list[tuple[str, float]]:
        """``(le, count)`` pairs as Prometheus wants them, +Inf last."""
        total = 0
        out = []
        for bound, n in zip([*map(repr, self.bounds), "+Inf"], self.buckets, strict=True):
            total += n
            out.append((bound, float(total)))
        return out


class HttpRequestMetrics:
    """Requests of one HTTP server by route template, method and status, with a latency
    histogram per route. ``record`` is the whole cost on the request path."""

    __slots__ = ("__weakref__", "buckets", "counts", "latency", "server")

    def __init__(self, server: str, buckets: Sequence[float] = DEFAULT_BUCKETS) -> None:
        self.server = server
        self.buckets = tuple(buckets)
        self.counts: dict[tuple[str, str, int], int] = {}
        self.latency: dict[str, Latency] = {}

    def record(self, route: str, method: str, status: int, seconds: float) -> None:
        """Count one answered request. ``route`` must be a template (bounded), never a path."""
        key = (route, method, status)
        counts = self.counts
        counts[key] = counts.get(key, 0) + 1
        latency = self.latency.get(route)
        if latency is None:
            latency = self.latency[route] = Latency(self.buckets)
        latency.observe(seconds)

    def collect(self, requests: CounterMetricFamily, durations: HistogramMetricFamily) -> None:
        for (route, method, status), n in list(self.counts.items()):
            requests.add_metric([self.server, route, method, str(status)], n)
        for route, latency in list(self.latency.items()):
            durations.add_metric([self.server, route], latency.cumulative(), sum_value=latency.sum)


class ServiceMetrics:
    """Requests, errors and latency of one named service (see ``MetricsLayer``)."""

    __slots__ = ("__weakref__", "errors", "latency", "name", "requests")

    def __init__(self, name: str, buckets: Sequence[float] = DEFAULT_BUCKETS) -> None:
        self.name = name
        self.requests = 0
        self.errors = 0
        self.latency = Latency(tuple(buckets))


def service_families(stores: Iterable[ServiceMetrics]) -> list[Metric]:
    requests = CounterMetricFamily(
        "runtime_service_requests", "Requests through a MetricsLayer", labels=["service"]
    )
    errors = CounterMetricFamily(
        "runtime_service_errors",
        "Requests through a MetricsLayer that raised an exception",
        labels=["service"],
    )
    durations = HistogramMetricFamily(
        "runtime_service_request_duration_seconds",
        "Time from call to response or error, through a MetricsLayer",
        labels=["service"],
    )
    for store in stores:
        requests.add_metric([store.name], store.requests)
        errors.add_metric([store.name], store.errors)
        durations.add_metric([store.name], store.latency.cumulative(), sum_value=store.latency.sum)
    return [requests, errors, durations]


def http_families(stores: Iterable[HttpRequestMetrics]) -> list[Metric]:
    requests = CounterMetricFamily(
        "runtime_http_requests",
        "HTTP requests answered, by route template, method and status",
        labels=["server", "route", "method", "status"],
    )
    durations = HistogramMetricFamily(
        "runtime_http_request_duration_seconds",
        "Time from a request's head to its response's last byte, by route template",
        labels=["server", "route"],
    )
    for store in stores:
        store.collect(requests, durations)
    return [requests, durations]
