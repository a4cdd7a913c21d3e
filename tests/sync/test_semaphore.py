"""runtime.sync.Semaphore: FIFO fairness, weights, owned permits, close, cancellation."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import trio
import trio.testing

from runtime.sync import Semaphore, WouldBlock

from .conftest import raises_cancelled

wait_idle = trio.testing.wait_all_tasks_blocked


def test_bad_counts() -> None:
    with pytest.raises(ValueError, match="permits must be an int >= 0"):
        Semaphore(-1)
    sem = Semaphore(1)
    with pytest.raises(ValueError, match="n must be"):
        sem.try_acquire(-1)
    with pytest.raises(ValueError):
        sem.add_permits(-2)


async def test_async_with_holds_one_permit() -> None:
    sem = Semaphore(2)
    async with sem:
        assert sem.available_permits() == 1
    assert sem.available_permits() == 2


async def test_owned_permit_released_by_with_or_release() -> None:
    sem = Semaphore(5)
    permit = await sem.acquire(3)
    assert permit.permits == 3
    assert sem.available_permits() == 2
    with permit:
        pass
    assert sem.available_permits() == 5
    permit.release()  # idempotent
    assert sem.available_permits() == 5
    other = sem.try_acquire(5)
    other.forget()
    assert sem.available_permits() == 0
    assert "permits=0" in repr(other)


async def test_waiters_are_served_in_arrival_order() -> None:
    sem = Semaphore(0)
    order: list[int] = []

    async def take(index: int) -> None:
        with await sem.acquire():
            order.append(index)

    async with trio.open_nursery() as nursery:
        for index in range(10):
            nursery.start_soon(take, index)
            await wait_idle()
        sem.add_permits(1)
    assert order == list(range(10))


async def test_a_big_request_is_not_starved_by_small_ones() -> None:
    sem = Semaphore(2)
    held = await sem.acquire(2)
    order: list[str] = []

    async def take(name: str, n: int) -> None:
        permit = await sem.acquire(n)
        order.append(name)
        permit.release()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(take, "big", 2)
        await wait_idle()
        nursery.start_soon(take, "small", 1)
        await wait_idle()
        held.release()  # one at a time would let "small" in first if it could barge
    assert order == ["big", "small"]


async def test_no_barging_past_the_queue() -> None:
    sem = Semaphore(1)
    held = await sem.acquire(1)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(sem.acquire, 2)
        await wait_idle()
        held.release()
        assert sem.available_permits() == 1
        with pytest.raises(WouldBlock):
            sem.try_acquire(1)  # a permit is free, but the queue comes first
        nursery.cancel_scope.cancel()


async def test_cancelling_the_head_lets_the_next_ones_in() -> None:
    sem = Semaphore(1)
    got: list[str] = []

    async def take(name: str, n: int) -> None:
        await sem.acquire(n)
        got.append(name)

    async with trio.open_nursery() as nursery:
        big_scope = trio.CancelScope()
        nursery.start_soon(_in_scope, big_scope, take, "big", 5)
        await wait_idle()
        nursery.start_soon(take, "small", 1)
        await wait_idle()
        assert got == []
        big_scope.cancel()
    assert got == ["small"]
    assert sem.statistics().tasks_waiting == 0


async def _in_scope(scope: trio.CancelScope, fn: Callable[..., object], *args: object) -> None:
    with scope:
        await fn(*args)  # type: ignore[misc]


async def test_cancelled_acquire_holds_nothing() -> None:
    sem = Semaphore(1)
    await raises_cancelled(sem.acquire)
    assert sem.available_permits() == 1


async def test_close_fails_waiters_and_future_acquires() -> None:
    sem = Semaphore(0)
    failures: list[str] = []

    async def take() -> None:
        try:
            await sem.acquire()
        except trio.ClosedResourceError:
            failures.append("closed")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(take)
        nursery.start_soon(take)
        await wait_idle()
        sem.close()
        sem.close()
    assert failures == ["closed", "closed"]
    assert sem.is_closed()
    with pytest.raises(trio.ClosedResourceError, match="semaphore"):
        await sem.acquire()
    with pytest.raises(trio.ClosedResourceError):
        sem.try_acquire()


async def test_statistics() -> None:
    sem = Semaphore(1)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(sem.acquire, 3)
        await wait_idle()
        stats = sem.statistics()
        assert (stats.available, stats.tasks_waiting, stats.permits_waiting) == (1, 1, 3)
        assert not stats.closed
        assert "waiting=1" in repr(sem)
        nursery.cancel_scope.cancel()


async def test_acquire_is_a_checkpoint(set_budget: Callable[[int], object]) -> None:
    set_budget(1)
    sem = Semaphore(3)
    with trio.testing.assert_checkpoints():
        await sem.acquire()
    with trio.testing.assert_checkpoints():
        async with sem:
            pass
