"""runtime.sync.oneshot: one value, a sender that never waits, clear endings."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import trio
import trio.testing

from runtime.sync import EndOfChannel, WouldBlock, oneshot

from .conftest import raises_cancelled

wait_idle = trio.testing.wait_all_tasks_blocked


async def test_value_reaches_a_waiting_receiver() -> None:
    tx, rx = oneshot.channel[str]()
    got: list[str] = []
    async with trio.open_nursery() as nursery:

        async def receive() -> None:
            got.append(await rx)

        nursery.start_soon(receive)
        await wait_idle()
        tx.send("reply")
    assert got == ["reply"]
    assert tx.is_closed()


async def test_value_sent_first_is_there_when_asked() -> None:
    tx, rx = oneshot.channel[int]()
    with pytest.raises(WouldBlock):
        rx.try_recv()
    tx.send(7)
    assert await rx.recv() == 7
    assert rx.try_recv() == 7  # the value stays readable


async def test_send_fails_at_once_returning_the_value_if_receiver_is_gone() -> None:
    tx, rx = oneshot.channel[list[int]]()
    rx.close()
    assert tx.receiver_closed()
    value = [1, 2]
    with trio.testing.assert_no_checkpoints(), pytest.raises(oneshot.SendError) as info:
        tx.send(value)
    assert info.value.value is value
    assert isinstance(info.value, trio.BrokenResourceError)


async def test_send_twice_is_an_error() -> None:
    tx, _rx = oneshot.channel[int]()
    tx.send(1)
    with pytest.raises(trio.ClosedResourceError, match="one value"):
        tx.send(2)


async def test_sender_closed_without_sending_ends_the_receiver() -> None:
    tx, rx = oneshot.channel[int]()
    async with trio.open_nursery() as nursery:

        async def receive() -> None:
            with pytest.raises(EndOfChannel, match="without sending"):
                await rx.recv()

        nursery.start_soon(receive)
        await wait_idle()
        with tx:
            pass  # a failure before send would leave the block the same way
    with pytest.raises(EndOfChannel):
        rx.try_recv()


async def test_receiver_close_wakes_sender_closed_and_its_own_waiter() -> None:
    tx, rx = oneshot.channel[int]()
    events: list[str] = []
    async with trio.open_nursery() as nursery:

        async def sender_side() -> None:
            await tx.closed()
            events.append("sender saw close")

        async def receiver_side() -> None:
            with pytest.raises(EndOfChannel, match="receiver was closed"):
                await rx.recv()
            events.append("receive ended")

        nursery.start_soon(sender_side)
        nursery.start_soon(receiver_side)
        await wait_idle()
        with rx:
            pass
    assert sorted(events) == ["receive ended", "sender saw close"]
    await tx.closed()  # returns at once now
    await raises_cancelled(tx.closed)


async def test_value_stays_readable_after_receiver_close() -> None:
    tx, rx = oneshot.channel[int]()
    tx.send(3)
    rx.close()
    assert rx.try_recv() == 3


async def test_only_one_task_waits() -> None:
    _tx, rx = oneshot.channel[int]()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(rx.recv)
        await wait_idle()
        with pytest.raises(trio.BusyResourceError):
            await rx.recv()
        nursery.cancel_scope.cancel()


async def test_cancelled_recv_lost_nothing() -> None:
    tx, rx = oneshot.channel[int]()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(rx.recv)
        await wait_idle()
        nursery.cancel_scope.cancel()
    tx.send(9)
    await raises_cancelled(rx.recv)
    assert await rx.recv() == 9


async def test_recv_is_a_checkpoint(set_budget: Callable[[int], object]) -> None:
    set_budget(1)
    tx, rx = oneshot.channel[int]()
    tx.send(1)
    with trio.testing.assert_checkpoints():
        await rx.recv()


def test_reprs() -> None:
    tx, rx = oneshot.channel[int]()
    assert "open" in repr(tx)
    assert "waiting" in repr(rx)
    tx.send(1)
    assert "ready" in repr(rx)
    tx.close()  # idempotent after a send
    rx.close()
    rx.close()


async def test_a_dropped_sender_warns_and_the_waiting_receiver_ends() -> None:
    """Regression (B14b): a oneshot Sender dropped unsent left its receiver waiting forever."""
    tx, rx = oneshot.channel[int]()
    outcome: list[str] = []

    async def wait() -> None:
        try:
            await rx.recv()
        except EndOfChannel:
            outcome.append("no value")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(wait)
        await trio.testing.wait_all_tasks_blocked()
        with pytest.warns(ResourceWarning, match="oneshot.Sender"):
            del tx
    assert outcome == ["no value"]
