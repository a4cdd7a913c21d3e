"""ServiceBuilder: a stack of layers, written in the order a request meets them.

``ServiceBuilder().timeout(2).retry(policy).concurrency_limit(64).service(inner)`` builds
``Timeout(Retry(ConcurrencyLimit(inner)))``: the first layer added is the outermost, so it sees
the request first and the response last. Builders are immutable values: each method returns a
new builder, so a common prefix can be shared and extended.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import attrs
import trio

from ._service import Layer, Service, service_fn
from .and_then import AndThenLayer
from .buffer import BufferLayer
from .circuit_breaker import CircuitBreakerLayer
from .concurrency_limit import ConcurrencyLimitLayer, GlobalConcurrencyLimitLayer
from .filter import AsyncFilterLayer, FilterLayer
from .hedge import HedgeLayer
from .load_shed import LoadShedLayer
from .map_err import MapErrLayer
from .map_request import MapRequestLayer
from .map_response import MapResponseLayer
from .rate_limit import RateLimitLayer
from .retry import Backoff, Budget, Policy, RetryLayer
from .timeout import TimeoutLayer

__all__ = ["ServiceBuilder"]


@attrs.frozen
class ServiceBuilder:
    """Collects layers in reading order and applies them to a service.

    Attributes:
        layers: The layers so far, outermost first.
    """

    layers: tuple[Layer, ...] = ()

    def layer(self, layer: Layer) -> ServiceBuilder:
        """Add any layer (innermost so far)."""
        return ServiceBuilder((*self.layers, layer))

    def service(self, inner: Service[Any, Any]) -> Service[Any, Any]:
        """Wrap ``inner`` in every layer; the first one added ends up outermost.

        Args:
            inner: The service at the bottom of the stack.

        Returns:
            The outermost service. Annotate it with the request and response types you expect
            (``svc: Service[Req, Resp] = builder.service(inner)``); layers that map requests
            or responses change them, so the builder can't track them for you.
        """
        for layer in reversed(self.layers):
            inner = layer.layer(inner)
        return inner

    def service_fn(self, fn: Callable[[Any], Coroutine[Any, Any, Any]]) -> Service[Any, Any]:
        """``service(service_fn(fn))``: the stack over a plain async function."""
        return self.service(service_fn(fn))

    # -- one method per middleware ----------------------------------------------------------

    def timeout(self, seconds: float) -> ServiceBuilder:
        """Add a :class:`~runtime.service.Timeout` covering readiness and the call."""
        return self.layer(TimeoutLayer(seconds))

    def retry(
        self,
        policy: Policy[Any, Any],
        *,
        backoff: Backoff | None = None,
        budget: Budget | None = None,
        rng: random.Random | None = None,
    ) -> ServiceBuilder:
        """Add a :class:`~runtime.service.Retry`.

        Args:
            policy: Decides what to retry.
            backoff: Delays between attempts; default ``Backoff()``.
            budget: A budget shared by the wrapped services; default a fresh ``Budget()`` each.
            rng: Source of jitter; seed one for repeatable runs.
        """
        return self.layer(
            RetryLayer(
                policy,
                backoff=backoff if backoff is not None else Backoff(),
                budget=budget,
                rng=rng if rng is not None else random.Random(random.getrandbits(64)),
            )
        )

    def concurrency_limit(self, limit: int) -> ServiceBuilder:
        """Add a :class:`~runtime.service.ConcurrencyLimit` of ``limit`` per wrapped service."""
        return self.layer(ConcurrencyLimitLayer(limit))

    def global_concurrency_limit(self, limit: int) -> ServiceBuilder:
        """Add a concurrency limit that every service built from this builder shares."""
        return self.layer(GlobalConcurrencyLimitLayer(limit))

    def rate_limit(self, num: int, per: float, *, burst: int | None = None) -> ServiceBuilder:
        """Add a :class:`~runtime.service.RateLimit` of ``num`` calls per ``per`` seconds."""
        return self.layer(RateLimitLayer(num, per, burst))

    def load_shed(self) -> ServiceBuilder:
        """Add a :class:`~runtime.service.LoadShed`: fail fast when what is below is busy."""
        return self.layer(LoadShedLayer())

    def buffer(
        self, bound: int, *, workers: int = 1, nursery: trio.Nursery | None = None
    ) -> ServiceBuilder:
        """Add a :class:`~runtime.service.Buffer` whose workers run in ``nursery``.

        Without a nursery the workers are spawned in the current runtime when
        :meth:`service` is called.
        """
        return self.layer(BufferLayer(bound, workers, nursery))

    def filter(self, predicate: Callable[[Any], Any]) -> ServiceBuilder:
        """Add a :class:`~runtime.service.Filter`."""
        return self.layer(FilterLayer(predicate))

    def async_filter(self, predicate: Callable[[Any], Awaitable[Any]]) -> ServiceBuilder:
        """Add an :class:`~runtime.service.AsyncFilter`."""
        return self.layer(AsyncFilterLayer(predicate))

    def map_request(self, f: Callable[[Any], Any]) -> ServiceBuilder:
        """Add a :class:`~runtime.service.MapRequest`."""
        return self.layer(MapRequestLayer(f))

    def map_response(self, f: Callable[[Any], Any]) -> ServiceBuilder:
        """Add a :class:`~runtime.service.MapResponse`."""
        return self.layer(MapResponseLayer(f))

    def map_err(self, f: Callable[[Exception], BaseException]) -> ServiceBuilder:
        """Add a :class:`~runtime.service.MapErr`."""
        return self.layer(MapErrLayer(f))

    def and_then(self, f: Callable[[Any], Awaitable[Any]]) -> ServiceBuilder:
        """Add an :class:`~runtime.service.AndThen`."""
        return self.layer(AndThenLayer(f))

    def hedge(
        self, *, percentile: float = 0.9, min_data_points: int = 20, max_samples: int = 1000
    ) -> ServiceBuilder:
        """Add a :class:`~runtime.service.Hedge`."""
        return self.layer(
            HedgeLayer(
                percentile=percentile, min_data_points=min_data_points, max_samples=max_samples
            )
        )

    def circuit_breaker(
        self,
        *,
        failures: int = 7,
        min_penalty: float = 1.0,
        max_penalty: float = 60.0,
        jitter: float = 0.5,
        rng: random.Random | None = None,
    ) -> ServiceBuilder:
        """Add a :class:`~runtime.service.CircuitBreaker` per wrapped service."""
        return self.layer(
            CircuitBreakerLayer(
                failures=failures,
                min_penalty=min_penalty,
                max_penalty=max_penalty,
                jitter=jitter,
                rng=rng if rng is not None else random.Random(random.getrandbits(64)),
            )
        )
