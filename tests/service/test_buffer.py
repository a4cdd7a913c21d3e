"""Buffer: a bounded queue driven by worker tasks; errors reach callers; no slot ever leaks."""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing

import runtime
from runtime.service import Buffer, BufferLayer, ServiceBuilder, open_buffer, service_fn
from runtime.testing import mock_service

from .conftest import echo


async def test_one_worker_serves_requests_in_order_from_one_task(
    autojump_clock: trio.abc.Clock,
) -> None:
    tasks: set[object] = set()
    served: list[int] = []

    async def single_task_only(request: int) -> int:
        tasks.add(trio.lowlevel.current_task())
        await trio.sleep(0.1)
        served.append(request)
        return request * 2

    results: dict[int, int] = {}

    async def caller(svc: Buffer[int, int], n: int) -> None:
        results[n] = await svc(n)

    async with (
        open_buffer(service_fn(single_task_only), 10) as svc,
        trio.open_nursery() as nursery,
    ):
        for n in range(5):
            nursery.start_soon(caller, svc, n)
            await trio.testing.wait_all_tasks_blocked()
    assert served == [0, 1, 2, 3, 4]
    assert results == {n: n * 2 for n in range(5)}
    assert len(tasks) == 1
    assert trio.lowlevel.current_task() not in tasks


async def test_errors_reach_their_own_caller_and_the_worker_goes_on() -> None:
    async def picky(request: int) -> int:
        await trio.lowlevel.checkpoint()
        if request == 2:
            raise ValueError("two is not allowed")
        return request

    async with open_buffer(service_fn(picky), 4) as svc:
        assert await svc(1) == 1
        with pytest.raises(ValueError, match="two"):
            await svc(2)
        assert await svc(3) == 3
        assert svc.statistics().free_slots == 4


async def test_bound_limits_queued_plus_served(autojump_clock: trio.abc.Clock) -> None:
    inner, handle = mock_service()
    async with open_buffer(inner, 2) as svc, trio.open_nursery() as nursery:
        for n in range(3):
            nursery.start_soon(svc, n)
        await trio.testing.wait_all_tasks_blocked()
        stats = svc.statistics()
        assert (stats.free_slots, stats.queued) == (0, 1)  # one served, one queued
        assert not svc.is_ready()
        with pytest.raises(trio.WouldBlock), svc.ready_nowait():
            pass  # pragma: no cover
        for _ in range(3):
            (await handle.next_request()).respond("ok")
    assert svc.statistics().closed


async def test_cancelled_while_queued_frees_the_slot_at_once(
    autojump_clock: trio.abc.Clock,
) -> None:
    inner, handle = mock_service()
    async with open_buffer(inner, 2) as svc, trio.open_nursery() as nursery:
        nursery.start_soon(svc, "served")
        await trio.testing.wait_all_tasks_blocked()
        with trio.move_on_after(1.0):
            await svc("queued, then gives up")
        stats = svc.statistics()
        assert (stats.free_slots, stats.queued) == (1, 0)
        (await handle.next_request()).respond("ok")
        await trio.testing.wait_all_tasks_blocked()
        assert handle.statistics().calls == 1  # the abandoned request never reached it
    assert svc.statistics().free_slots == 2


async def test_cancelled_while_served_cancels_the_inner_call(
    autojump_clock: trio.abc.Clock,
) -> None:
    inner, handle = mock_service()
    async with open_buffer(inner, 1) as svc:
        async with trio.open_nursery() as caller:
            caller.start_soon(svc, "slow")
            request = await handle.next_request()
            caller.cancel_scope.cancel()
        await request.wait_cancelled()
        await trio.testing.wait_all_tasks_blocked()
        assert svc.statistics().free_slots == 1
        async with trio.open_nursery() as nursery:
            nursery.start_soon(svc, "next")
            (await handle.next_request()).respond("fine")


async def test_cancelled_while_waiting_for_a_slot_holds_none(
    autojump_clock: trio.abc.Clock,
) -> None:
    inner, handle = mock_service()
    async with open_buffer(inner, 1) as svc, trio.open_nursery() as nursery:
        nursery.start_soon(svc, "holds the slot")
        await trio.testing.wait_all_tasks_blocked()
        with trio.move_on_after(1.0):
            await svc("waits for a slot")
        (await handle.next_request()).respond("ok")
        await trio.testing.wait_all_tasks_blocked()
        assert svc.statistics().free_slots == 1
        assert handle.statistics().calls == 1


async def test_unused_reservation_returns_its_slot(autojump_clock: trio.abc.Clock) -> None:
    async with open_buffer(service_fn(echo), 1) as svc:
        async with svc.ready():
            assert svc.statistics().free_slots == 0
        assert svc.statistics().free_slots == 1
        with trio.move_on_after(1.0):
            async with svc.ready():
                await trio.sleep_forever()
        assert svc.statistics().free_slots == 1


