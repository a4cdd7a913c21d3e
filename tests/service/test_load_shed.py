"""LoadShed: Overloaded at once when the inner service is not ready; reservations come back."""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing

from runtime.service import (
    ConcurrencyLimit,
    LoadShed,
    LoadShedLayer,
    Overloaded,
    ServiceBuilder,
    service_fn,
)
from runtime.testing import mock_service

from .conftest import echo


async def test_not_ready_inner_is_never_called() -> None:
    inner, handle = mock_service()
    handle.hold()
    svc = LoadShed(inner)
    with pytest.raises(Overloaded, match="shed"):
        await svc("x")
    assert handle.statistics().calls == 0
    assert svc.shed == 1


async def test_ready_inner_gets_the_call(autojump_clock: trio.abc.Clock) -> None:
    inner, handle = mock_service()
    handle.allow(1)
    svc = LoadShed(inner)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(svc, "x")
        request = await handle.next_request()
        request.respond("y")
    assert handle.statistics().allowance == 0
    with pytest.raises(Overloaded):
        await svc("z")


async def test_sheds_above_a_full_limit(autojump_clock: trio.abc.Clock) -> None:
    inner, handle = mock_service()
    svc = ServiceBuilder().load_shed().concurrency_limit(2).service(inner)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(svc, 1)
        nursery.start_soon(svc, 2)
        await trio.testing.wait_all_tasks_blocked()
        with pytest.raises(Overloaded):
            await svc(3)
        (await handle.next_request()).respond("one")
        await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(svc, 4)  # room again
        await trio.testing.wait_all_tasks_blocked()
        assert handle.statistics().calls == 3
        nursery.cancel_scope.cancel()


async def test_cancelled_call_returns_its_reservation(autojump_clock: trio.abc.Clock) -> None:
    inner, handle = mock_service()
    limit = ConcurrencyLimit(inner, 1)
    svc = LoadShed(limit)
    with trio.move_on_after(1.0):
        await svc("x")
    assert limit.statistics().available == 1
    assert handle.statistics().reserved == 0
    assert handle.statistics().queued == 0


async def test_would_block_from_inside_the_call_is_not_overloaded() -> None:
    async def raises_would_block(request: Any) -> Any:
        raise trio.WouldBlock

    svc = LoadShed(service_fn(raises_would_block))
    with pytest.raises(trio.WouldBlock):
        await svc("x")
    assert svc.shed == 0


async def test_reservations_shed_too(autojump_clock: trio.abc.Clock) -> None:
    inner, handle = mock_service()
    svc = LoadShed(inner)
    assert svc.is_ready()
    handle.hold()
    assert svc.is_ready()  # LoadShed always answers, if only with Overloaded
    with pytest.raises(Overloaded):
        async with svc.ready():
            pass  # pragma: no cover
    with pytest.raises(Overloaded), svc.ready_nowait():
        pass  # pragma: no cover
    handle.allow(1)
    async with svc.ready():
        assert handle.statistics().reserved == 1
    assert handle.statistics().reserved == 0
    assert handle.statistics().allowance == 1
    assert svc.shed == 2


async def test_layer() -> None:
    svc = LoadShedLayer().layer(service_fn(echo))
    assert isinstance(svc, LoadShed)
    assert await svc("ok") == "ok"


@pytest.mark.usefixtures("budget_of_one")
async def test_ready_is_a_checkpoint() -> None:
    svc = LoadShed(service_fn(echo))
    with trio.testing.assert_checkpoints():
        async with svc.ready():
            pass
