"""MapErr: exceptions are mapped (chained to the original); cancellation never is."""

from __future__ import annotations

from typing import Any

import pytest
import trio

from runtime.service import MapErr, MapErrLayer, service_fn
from runtime.testing import mock_service

from .conftest import echo


class UpstreamError(Exception):
    pass


def to_upstream(exc: Exception) -> BaseException:
    return UpstreamError(f"upstream failed: {exc}")


async def _fails(request: Any) -> Any:
    raise ConnectionResetError("peer reset")


async def test_maps_exceptions_and_keeps_the_cause() -> None:
    svc = MapErr(service_fn(_fails), to_upstream)
    with pytest.raises(UpstreamError, match="peer reset") as info:
        await svc("x")
    assert isinstance(info.value.__cause__, ConnectionResetError)
    with pytest.raises(UpstreamError):
        async with svc.ready() as call:
            await call("x")


async def test_returning_the_same_exception_reraises_it() -> None:
    svc = MapErrLayer(lambda exc: exc).layer(service_fn(_fails))
    with pytest.raises(ConnectionResetError):
        await svc("x")


async def test_responses_pass_through() -> None:
    assert await MapErr(service_fn(echo), to_upstream)(5) == 5


async def test_cancellation_is_never_mapped(autojump_clock: trio.abc.Clock) -> None:
    inner, handle = mock_service()
    seen: list[Exception] = []

    def record(exc: Exception) -> BaseException:
        seen.append(exc)
        return exc

    svc = MapErr(inner, record)
    with trio.move_on_after(1.0) as scope:
        await svc("x")
    assert scope.cancelled_caught
    assert seen == []
    assert handle.statistics().reserved == 0
