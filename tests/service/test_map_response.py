"""MapResponse: the caller gets f(response); exceptions pass through untouched."""

from __future__ import annotations

from typing import Any

import pytest
import trio

from runtime.service import MapResponse, MapResponseLayer, service_fn
from runtime.testing import mock_service

from .conftest import echo


async def test_maps_the_response() -> None:
    svc = MapResponse(service_fn(echo), len)
    assert await svc("four") == 4
    async with svc.ready() as call:
        assert await call("xy") == 2


async def test_exceptions_are_not_mapped() -> None:
    async def fails(request: Any) -> Any:
        raise KeyError(request)

    svc = MapResponseLayer(len).layer(service_fn(fails))
    with pytest.raises(KeyError):
        await svc("k")


async def test_cancelled_call_leaks_nothing(autojump_clock: trio.abc.Clock) -> None:
    inner, handle = mock_service()
    svc = MapResponse(inner, len)
    with trio.move_on_after(1.0):
        with svc.ready_nowait() as call:
            await call("x")
    stats = handle.statistics()
    assert (stats.reserved, stats.queued, stats.calls) == (0, 0, 1)
