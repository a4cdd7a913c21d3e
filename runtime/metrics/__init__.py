"""runtime.metrics: Prometheus metrics of every layer, read at scrape time.

:func:`registry` is the running runtime's prometheus-client ``CollectorRegistry``. Its
collector reads the ``statistics()`` records the layers keep anyway (tasks, the timer wheel,
the reactor, named channels, servers) only when it is scraped, so the hot paths pay nothing.
Requests are the exception, since their latency must be seen as it happens: the HTTP server
(per route template) and :class:`MetricsLayer` (per service name) record into plain counters
and bucket arrays, a few additions per request, turned into metric families at scrape time.

Expose it with the admin endpoint (``runtime.admin.serve_admin``, ``/metrics``) or with
prometheus-client's own tools: ``prometheus_client.generate_latest(registry())``.
"""

from __future__ import annotations

from ._hub import Hub as Hub
from ._hub import RuntimeCollector as RuntimeCollector
from ._hub import hub as hub
from ._hub import registry as registry
from ._record import DEFAULT_BUCKETS as DEFAULT_BUCKETS
from ._record import HttpRequestMetrics as HttpRequestMetrics
from ._record import ServiceMetrics as ServiceMetrics
from ._record import bounded_method as bounded_method
from .layer import MetricsLayer as MetricsLayer
from .layer import MetricsService as MetricsService

__all__ = [
    "DEFAULT_BUCKETS",
    "HttpRequestMetrics",
    "Hub",
    "MetricsLayer",
    "MetricsService",
    "RuntimeCollector",
    "ServiceMetrics",
    "bounded_method",
    "hub",
    "registry",
]
