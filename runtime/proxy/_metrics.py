"""The proxy's own figures, per route and per upstream endpoint, read at scrape time.

Each request records a few additions here (as the HTTP server's route figures do); the
collector turns them into prometheus-client families when ``/metrics`` is read. The stores
belong to the running proxy process, not to one config: a reload keeps counting.

Families (labels are bounded by the config and the discovered endpoints, never by a client):

* ``runtime_proxy_requests{route, upstream, outcome}``: requests that took a route, by how
  they ended (``2xx``..``5xx`` from the upstream, or the proxy's own answer: ``shed``,
  ``no_endpoint``, ``timeout``, ``upstream_error``).
* ``runtime_proxy_retries{route}``: tries after the first.
* ``runtime_proxy_upstream_requests{upstream, endpoint, outcome}``: tries sent to one
  endpoint, by status class or ``error``.
* ``runtime_proxy_upstream_duration_seconds{upstream, endpoint}``: a try's time to the
  response head (histogram).
* ``runtime_proxy_upstream_endpoints{upstream, state}``: endpoints ``ready`` and ``ejected``
  (failure accrual) now.
* ``runtime_proxy_upstream_in_flight{upstream}``: exchanges running now (bodies included).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from ..metrics import DEFAULT_BUCKETS
from ..metrics._record import Latency

_CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx")


def status_class(status: int) -> str:
    """``"2xx"`` for 204: a label with five values."""
    return _CLASSES[min(max(status // 100, 1), 5) - 1]


class EndpointStats:
    """One endpoint's tries: outcomes and time to the head."""

    __slots__ = ("endpoint", "latency", "outcomes", "upstream")

    def __init__(self, upstream: str, endpoint: str) -> None:
        self.upstream = upstream
        self.endpoint = endpoint
        self.outcomes: dict[str, int] = {}
        self.latency = Latency(DEFAULT_BUCKETS)

    def record(self, outcome: str, seconds: float) -> None:
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1
        self.latency.observe(seconds)


class RouteStats:
    """One route's requests by outcome, and its retries."""

    __slots__ = ("name", "outcomes", "retries", "upstream")

    def __init__(self, name: str, upstream: str) -> None:
        self.name = name
        self.upstream = upstream
        self.outcomes: dict[str, int] = {}
        self.retries = 0

    def record(self, outcome: str, tries: int) -> None:
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1
        if tries > 1:
            self.retries += tries - 1


class ProxyStats:
    """Every store of one proxy process, kept across reloads."""

    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], RouteStats] = {}
        self.endpoints: dict[tuple[str, str], EndpointStats] = {}

    def route(self, name: str, upstream: str) -> RouteStats:
        key = (name, upstream)
        stats = self.routes.get(key)
        if stats is None:
            stats = self.routes[key] = RouteStats(name, upstream)
        return stats

    def endpoint(self, upstream: str, endpoint: str) -> EndpointStats:
        key = (upstream, endpoint)
        stats = self.endpoints.get(key)
        if stats is None:
            stats = self.endpoints[key] = EndpointStats(upstream, endpoint)
        return stats


class ProxyCollector(Collector):
    """Builds the proxy's families at scrape time.

    ``gauges`` gives, per upstream of the running config, ``(ready, ejected, in_flight)``.
    """

    def __init__(
        self, stats: ProxyStats, gauges: Callable[[], dict[str, tuple[int, int, int]]]
    ) -> None:
        self._stats = stats
        self._gauges = gauges

    def collect(self) -> Iterator[Metric]:
        stats = self._stats
        requests = CounterMetricFamily(
            "runtime_proxy_requests",
            "Requests that took a route, by how they ended",
            labels=["route", "upstream", "outcome"],
        )
        retries = CounterMetricFamily(
            "runtime_proxy_retries", "Tries after the first, by route", labels=["route"]
        )
        for route in list(stats.routes.values()):
            for outcome, n in list(route.outcomes.items()):
                requests.add_metric([route.name, route.upstream, outcome], n)
            retries.add_metric([route.name], route.retries)
        tries = CounterMetricFamily(
            "runtime_proxy_upstream_requests",
            "Tries sent to an upstream endpoint, by status class or error",
            labels=["upstream", "endpoint", "outcome"],
        )
        durations = HistogramMetricFamily(
            "runtime_proxy_upstream_duration_seconds",
            "A try's time from sending to the response head, per endpoint",
            labels=["upstream", "endpoint"],
        )
        for endpoint in list(stats.endpoints.values()):
            labels = [endpoint.upstream, endpoint.endpoint]
            for outcome, n in list(endpoint.outcomes.items()):
                tries.add_metric([*labels, outcome], n)
            latency = endpoint.latency
            durations.add_metric(labels, latency.cumulative(), sum_value=latency.sum)
        endpoints = GaugeMetricFamily(
            "runtime_proxy_upstream_endpoints",
            "Endpoints of an upstream, ready or ejected by failure accrual",
            labels=["upstream", "state"],
        )
        in_flight = GaugeMetricFamily(
            "runtime_proxy_upstream_in_flight",
            "Exchanges with an upstream running now, bodies included",
            labels=["upstream"],
        )
        for name, (ready, ejected, busy) in self._gauges().items():
            endpoints.add_metric([name, "ready"], ready)
            endpoints.add_metric([name, "ejected"], ejected)
            in_flight.add_metric([name], busy)
        yield from (requests, retries, tries, durations, endpoints, in_flight)