async def test_reservation_calls_use_the_reserved_slot(autojump_clock: trio.abc.Clock) -> None:
    async with open_buffer(service_fn(echo), 1) as svc:
        with svc.ready_nowait() as call:
            assert await call(1) == 1
            assert await call(2) == 2  # one at a time on the same slot
            assert svc.statistics().free_slots == 0
        assert svc.statistics().free_slots == 1


async def test_reservation_ending_mid_call_hands_the_slot_to_the_worker(
    autojump_clock: trio.abc.Clock,
) -> None:
    inner, handle = mock_service()
    async with open_buffer(inner, 1) as svc:

        async def reserve_and_call() -> None:
            async with svc.ready() as call:
                await call("slow")

        async with trio.open_nursery() as caller:
            caller.start_soon(reserve_and_call)
            request = await handle.next_request()
            caller.cancel_scope.cancel()
        await request.wait_cancelled()
        await trio.testing.wait_all_tasks_blocked()
        # Freed exactly once: the semaphore's max_value would reject a second release.
        assert svc.statistics().free_slots == 1


async def test_slot_stays_with_the_worker_until_its_call_unwinds(
    autojump_clock: trio.abc.Clock,
) -> None:
    async def slow_to_stop(request: str) -> str:
        with trio.CancelScope(shield=True):
            await trio.sleep(1.0)  # keeps running after its caller has gone
        await trio.lowlevel.checkpoint()
        return request

    async with open_buffer(service_fn(slow_to_stop), 1) as svc:
        with trio.move_on_after(0.5):
            async with svc.ready() as call:
                await call("x")
        assert svc.statistics().free_slots == 0
        await trio.sleep(0.6)
        assert svc.statistics().free_slots == 1


async def test_closing_fails_queued_and_later_requests(autojump_clock: trio.abc.Clock) -> None:
    inner, _ = mock_service()
    errors: list[BaseException] = []

    async def caller(svc: Buffer[Any, Any], n: int) -> None:
        try:
            await svc(n)
        except trio.ClosedResourceError as exc:
            errors.append(exc)

    async with trio.open_nursery() as callers, open_buffer(inner, 3) as svc:
        for n in range(3):
            callers.start_soon(caller, svc, n)
        await trio.testing.wait_all_tasks_blocked()
        assert svc.statistics().queued == 2
    assert len(errors) == 3
    assert "workers have stopped" in str(errors[0])
    assert svc.statistics().closed
    assert svc.statistics().free_slots == 3
    with pytest.raises(trio.ClosedResourceError):
        await svc("late")
    with pytest.raises(trio.ClosedResourceError):
        async with svc.ready():
            pass  # pragma: no cover
    assert not svc.is_ready()
    with pytest.raises(RuntimeError, match="once"):
        await svc.serve_requests()


async def test_several_workers_serve_concurrently(autojump_clock: trio.abc.Clock) -> None:
    async def slow(request: int) -> int:
        await trio.sleep(1.0)
        return request

    start = trio.current_time()
    async with open_buffer(service_fn(slow), 6, workers=3) as svc, trio.open_nursery() as n:
        for request in range(6):
            n.start_soon(svc, request)
    assert trio.current_time() - start == pytest.approx(2.0)


async def test_layer_starts_workers_in_the_given_nursery() -> None:
    async with trio.open_nursery() as nursery:
        svc = ServiceBuilder().buffer(2, nursery=nursery).service_fn(echo)
        assert isinstance(svc, Buffer)
        assert await svc("hi") == "hi"
        nursery.cancel_scope.cancel()


async def test_layer_spawns_workers_in_the_runtime(
    rt: runtime.Runtime, autojump_clock: trio.abc.Clock
) -> None:
    # The workers run until the runtime ends; its shutdown grace then passes in mock time.
    svc = BufferLayer(2).layer(service_fn(echo))
    assert await svc("hi") == "hi"
    assert any("buffer workers" in task.name for task in rt.tasks())


async def test_layer_without_nursery_or_runtime_says_so() -> None:
    with pytest.raises(runtime.NoRuntimeError):
        BufferLayer(2).layer(service_fn(echo))
    with pytest.raises(ValueError, match="worker"):
        Buffer(service_fn(echo), 1, workers=0)


@pytest.mark.usefixtures("budget_of_one")
async def test_call_and_ready_are_checkpoints() -> None:
    async with open_buffer(service_fn(echo), 2) as svc:
        with trio.testing.assert_checkpoints():
            await svc(1)
        with trio.testing.assert_checkpoints():
            async with svc.ready():
                pass
