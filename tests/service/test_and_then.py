"""AndThen: an async step on each response."""

from __future__ import annotations

from typing import Any

import pytest
import trio

from runtime.service import AndThen, AndThenLayer, service_fn
from runtime.testing import mock_service

from .conftest import echo


async def double_later(response: int) -> int:
    await trio.sleep(1.0)
    return response * 2


async def test_runs_the_step_on_the_response(autojump_clock: trio.abc.Clock) -> None:
    svc = AndThen(service_fn(echo), double_later)
    assert await svc(21) == 42
    with svc.ready_nowait() as call:
        assert await call(1) == 2


async def test_step_does_not_run_on_exceptions() -> None:
    ran: list[Any] = []

    async def step(response: Any) -> Any:
        ran.append(response)
        return response

    async def fails(request: Any) -> Any:
        raise OSError("down")

    with pytest.raises(OSError, match="down"):
        await AndThenLayer(step).layer(service_fn(fails))("x")
    assert ran == []


async def test_cancelled_during_the_step(autojump_clock: trio.abc.Clock) -> None:
    inner, handle = mock_service()
    svc = AndThen(inner, double_later)
    async with trio.open_nursery() as nursery:

        async def caller() -> None:
            with trio.move_on_after(0.5) as scope:
                await svc(1)
            assert scope.cancelled_caught

        nursery.start_soon(caller)
        (await handle.next_request()).respond(1)
    assert handle.statistics().reserved == 0
