"""runtime.sync.Notify: notify_one with a stored permit, notify_waiters, cancellation."""

from __future__ import annotations

from collections.abc import Callable

import trio
import trio.testing

from runtime.sync import Notify

from .conftest import raises_cancelled

wait_idle = trio.testing.wait_all_tasks_blocked


async def test_notify_one_wakes_the_longest_waiting_task() -> None:
    notify = Notify()
    woken: list[int] = []

    async def wait(index: int) -> None:
        await notify.notified()
        woken.append(index)

    async with trio.open_nursery() as nursery:
        for index in range(3):
            nursery.start_soon(wait, index)
            await wait_idle()
        for expected in range(3):
            notify.notify_one()
            await wait_idle()
            assert woken[-1] == expected
    assert woken == [0, 1, 2]


async def test_notify_one_stores_a_single_permit(autojump_clock: trio.testing.MockClock) -> None:
    notify = Notify()
    notify.notify_one()
    notify.notify_one()
    assert notify.statistics().permit_stored
    await notify.notified()  # consumes the permit at once
    assert not notify.statistics().permit_stored
    with trio.move_on_after(1) as scope:  # no second permit
        await notify.notified()
    assert scope.cancelled_caught


async def test_notify_waiters_wakes_everyone_but_stores_nothing() -> None:
    notify = Notify()
    woken = 0

    async def wait() -> None:
        nonlocal woken
        await notify.notified()
        woken += 1

    async with trio.open_nursery() as nursery:
        for _ in range(4):
            nursery.start_soon(wait)
        await wait_idle()
        assert notify.statistics().tasks_waiting == 4
        notify.notify_waiters()
    assert woken == 4
    assert not notify.statistics().permit_stored


async def test_a_waiter_created_before_notify_waiters_is_not_missed(
    autojump_clock: trio.testing.MockClock,
) -> None:
    notify = Notify()
    waiter = notify.notified()
    notify.notify_waiters()
    await waiter  # completes although it started waiting after the call
    late = notify.notified()
    with trio.move_on_after(1) as scope:
        await late
    assert scope.cancelled_caught


async def test_cancelled_wait_consumes_nothing() -> None:
    notify = Notify()
    notify.notify_one()
    await raises_cancelled(notify.notified)
    assert notify.statistics().permit_stored
    await notify.notified()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_await, notify)
        await wait_idle()
        nursery.cancel_scope.cancel()
    assert notify.statistics().tasks_waiting == 0
    notify.notify_one()
    assert notify.statistics().permit_stored  # the cancelled waiter did not take it


async def _await(notify: Notify) -> None:
    await notify.notified()


async def test_notified_is_a_checkpoint(set_budget: Callable[[int], object]) -> None:
    set_budget(1)
    notify = Notify()
    notify.notify_one()
    with trio.testing.assert_checkpoints():
        await notify.notified()
    assert "permit=False" in repr(notify)
