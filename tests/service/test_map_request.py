"""MapRequest: the inner service sees f(request)."""

from __future__ import annotations

import pytest
import trio

from runtime.service import MapRequest, MapRequestLayer, service_fn
from runtime.testing import mock_service

from .conftest import echo


async def test_maps_the_request() -> None:
    svc = MapRequest(service_fn(echo), str.upper)
    assert await svc("abc") == "ABC"
    async with svc.ready() as call:
        assert await call("x") == "X"
    with svc.ready_nowait() as call:
        assert await call("y") == "Y"


async def test_exception_in_f_skips_the_inner_service() -> None:
    inner, handle = mock_service()
    svc = MapRequest(inner, int)
    with pytest.raises(ValueError, match="invalid literal"):
        await svc("not a number")
    assert handle.statistics().calls == 0


async def test_cancelled_call_leaks_nothing(autojump_clock: trio.abc.Clock) -> None:
    inner, handle = mock_service()
    handle.allow(1)
    svc = MapRequestLayer(str.upper).layer(inner)
    with trio.move_on_after(1.0):
        async with svc.ready() as call:
            await call("x")
    stats = handle.statistics()
    assert (stats.reserved, stats.queued) == (0, 0)
    assert not svc.is_ready()  # the call used the allowance
