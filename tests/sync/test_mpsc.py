"""runtime.sync.mpsc: order, backpressure, close semantics, permits, cancellation, fairness."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import trio
import trio.testing

from runtime.sync import EndOfChannel, WouldBlock, mpsc

from .conftest import raises_cancelled

wait_idle = trio.testing.wait_all_tasks_blocked


# --- construction -------------------------------------------------------------------------


def test_channel_is_subscriptable_and_returns_a_pair() -> None:
    tx, rx = mpsc.channel[int](3)
    assert isinstance(tx, mpsc.Sender)
    assert isinstance(rx, mpsc.Receiver)
    assert tx.statistics().capacity == 3


@pytest.mark.parametrize(
    ("capacity", "error", "match"),
    [(-1, ValueError, "capacity must be >= 0"), (1.5, TypeError, "must be an int")],
)
def test_bad_capacity(capacity: Any, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        mpsc.channel(capacity)


def test_unbounded_channel_reports_infinite_capacity() -> None:
    tx, _rx = mpsc.unbounded_channel[str]()
    assert tx.statistics().capacity == math.inf
    for value in range(10_000):
        tx.try_send(str(value))
    assert tx.statistics().buffered == 10_000


# --- the basic contract -------------------------------------------------------------------


async def test_values_arrive_in_order() -> None:
    tx, rx = mpsc.channel[int](4)
    received: list[int] = []

    async def consume() -> None:
        async for value in rx:
            received.append(value)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(consume)
        with tx:
            for value in range(100):
                await tx.send(value)
    assert received == list(range(100))


async def test_send_waits_for_room() -> None:
    tx, rx = mpsc.channel[str](1)
    await tx.send("a")
    sent = False

    async def send_b() -> None:
        nonlocal sent
        await tx.send("b")
        sent = True

    async with trio.open_nursery() as nursery:
        nursery.start_soon(send_b)
        await wait_idle()
        assert not sent
        assert tx.statistics().senders_waiting == 1
        assert await rx.recv() == "a"
        await wait_idle()
        assert sent
    assert await rx.recv() == "b"


async def test_rendezvous_send_completes_only_when_received() -> None:
    tx, rx = mpsc.channel[str](0)
    with pytest.raises(WouldBlock):
        tx.try_send("x")
    done = trio.Event()

    async def send() -> None:
        await tx.send("x")
        done.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(send)
        await wait_idle()
        assert not done.is_set()
        assert tx.statistics().buffered == 0
        assert await rx.recv() == "x"
        await done.wait()


async def test_rendezvous_send_hands_over_to_a_waiting_receiver() -> None:
    tx, rx = mpsc.channel[str](0)
    got: list[str] = []

    async def receive() -> None:
        got.append(await rx.recv())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(receive)
        await wait_idle()
        tx.try_send("hello")  # a receiver is waiting, so this does not block
    assert got == ["hello"]


async def test_try_send_and_try_recv() -> None:
    tx, rx = mpsc.channel[int](2)
    tx.try_send(1)
    tx.try_send(2)
    with pytest.raises(WouldBlock):
        tx.try_send(3)
    assert rx.try_recv() == 1
    assert rx.try_recv() == 2
    with pytest.raises(WouldBlock):
        rx.try_recv()
    tx.close()
    with pytest.raises(EndOfChannel):
        rx.try_recv()


async def test_recv_many_takes_what_is_ready_up_to_the_limit() -> None:
    tx, rx = mpsc.channel[int](10)
    for value in range(5):
        await tx.send(value)
    assert await rx.recv_many(3) == [0, 1, 2]
    assert await rx.recv_many(10) == [3, 4]
    with pytest.raises(ValueError, match="limit must be >= 1"):
        await rx.recv_many(0)
    tx.close()
    with pytest.raises(EndOfChannel):
        await rx.recv_many(4)


async def test_recv_many_waits_for_the_first_value() -> None:
    tx, rx = mpsc.channel[int](10)
    got: list[list[int]] = []

    async def receive() -> None:
        got.append(await rx.recv_many(10))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(receive)
        await wait_idle()
        assert got == []
        await tx.send(7)
    assert got == [[7]]


async def test_recv_many_on_a_rendezvous_takes_from_every_parked_sender() -> None:
    tx, rx = mpsc.channel[int](0)
    async with trio.open_nursery() as nursery:
        for value in range(3):
            nursery.start_soon(tx.clone().send, value)
            await wait_idle()
        assert await rx.recv_many(10) == [0, 1, 2]


async def test_statistics_track_peak_depth() -> None:
    tx, rx = mpsc.channel[int](8)
    for value in range(5):
        await tx.send(value)
    for _ in range(5):
        await rx.recv()
    await tx.send(9)
    stats = rx.statistics()
    assert stats.peak_buffered == 5
    assert stats.buffered == 1
    assert stats.open_senders == 1
    assert not stats.receiver_closed
    assert not stats.receiver_waiting


async def test_only_one_task_may_wait_in_recv() -> None:
    _tx, rx = mpsc.channel[int](1)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(rx.recv)
        await wait_idle()
        with pytest.raises(trio.BusyResourceError, match="single consumer"):
            await rx.recv()
        nursery.cancel_scope.cancel()


# --- close semantics ----------------------------------------------------------------------


async def test_receiver_drains_then_ends_when_every_sender_is_closed() -> None:
    tx, rx = mpsc.channel[int](4)
    tx2 = tx.clone()
    await tx.send(1)
    tx.close()
    await tx2.send(2)
    tx2.close()
    assert [value async for value in rx] == [1, 2]
    with pytest.raises(EndOfChannel, match="every sender is closed"):
        await rx.recv()


async def test_closing_the_last_sender_wakes_a_waiting_receiver() -> None:
    tx, rx = mpsc.channel[int](4)
    async with trio.open_nursery() as nursery:

        async def receive() -> None:
            with pytest.raises(EndOfChannel):
                await rx.recv()

        nursery.start_soon(receive)
        await wait_idle()
        tx.close()


async def test_a_closed_handle_refuses_to_send_or_clone() -> None:
    tx, _rx = mpsc.channel[int](4)
    tx.close()
    tx.close()  # idempotent
    assert tx.is_closed()
    with pytest.raises(trio.ClosedResourceError, match="was closed"):
        await tx.send(1)
    with pytest.raises(trio.ClosedResourceError):
        tx.try_send(1)
    with pytest.raises(trio.ClosedResourceError):
        tx.clone()
    with pytest.raises(trio.ClosedResourceError):
        await tx.reserve()


async def test_closing_a_handle_fails_its_own_waiting_sends_only() -> None:
    tx, rx = mpsc.channel[str](0)
    other = tx.clone()
    results: dict[str, str] = {}

    async def send(sender: mpsc.Sender[str], value: str) -> None:
        try:
            await sender.send(value)
            results[value] = "sent"
        except trio.ClosedResourceError:
            results[value] = "closed"

    async with trio.open_nursery() as nursery:
        nursery.start_soon(send, tx, "mine")
        await wait_idle()
        nursery.start_soon(send, other, "theirs")
        await wait_idle()
        tx.close()
        await wait_idle()
        assert results == {"mine": "closed"}
        assert await rx.recv() == "theirs"
    assert results == {"mine": "closed", "theirs": "sent"}


async def test_receiver_close_breaks_senders_but_keeps_what_was_accepted() -> None:
    tx, rx = mpsc.channel[int](2)
    await tx.send(1)
    await tx.send(2)
    outcome: list[str] = []

    async def blocked_send() -> None:
        try:
            await tx.send(3)
        except trio.BrokenResourceError:
            outcome.append("broken")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(blocked_send)
        await wait_idle()
        rx.close()
        rx.close()  # idempotent
    assert outcome == ["broken"]
    assert tx.receiver_closed()
    with pytest.raises(trio.BrokenResourceError, match="receiving side"):
        await tx.send(4)
    with pytest.raises(trio.BrokenResourceError):
        tx.try_send(4)
    assert [value async for value in rx] == [1, 2]
    with pytest.raises(EndOfChannel, match="receiver was closed"):
        rx.try_recv()


async def test_sender_closed_waits_for_the_receiver_to_go_away() -> None:
    tx, rx = mpsc.channel[int](1)
    returned = trio.Event()

    async def watch() -> None:
        await tx.closed()
        returned.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(watch)
        await wait_idle()
        assert not returned.is_set()
        rx.close()
    assert returned.is_set()
    await tx.closed()  # already closed: returns at once
    await raises_cancelled(tx.closed)  # and is still a cancellation point


async def test_context_managers_close() -> None:
    tx, rx = mpsc.channel[int](1)
    with tx:
        pass
    assert tx.is_closed()
    async with rx:
        pass
    assert rx.is_closed()
    tx2, rx2 = mpsc.channel[int](1)
    async with tx2:
        pass
    with rx2:
        pass
    assert tx2.is_closed()
    assert rx2.is_closed()


# --- permits ------------------------------------------------------------------------------


async def test_reserve_then_send_through_the_permit() -> None:
    tx, rx = mpsc.channel[str](1)
    async with tx.reserve() as permit:
        assert tx.statistics().reserved == 1
        with pytest.raises(WouldBlock):
            tx.try_send("no room: the slot is reserved")
        permit.send("reserved")
    assert tx.statistics().reserved == 0
    assert await rx.recv() == "reserved"


async def test_permit_is_given_back_when_the_block_raises() -> None:
    tx, _rx = mpsc.channel[str](1)
    with pytest.raises(LookupError):
        async with tx.reserve():
            raise LookupError
    assert tx.statistics().reserved == 0
    tx.try_send("the slot is free again")


async def test_awaited_permit_release_and_reuse_errors() -> None:
    tx, rx = mpsc.channel[int](1)
    permit = await tx.reserve()
    permit.release()
    permit.release()  # idempotent
    with pytest.raises(trio.ClosedResourceError, match="already used"):
        permit.send(1)
    with tx.try_reserve() as permit2:
        permit2.send(5)
    assert rx.try_recv() == 5


async def test_reserve_waits_in_line_with_senders() -> None:
    tx, rx = mpsc.channel[str](1)
    await tx.send("first")
    order: list[str] = []

    async def reserver() -> None:
        async with tx.reserve() as permit:
            order.append("reserved")
            permit.send("via permit")

    async def sender() -> None:
        await tx.send("plain")
        order.append("sent")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(reserver)
        await wait_idle()
        nursery.start_soon(sender)
        await wait_idle()
        with pytest.raises(WouldBlock):
            tx.try_reserve()
        assert await rx.recv() == "first"
        await wait_idle()
        assert await rx.recv() == "via permit"
        await wait_idle()
        assert await rx.recv() == "plain"
    assert order == ["reserved", "sent"]


async def test_a_permit_keeps_the_channel_open() -> None:
    tx, rx = mpsc.channel[int](1)
    permit = tx.try_reserve()
    tx.close()
    with pytest.raises(WouldBlock):
        rx.try_recv()
    permit.send(42)
    assert await rx.recv() == 42
    with pytest.raises(EndOfChannel):
        await rx.recv()


async def test_releasing_the_last_permit_ends_the_channel() -> None:
    tx, rx = mpsc.channel[int](1)
    permit = tx.try_reserve()
    tx.close()
    async with trio.open_nursery() as nursery:

        async def receive() -> None:
            with pytest.raises(EndOfChannel):
                await rx.recv()

        nursery.start_soon(receive)
        await wait_idle()
        permit.release()


async def test_permit_send_to_a_waiting_receiver_frees_the_slot() -> None:
    tx, rx = mpsc.channel[int](1)
    got: list[int] = []
    async with trio.open_nursery() as nursery:

        async def receive() -> None:
            got.append(await rx.recv())

        nursery.start_soon(receive)
        await wait_idle()
        permit = tx.try_reserve()
        permit.send(1)
    assert got == [1]
    assert tx.statistics().reserved == 0
    tx.try_send(2)


async def test_permit_send_after_receiver_close_is_broken() -> None:
    tx, rx = mpsc.channel[int](1)
    permit = tx.try_reserve()
    rx.close()
    with pytest.raises(trio.BrokenResourceError):
        permit.send(1)
    assert tx.statistics().reserved == 0


def test_reserve_needs_a_buffer() -> None:
    tx, _rx = mpsc.channel[int](0)
    with pytest.raises(ValueError, match="capacity-0"):
        tx.reserve()
    with pytest.raises(ValueError, match="capacity >= 1"):
        tx.try_reserve()


# --- cancellation -------------------------------------------------------------------------


async def test_cancelled_fast_path_send_did_not_send() -> None:
    tx, rx = mpsc.channel[int](4)
    await raises_cancelled(lambda: tx.send(1))
    with pytest.raises(WouldBlock):
        rx.try_recv()


async def test_cancelled_fast_path_recv_lost_nothing() -> None:
    tx, rx = mpsc.channel[int](4)
    await tx.send(1)
    await raises_cancelled(rx.recv)
    await raises_cancelled(lambda: rx.recv_many(3))
    assert rx.try_recv() == 1


async def test_cancelled_waiting_send_did_not_send() -> None:
    tx, rx = mpsc.channel[int](1)
    await tx.send(1)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(tx.send, 2)
        await wait_idle()
        nursery.cancel_scope.cancel()
    assert tx.statistics().senders_waiting == 0
    assert rx.try_recv() == 1
    with pytest.raises(WouldBlock):
        rx.try_recv()


async def test_cancelled_rendezvous_send_did_not_send() -> None:
    tx, rx = mpsc.channel[int](0)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(tx.send, 1)
        await wait_idle()
        nursery.cancel_scope.cancel()
    with pytest.raises(WouldBlock):
        rx.try_recv()


async def test_cancelled_waiting_recv_lost_nothing() -> None:
    tx, rx = mpsc.channel[int](1)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(rx.recv)
        await wait_idle()
        nursery.cancel_scope.cancel()
    assert not rx.statistics().receiver_waiting
    await tx.send(5)
    assert rx.try_recv() == 5


async def test_cancelled_reserve_holds_nothing() -> None:
    tx, _rx = mpsc.channel[int](1)
    await tx.send(0)
    async with trio.open_nursery() as nursery:

        async def reserve() -> None:
            async with tx.reserve():
                raise AssertionError("should not get a permit")

        nursery.start_soon(reserve)
        await wait_idle()
        nursery.cancel_scope.cancel()
    assert tx.statistics().reserved == 0
    assert tx.statistics().senders_waiting == 0


SENDER_OPS: dict[str, Callable[[mpsc.Sender[int]], Awaitable[object]]] = {
    "send": lambda tx: tx.send(1),
    "reserve": lambda tx: tx.reserve(),
    "closed": lambda tx: tx.closed(),
}


@pytest.mark.parametrize("name", sorted(SENDER_OPS))
async def test_sender_operations_are_checkpoints(
    name: str, set_budget: Callable[[int], object]
) -> None:
    set_budget(1)
    tx, rx = mpsc.channel[int](4)
    if name == "closed":
        rx.close()
    with trio.testing.assert_checkpoints():
        await SENDER_OPS[name](tx)


@pytest.mark.parametrize("name", ["recv", "recv_many", "anext"])
async def test_receiver_operations_are_checkpoints(
    name: str, set_budget: Callable[[int], object]
) -> None:
    set_budget(1)
    tx, rx = mpsc.channel[int](4)
    tx.try_send(1)
    with trio.testing.assert_checkpoints():
        if name == "recv":
            await rx.recv()
        elif name == "recv_many":
            await rx.recv_many(2)
        else:
            await rx.__anext__()


async def test_operations_that_raise_check_cancellation_first() -> None:
    tx, rx = mpsc.channel[int](1)
    tx.close()
    await raises_cancelled(lambda: tx.send(1))
    await raises_cancelled(rx.recv)


# --- fairness -----------------------------------------------------------------------------


async def test_senders_waiting_on_a_full_channel_are_served_in_order() -> None:
    tx, rx = mpsc.channel[int](1)
    await tx.send(-1)
    async with trio.open_nursery() as nursery:
        for value in range(10):
            nursery.start_soon(tx.clone().send, value)
            await wait_idle()  # make the arrival order explicit
        assert tx.statistics().senders_waiting == 10
        # A newcomer does not overtake the queue even when a slot frees up.
        assert rx.try_recv() == -1
        with pytest.raises(WouldBlock):
            tx.try_send(99)
        received = [rx.try_recv()]
        for _ in range(9):
            await wait_idle()
            received.append(await rx.recv())
    assert received == list(range(10))


async def test_a_new_send_does_not_overtake_parked_senders_to_a_waiting_receiver() -> None:
    """Permits hold every slot, so a receiver and a sender can both be waiting. A newcomer must
    queue behind the parked sender instead of handing its value straight to the receiver."""
    tx, rx = mpsc.channel[str](1)
    permit = tx.try_reserve()
    got: list[str] = []

    async def receive_two() -> None:
        got.append(await rx.recv())
        got.append(await rx.recv())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(tx.send, "parked first")
        await wait_idle()
        nursery.start_soon(receive_two)
        await wait_idle()
        assert rx.statistics().receiver_waiting
        with pytest.raises(WouldBlock):
            tx.try_send("newcomer")
        nursery.start_soon(tx.send, "newcomer")
        await wait_idle()
        assert got == []
        permit.release()
        await wait_idle()
        # The released slot let "parked first" through to the receiver, which left the slot
        # free for "newcomer" too: nobody is left waiting.
        assert got == ["parked first", "newcomer"]
        assert tx.statistics().senders_waiting == 0


async def test_permit_send_to_a_waiting_receiver_admits_a_parked_sender() -> None:
    tx, rx = mpsc.channel[str](1)
    permit = tx.try_reserve()
    got: list[str] = []

    async def receive() -> None:
        got.append(await rx.recv())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(tx.send, "parked")
        await wait_idle()
        nursery.start_soon(receive)
        await wait_idle()
        permit.send("via permit")
        await wait_idle()
        assert got == ["via permit"]
        stats = tx.statistics()
        assert (stats.senders_waiting, stats.buffered, stats.reserved) == (0, 1, 0)
    assert rx.try_recv() == "parked"


async def test_rendezvous_senders_are_served_in_order() -> None:
    tx, rx = mpsc.channel[int](0)
    async with trio.open_nursery() as nursery:
        for value in range(5):
            nursery.start_soon(tx.clone().send, value)
            await wait_idle()
        assert [await rx.recv() for _ in range(5)] == list(range(5))


def test_reprs_say_what_they_are() -> None:
    tx, rx = mpsc.channel[int](2)
    assert "capacity=2" in repr(tx)
    assert "open" in repr(rx)
    assert "held" in repr(tx.try_reserve())
    assert "unbounded" in repr(mpsc.unbounded_channel[int]()[0])


# --- dropped endpoints (B14b) ---------------------------------------------------------------


async def test_a_dropped_sender_warns_and_ends_the_parked_receiver() -> None:
    """Regression (B14b): a Sender dropped without close() left the receiver waiting forever."""
    tx, rx = mpsc.channel[int](4)
    ended: list[str] = []

    async def consume() -> None:
        async for _ in rx:
            pass
        ended.append("end of channel")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(consume)
        await wait_idle()
        with pytest.warns(ResourceWarning, match="garbage-collected without being closed"):
            del tx
        await wait_idle()  # the close runs from the run loop, then the receiver wakes
        assert ended == ["end of channel"]
    assert ended == ["end of channel"]


async def test_a_dropped_permit_gives_its_slot_to_a_parked_sender() -> None:
    tx, rx = mpsc.channel[int](1)
    permit = await tx.reserve()
    sent: list[int] = []

    async def send() -> None:
        await tx.send(7)
        sent.append(7)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(send)
        await wait_idle()
        assert not sent
        with pytest.warns(ResourceWarning, match="Permit"):
            del permit
        await wait_idle()
    assert sent == [7]
    assert rx.try_recv() == 7


async def test_a_dropped_receiver_fails_the_parked_sender() -> None:
    tx, rx = mpsc.channel[int](0)
    failed: list[BaseException] = []

    async def send() -> None:
        try:
            await tx.send(1)
        except trio.BrokenResourceError as exc:
            failed.append(exc)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(send)
        await wait_idle()
        with pytest.warns(ResourceWarning, match="Receiver"):
            del rx
        await wait_idle()
    assert len(failed) == 1


def test_an_endpoint_dropped_outside_a_run_only_warns() -> None:
    tx, rx = mpsc.channel[int](1)
    rx.close()
    with pytest.warns(ResourceWarning, match="Sender"):
        del tx


async def test_closed_or_finished_endpoints_drop_silently(
    recwarn: pytest.WarningsRecorder,
) -> None:
    tx, rx = mpsc.channel[int](1)
    tx.close()
    with pytest.raises(trio.EndOfChannel):
        await rx.recv()  # ended: closing the receiver would change nothing
    ids = {id(tx), id(rx)}
    del tx, rx
    # Only this test's endpoints count: an endpoint or a socket that another test left to the
    # collector may be collected now, with a ResourceWarning of its own. (A warning keeps its
    # source alive, so an id in it is still ours.)
    ours = [
        w
        for w in recwarn
        if issubclass(w.category, ResourceWarning) and id(getattr(w, "source", None)) in ids
    ]
    assert not ours
