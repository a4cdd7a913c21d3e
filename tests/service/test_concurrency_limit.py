"""ConcurrencyLimit: at most N in flight, per service or shared; no permit leaks on cancel."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from runtime.service import (
    ConcurrencyLimit,
    ConcurrencyLimitLayer,
    GlobalConcurrencyLimitLayer,
    service_fn,
)
from runtime.sync import Semaphore
from runtime.testing import mock_service

from .conftest import echo


async def test_at_most_limit_calls_reach_the_inner_service(
    autojump_clock: trio.abc.Clock,
) -> None:
    inner, handle = mock_service()
    svc = ConcurrencyLimit(inner, 2)
    async with trio.open_nursery() as nursery:
        for n in range(5):
            nursery.start_soon(svc, n)
        await trio.testing.wait_all_tasks_blocked()
        assert handle.statistics().calls == 2
        stats = svc.statistics()
        assert (stats.available, stats.waiting) == (0, 3)
        assert not svc.is_ready()
        first = await handle.next_request()
        first.respond("done")
        await trio.testing.wait_all_tasks_blocked()
        assert handle.statistics().calls == 3
        for _ in range(4):
            (await handle.next_request()).respond("done")
    assert svc.statistics().available == 2


async def test_waiters_are_served_in_order(autojump_clock: trio.abc.Clock) -> None:
    inner, handle = mock_service()
    svc = ConcurrencyLimit(inner, 1)
    async with trio.open_nursery() as nursery:
        for n in range(4):
            nursery.start_soon(svc, n)
            await trio.testing.wait_all_tasks_blocked()
        order = []
        for _ in range(4):
            request = await handle.next_request()
            order.append(request.request)
            request.respond(None)
    assert order == [0, 1, 2, 3]


async def test_cancelled_waiter_and_cancelled_call_leak_no_permit(
    autojump_clock: trio.abc.Clock,
) -> None:
    inner, handle = mock_service()
    svc = ConcurrencyLimit(inner, 1)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(svc, "in flight")
        await trio.testing.wait_all_tasks_blocked()
        with trio.move_on_after(1.0):
            await svc("waiting")  # never gets the permit
        assert svc.statistics().available == 0
        nursery.cancel_scope.cancel()  # cancels the call in flight
    assert svc.statistics().available == 1
    assert handle.statistics().queued == 0


async def test_reservation_holds_a_permit_until_the_block_ends(
    autojump_clock: trio.abc.Clock,
) -> None:
    inner, handle = mock_service()
    svc = ConcurrencyLimit(inner, 1)
    async with svc.ready() as call:
        assert svc.statistics().available == 0
        assert handle.statistics().reserved == 1
        with pytest.raises(trio.WouldBlock), svc.ready_nowait():
            pass  # pragma: no cover
        async with trio.open_nursery() as nursery:
            nursery.start_soon(call, "x")
            (await handle.next_request()).respond("y")
    assert svc.statistics().available == 1
    assert handle.statistics().reserved == 0


async def test_cancelled_reservation_returns_its_permit(autojump_clock: trio.abc.Clock) -> None:
    inner, handle = mock_service()
    svc = ConcurrencyLimit(inner, 1)
    with trio.move_on_after(1.0):
        async with svc.ready():
            await trio.sleep_forever()
    assert svc.statistics().available == 1
    assert handle.statistics().reserved == 0


async def test_permit_is_returned_when_the_inner_service_is_not_ready() -> None:
    inner, handle = mock_service()
    handle.hold()
    svc = ConcurrencyLimit(inner, 1)
    assert not svc.is_ready()
    with pytest.raises(trio.WouldBlock), svc.ready_nowait():
        pass  # pragma: no cover
    assert svc.statistics().available == 1


@pytest.mark.usefixtures("budget_of_one")
async def test_call_and_ready_are_checkpoints() -> None:
    svc = ConcurrencyLimit(service_fn(echo), 1)
    with trio.testing.assert_checkpoints():
        await svc(1)
    with trio.testing.assert_checkpoints():
        async with svc.ready():
            pass


async def test_shared_semaphore_limits_services_together(autojump_clock: trio.abc.Clock) -> None:
    inner_a, handle_a = mock_service()
    inner_b, handle_b = mock_service()
    layer = GlobalConcurrencyLimitLayer(2)
    a, b = layer.layer(inner_a), layer.layer(inner_b)
    async with trio.open_nursery() as nursery:
        for n in range(2):
            nursery.start_soon(a, n)
            nursery.start_soon(b, n)
        await trio.testing.wait_all_tasks_blocked()
        assert handle_a.statistics().calls + handle_b.statistics().calls == 2
        nursery.cancel_scope.cancel()
    assert a.statistics().available == 2


async def test_per_service_layer_and_explicit_semaphore() -> None:
    layer = ConcurrencyLimitLayer(3)
    svc = layer.layer(service_fn(echo))
    assert svc.statistics().available == 3
    shared = Semaphore(5)
    assert ConcurrencyLimit(service_fn(echo), shared).semaphore is shared
    with pytest.raises(ValueError, match="concurrency limit must be >= 1"):
        ConcurrencyLimit(service_fn(echo), 0)
