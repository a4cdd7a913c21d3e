"""MetricsLayer: count a service's requests and errors and time them, under a name.

The figures go to the runtime's metrics registry as ``runtime_service_requests_total``,
``runtime_service_errors_total`` and the histogram ``runtime_service_request_duration_seconds``,
each labelled ``service=<name>``. Recording is a few additions per request (see ``_record``);
the families are built when ``/metrics`` is read.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

import attrs
import trio

from ..rt import Runtime
from ..service import Call, Middleware, Service
from ._hub import hub
from ._record import DEFAULT_BUCKETS, ServiceMetrics

Req = TypeVar("Req")
Resp = TypeVar("Resp")

__all__ = ["MetricsLayer", "MetricsService"]

_now = trio.current_time


@attrs.define(eq=False)
class MetricsService(Middleware[Req, Resp, Req, Resp]):
    """Counts and times each call of ``inner``. Made by :class:`MetricsLayer`.

    A call that raises an ``Exception`` counts as an error; a cancelled one counts as a
    request, not an error (the caller gave up). The time runs from the call to its response
    or error; time spent waiting for readiness through :meth:`ready` is not in it.

    Attributes:
        inner: The wrapped service.
        metrics: Where the figures go.
    """

    inner: Service[Req, Resp]
    metrics: ServiceMetrics

    async def __call__(self, request: Req) -> Resp:
        return await self.handle(request, self.inner)

    async def handle(self, request: Req, call: Call[Req, Resp]) -> Resp:
        metrics = self.metrics
        metrics.requests += 1
        start = _now()
        try:
            return await call(request)
        except Exception:
            metrics.errors += 1
            raise
        finally:
            metrics.latency.observe(_now() - start)


@attrs.frozen
class MetricsLayer:
    """Wraps services in :class:`MetricsService`, recording under ``name``.

    Example::

        svc = ServiceBuilder().layer(MetricsLayer("users")).timeout(1.0).service(users)

    Every service this layer wraps records into the same figures, so one name is one line on
    a dashboard. Build it inside the runtime whose registry should have them (or pass
    ``runtime``).

    Attributes:
        name: The ``service`` label. Keep the set of names small and fixed.
        buckets: Histogram bucket bounds in seconds.
        runtime: The runtime whose registry gets the figures (default: the running one).
    """

    name: str = attrs.field(validator=attrs.validators.min_len(1))
    buckets: Sequence[float] = attrs.field(default=DEFAULT_BUCKETS, converter=tuple)
    runtime: Runtime | None = attrs.field(default=None, eq=False)
    _metrics: ServiceMetrics = attrs.field(init=False, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        metrics = ServiceMetrics(self.name, self.buckets)
        hub(self.runtime).services.add(metrics)
        object.__setattr__(self, "_metrics", metrics)

    def layer(self, inner: Service[Req, Resp]) -> MetricsService[Req, Resp]:
        return MetricsService(inner, self._metrics)
