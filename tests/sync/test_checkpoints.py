"""Every public async operation of runtime.sync, on its fast path (it could complete at once):

* is a cancellation point: inside a cancelled scope it raises Cancelled, budget or not;
* with a budget of 1 it is a full Trio checkpoint (``assert_checkpoints``);
* with a budget of N, any N consecutive calls include a schedule point.

Slow paths park, which is always a checkpoint; the per-primitive tests cover them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import trio
import trio.testing

from runtime.sync import (
    Barrier,
    CancellationToken,
    Notify,
    OnceCell,
    RwLock,
    Semaphore,
    broadcast,
    mpsc,
    oneshot,
    watch,
)

Op = Callable[[], Awaitable[Any]]
MANY = 1000
# Receivers the operations send to. A dropped endpoint is closed when it is collected (and a
# send to a closed receiver fails), so the factories keep theirs here.
_KEEP: list[object] = []


def _keep(endpoint: object) -> None:
    _KEEP.append(endpoint)


def _mpsc_send() -> Op:
    tx, rx = mpsc.unbounded_channel[int]()
    _keep(rx)
    return lambda: tx.send(1)


def _mpsc_reserve() -> Op:
    tx, rx = mpsc.unbounded_channel[int]()
    _keep(rx)
    return tx.reserve


def _mpsc_closed() -> Op:
    tx, rx = mpsc.channel[int](1)
    rx.close()
    return tx.closed


def _mpsc_receiver(method: str) -> Op:
    tx, rx = mpsc.unbounded_channel[int]()
    for value in range(MANY):
        tx.try_send(value)
    if method == "recv":
        return rx.recv
    if method == "recv_many":
        return lambda: rx.recv_many(1)
    return rx.__anext__


def _oneshot_recv() -> Op:
    tx, rx = oneshot.channel[int]()
    tx.send(1)
    return rx.recv


def _oneshot_closed() -> Op:
    tx, rx = oneshot.channel[int]()
    rx.close()
    return tx.closed


def _broadcast_send() -> Op:
    tx, rx = broadcast.channel[int](4)
    _keep(rx)
    return lambda: tx.send(1)


def _broadcast_recv(method: str) -> Op:
    tx, rx = broadcast.channel[int](MANY)
    for value in range(MANY):
        tx.send_nowait(value)
    return rx.recv if method == "recv" else rx.__anext__


def _watch_changed() -> Op:
    tx, rx = watch.channel[int](0)

    async def changed() -> int:
        tx.send(1)
        return await rx.changed()

    return changed


def _watch_wait_for() -> Op:
    _tx, rx = watch.channel[int](0)
    return lambda: rx.wait_for(lambda value: True)


def _watch_closed() -> Op:
    tx, rx = watch.channel[int](0)
    rx.close()
    return tx.closed


def _semaphore_acquire() -> Op:
    return Semaphore(10 * MANY).acquire


def _notify_notified() -> Op:
    notify = Notify()

    async def notified() -> None:
        notify.notify_one()
        await notify.notified()

    return notified


def _barrier_wait() -> Op:
    return Barrier(1).wait


def _rwlock(method: str) -> Op:
    lock = RwLock(0)

    async def acquire() -> None:
        guard = await (lock.read() if method == "read" else lock.write())
        guard.release()

    return acquire


def _once_cell_get_or_init() -> Op:
    cell = OnceCell(1)

    async def init() -> int:
        raise AssertionError("the cell is already set")

    return lambda: cell.get_or_init(init)


def _token_cancelled() -> Op:
    token = CancellationToken()
    token.cancel()
    return token.cancelled


OPERATIONS: dict[str, Callable[[], Op]] = {
    "mpsc.Sender.send": _mpsc_send,
    "mpsc.Sender.reserve": _mpsc_reserve,
    "mpsc.Sender.closed": _mpsc_closed,
    "mpsc.Receiver.recv": lambda: _mpsc_receiver("recv"),
    "mpsc.Receiver.recv_many": lambda: _mpsc_receiver("recv_many"),
    "mpsc.Receiver.__anext__": lambda: _mpsc_receiver("anext"),
    "oneshot.Receiver.recv": _oneshot_recv,
    "oneshot.Sender.closed": _oneshot_closed,
    "broadcast.Sender.send": _broadcast_send,
    "broadcast.Receiver.recv": lambda: _broadcast_recv("recv"),
    "broadcast.Receiver.__anext__": lambda: _broadcast_recv("anext"),
    "watch.Receiver.changed": _watch_changed,
    "watch.Receiver.wait_for": _watch_wait_for,
    "watch.Sender.closed": _watch_closed,
    "Semaphore.acquire": _semaphore_acquire,
    "Notify.notified": _notify_notified,
    "Barrier.wait": _barrier_wait,
    "RwLock.read": lambda: _rwlock("read"),
    "RwLock.write": lambda: _rwlock("write"),
    "OnceCell.get_or_init": _once_cell_get_or_init,
    "CancellationToken.cancelled": _token_cancelled,
}


@pytest.mark.parametrize("name", OPERATIONS)
async def test_is_a_cancellation_point(name: str) -> None:
    operation = OPERATIONS[name]()
    await trio.lowlevel.checkpoint()  # a fresh turn: the budget is full
    with trio.CancelScope() as scope:
        scope.cancel()
        await operation()
        raise AssertionError(f"{name} completed inside a cancelled scope")
    assert scope.cancelled_caught


@pytest.mark.parametrize("name", OPERATIONS)
async def test_with_a_budget_of_one_is_a_checkpoint(
    name: str, set_budget: Callable[[int], object]
) -> None:
    set_budget(1)
    operation = OPERATIONS[name]()
    for _ in range(3):
        with trio.testing.assert_checkpoints():
            await operation()


@pytest.mark.parametrize("name", OPERATIONS)
async def test_yields_at_least_once_per_budget(
    name: str, set_budget: Callable[[int], object]
) -> None:
    set_budget(16)
    operation = OPERATIONS[name]()
    for _ in range(10):
        with trio.testing.assert_checkpoints():
            for _ in range(16):
                await operation()


@pytest.mark.parametrize("name", OPERATIONS)
async def test_does_not_yield_on_every_call(
    name: str, set_budget: Callable[[int], object]
) -> None:
    """The point of the budget: 8 fast calls in a fresh turn of 16 stay in this turn."""
    set_budget(16)
    operation = OPERATIONS[name]()
    task = trio.lowlevel.current_task()
    await trio.lowlevel.checkpoint()
    before = task._schedule_points
    for _ in range(8):
        await operation()
    assert task._schedule_points == before
