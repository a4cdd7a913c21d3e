"""runtime.sync.broadcast: fan-out, lag, close semantics, cancellation, checkpoints."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import trio
import trio.testing

from runtime.sync import EndOfChannel, Lagged, WouldBlock, broadcast

from .conftest import raises_cancelled

wait_idle = trio.testing.wait_all_tasks_blocked


def test_bad_capacity() -> None:
    with pytest.raises(ValueError, match="capacity >= 1"):
        broadcast.channel[int](0)
    with pytest.raises(TypeError, match="must be an int"):
        broadcast.channel("8")  # type: ignore[arg-type]


async def test_each_subscriber_sees_values_sent_after_it_subscribed() -> None:
    tx, early = broadcast.channel[str](8)
    await tx.send("a")
    late = tx.subscribe()
    await tx.send("b")
    assert early.try_recv() == "a"
    assert early.try_recv() == "b"
    assert late.try_recv() == "b"
    with pytest.raises(WouldBlock):
        late.try_recv()


async def test_a_lagging_subscriber_is_told_how_much_it_missed_then_continues() -> None:
    tx, rx = broadcast.channel[int](3)
    for value in range(10):
        assert await tx.send(value) == 1
    assert rx.pending() == 10
    with pytest.raises(Lagged) as info:
        await rx.recv()
    assert info.value.missed == 7
    assert "missed 7" in str(info.value)
    assert [await rx.recv() for _ in range(3)] == [7, 8, 9]


async def test_the_sender_never_waits_for_slow_subscribers() -> None:
    tx, _slow = broadcast.channel[int](2)
    with trio.testing.assert_no_checkpoints():
        for value in range(1000):
            tx.send_nowait(value)
    assert tx.statistics().sent == 1000


async def test_send_returns_the_number_of_subscribers() -> None:
    tx, rx = broadcast.channel[int](2)
    other = rx.subscribe()
    assert tx.subscriber_count() == 2
    assert await tx.send(1) == 2
    other.close()
    rx.close()
    assert await tx.send(2) == 0


async def test_a_waiting_subscriber_wakes_on_send() -> None:
    tx, rx = broadcast.channel[int](2)
    got: list[int] = []
    async with trio.open_nursery() as nursery:

        async def receive() -> None:
            got.append(await rx.recv())

        nursery.start_soon(receive)
        await wait_idle()
        assert tx.statistics().receivers_waiting == 1
        await tx.send(5)
    assert got == [5]


async def test_end_of_channel_after_every_sender_closes() -> None:
    tx, rx = broadcast.channel[int](4)
    tx2 = tx.clone()
    await tx.send(1)
    tx.close()
    await tx2.send(2)
    async with trio.open_nursery() as nursery:

        async def read_all() -> None:
            assert [value async for value in rx] == [1, 2]

        nursery.start_soon(read_all)
        await wait_idle()
        tx2.close()
    with pytest.raises(EndOfChannel):
        rx.try_recv()
    late = rx.subscribe()
    with pytest.raises(EndOfChannel):
        await late.recv()


async def test_closed_handles_refuse_use() -> None:
    tx, rx = broadcast.channel[int](4)
    tx.close()
    tx.close()
    assert tx.is_closed()
    for operation in (lambda: tx.send_nowait(1), tx.subscribe, tx.clone):
        with pytest.raises(trio.ClosedResourceError):
            operation()
    with pytest.raises(trio.ClosedResourceError):
        await tx.send(1)
    rx.close()
    assert rx.is_closed()
    with pytest.raises(trio.ClosedResourceError):
        await rx.recv()


async def test_closing_a_subscriber_fails_its_waiting_receive() -> None:
    tx, rx = broadcast.channel[int](4)
    other = tx.subscribe()
    results: list[str] = []

    async def receive(sub: broadcast.Receiver[int], name: str) -> None:
        try:
            await sub.recv()
        except trio.ClosedResourceError:
            results.append(f"{name} closed")
        else:
            results.append(f"{name} got a value")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(receive, rx, "rx")
        nursery.start_soon(receive, other, "other")
        await wait_idle()
        rx.close()
        await wait_idle()
        assert results == ["rx closed"]
        assert tx.subscriber_count() == 1
        await tx.send(1)
    assert results == ["rx closed", "other got a value"]


async def test_cancelled_recv_keeps_the_position() -> None:
    tx, rx = broadcast.channel[int](4)
    await tx.send(1)
    await raises_cancelled(rx.recv)
    assert rx.try_recv() == 1
    async with trio.open_nursery() as nursery:
        nursery.start_soon(rx.recv)
        await wait_idle()
        nursery.cancel_scope.cancel()
    assert tx.statistics().receivers_waiting == 0
    await tx.send(2)
    assert rx.try_recv() == 2


async def test_cancelled_send_did_not_send() -> None:
    tx, rx = broadcast.channel[int](4)
    await raises_cancelled(lambda: tx.send(1))
    assert tx.statistics().sent == 0
    with pytest.raises(WouldBlock):
        rx.try_recv()


async def test_operations_are_checkpoints(set_budget: Callable[[int], object]) -> None:
    set_budget(1)
    tx, rx = broadcast.channel[int](4)
    with trio.testing.assert_checkpoints():
        await tx.send(1)
    with trio.testing.assert_checkpoints():
        await rx.recv()
    await tx.send(2)
    with trio.testing.assert_checkpoints():
        await rx.__anext__()


async def test_values_are_shared_objects_and_statistics() -> None:
    tx, rx = broadcast.channel[list[int]](2)
    other = rx.subscribe()
    value = [1]
    await tx.send(value)
    assert rx.try_recv() is other.try_recv() is value
    stats = tx.statistics()
    assert (stats.capacity, stats.sent, stats.open_senders, stats.subscribers) == (2, 1, 1, 2)
    assert "subscribers=2" in repr(tx)
    assert "pending=0" in repr(rx)


async def test_with_blocks_close() -> None:
    tx, rx = broadcast.channel[int](1)
    with tx, rx:
        pass
    assert tx.is_closed()
    assert rx.is_closed()
