"""Filter and AsyncFilter: rewrite or reject requests before they reach the inner service."""

from __future__ import annotations

import pytest
import trio

from runtime.service import AsyncFilter, AsyncFilterLayer, Filter, FilterLayer, service_fn
from runtime.testing import mock_service

from .conftest import echo


class Rejected(Exception):
    pass


def only_even(request: int) -> int:
    if request % 2:
        raise Rejected(f"{request} is odd")
    return request // 2


async def only_even_async(request: int) -> int:
    await trio.sleep(0.5)
    return only_even(request)


async def test_filter_passes_the_rewritten_request() -> None:
    svc = Filter(service_fn(echo), only_even)
    assert await svc(8) == 4


async def test_filter_rejection_reaches_the_caller_and_not_the_service() -> None:
    inner, handle = mock_service()
    svc = Filter(inner, only_even)
    with pytest.raises(Rejected, match="odd"):
        await svc(3)
    assert handle.statistics().calls == 0


async def test_rejected_reservation_is_returned_unused() -> None:
    inner, handle = mock_service()
    handle.allow(1)
    svc = Filter(inner, only_even)
    with pytest.raises(Rejected), svc.ready_nowait() as call:
        await call(1)
    stats = handle.statistics()
    assert (stats.calls, stats.reserved, stats.allowance) == (0, 0, 1)


async def test_async_filter(autojump_clock: trio.abc.Clock) -> None:
    svc = AsyncFilter(service_fn(echo), only_even_async)
    assert await svc(10) == 5
    with pytest.raises(Rejected):
        await svc(11)
    async with svc.ready() as call:
        assert await call(4) == 2


async def test_async_filter_cancelled_during_the_check(autojump_clock: trio.abc.Clock) -> None:
    inner, handle = mock_service()
    svc = AsyncFilter(inner, only_even_async)
    with trio.move_on_after(0.1):
        async with svc.ready() as call:
            await call(2)
    stats = handle.statistics()
    assert (stats.calls, stats.reserved) == (0, 0)


async def test_filter_readiness_is_the_inner_one() -> None:
    inner, handle = mock_service()
    svc = Filter(inner, only_even)
    handle.hold()
    assert not svc.is_ready()
    handle.allow(None)
    assert svc.is_ready()


async def test_layers() -> None:
    assert await FilterLayer(only_even).layer(service_fn(echo))(6) == 3
    assert isinstance(AsyncFilterLayer(only_even_async).layer(service_fn(echo)), AsyncFilter)
