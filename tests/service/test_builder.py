"""ServiceBuilder: layers apply in reading order, and each builder method adds its middleware."""

from __future__ import annotations

from typing import Any

import pytest
import trio

from runtime.service import (
    AndThen,
    AsyncFilter,
    Buffer,
    CircuitBreaker,
    ConcurrencyLimit,
    Filter,
    Hedge,
    LoadShed,
    MapErr,
    MapRequest,
    MapResponse,
    RateLimit,
    Retry,
    RetryOn,
    Service,
    ServiceBuilder,
    Timeout,
    layer_fn,
    service_fn,
)

from .conftest import echo


def tagging(tag: str, log: list[str]) -> Any:
    """A layer that logs when a request passes through it on the way in and out."""

    def wrap(inner: Service[Any, Any]) -> Service[Any, Any]:
        async def call(request: Any) -> Any:
            log.append(f"{tag} in")
            response = await inner(request)
            log.append(f"{tag} out")
            return response

        return service_fn(call)

    return layer_fn(wrap)


async def test_first_layer_added_sees_the_request_first() -> None:
    log: list[str] = []
    svc = (
        ServiceBuilder()
        .layer(tagging("a", log))
        .layer(tagging("b", log))
        .layer(tagging("c", log))
        .service_fn(echo)
    )
    assert await svc(1) == 1
    assert log == ["a in", "b in", "c in", "c out", "b out", "a out"]


async def test_builders_are_immutable_values() -> None:
    base = ServiceBuilder().timeout(1)
    longer = base.concurrency_limit(2)
    assert len(base.layers) == 1
    assert len(longer.layers) == 2
    assert isinstance(base.service(service_fn(echo)), Timeout)


async def test_empty_builder_returns_the_service_itself() -> None:
    inner = service_fn(echo)
    assert ServiceBuilder().service(inner) is inner


async def test_every_builder_method_adds_its_middleware() -> None:
    async with trio.open_nursery() as nursery:
        svc = (
            ServiceBuilder()
            .timeout(5)
            .retry(RetryOn(OSError))
            .load_shed()
            .concurrency_limit(4)
            .rate_limit(100, 1.0)
            .buffer(4, nursery=nursery)
            .filter(lambda r: r)
            .async_filter(_async_identity)
            .map_request(lambda r: r + 1)
            .map_response(lambda r: r * 10)
            .map_err(lambda e: e)
            .and_then(_async_identity)
            .hedge()
            .circuit_breaker()
            .service_fn(echo)
        )
        chain = []
        node: Any = svc
        while node is not None:
            chain.append(type(node))
            node = getattr(node, "inner", None)
        assert chain[:-1] == [
            Timeout,
            Retry,
            LoadShed,
            ConcurrencyLimit,
            RateLimit,
            Buffer,
            Filter,
            AsyncFilter,
            MapRequest,
            MapResponse,
            MapErr,
            AndThen,
            Hedge,
            CircuitBreaker,
        ]
        assert await svc(1) == 20
        nursery.cancel_scope.cancel()


async def test_global_concurrency_limit_is_shared_by_every_service_built() -> None:
    builder = ServiceBuilder().global_concurrency_limit(3)
    one = builder.service_fn(echo)
    two = builder.service_fn(echo)
    assert isinstance(one, ConcurrencyLimit)
    assert isinstance(two, ConcurrencyLimit)
    assert one.semaphore is two.semaphore
    per_service = ServiceBuilder().concurrency_limit(3)
    a, b = per_service.service_fn(echo), per_service.service_fn(echo)
    assert isinstance(a, ConcurrencyLimit)
    assert isinstance(b, ConcurrencyLimit)
    assert a.semaphore is not b.semaphore


async def _async_identity(value: Any) -> Any:
    return value


async def test_bad_settings_fail_at_build_time() -> None:
    with pytest.raises(ValueError, match="'duration' must be > 0"):
        ServiceBuilder().timeout(0)
    with pytest.raises(ValueError, match="limit"):
        ServiceBuilder().concurrency_limit(0)
    with pytest.raises(ValueError, match="'num' must be >= 1"):
        ServiceBuilder().rate_limit(0, 1.0)
    with pytest.raises(ValueError, match="'bound' must be >= 1"):
        ServiceBuilder().buffer(0)
