"""runtime.sync.watch: latest value, change notification, wait_for, close semantics."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import trio
import trio.testing

from runtime.sync import EndOfChannel, watch

from .conftest import raises_cancelled

wait_idle = trio.testing.wait_all_tasks_blocked


async def test_borrow_and_changed() -> None:
    tx, rx = watch.channel[str]("initial")
    assert rx.borrow() == tx.borrow() == "initial"
    assert not rx.has_changed()
    tx.send("one")
    tx.send("two")
    assert rx.has_changed()
    assert rx.borrow() == "two"
    assert await rx.changed() == "two"  # intermediate values are skipped
    assert not rx.has_changed()


async def test_changed_waits_for_a_send() -> None:
    tx, rx = watch.channel[int](0)
    got: list[int] = []
    async with trio.open_nursery() as nursery:

        async def wait_change() -> None:
            got.append(await rx.changed())

        nursery.start_soon(wait_change)
        await wait_idle()
        assert tx.statistics().receivers_waiting == 1
        tx.send(1)
    assert got == [1]


async def test_every_receiver_is_woken() -> None:
    tx, rx = watch.channel[int](0)
    receivers = [rx, tx.subscribe(), rx.clone()]
    got: list[int] = []
    async with trio.open_nursery() as nursery:
        for receiver in receivers:
            nursery.start_soon(_record_change, receiver, got)
        await wait_idle()
        tx.send(5)
    assert got == [5, 5, 5]


async def _record_change(rx: watch.Receiver[int], got: list[int]) -> None:
    got.append(await rx.changed())


async def test_subscribe_has_seen_the_current_value_and_clone_copies_seen() -> None:
    tx, rx = watch.channel[int](0)
    tx.send(1)
    fresh = tx.subscribe()
    copy = rx.clone()
    assert not fresh.has_changed()
    assert copy.has_changed()
    assert rx.borrow_and_update() == 1
    assert not rx.has_changed()


async def test_send_modify_and_send_if_modified() -> None:
    tx, rx = watch.channel[list[int]]([])
    tx.send_modify(lambda value: value.append(1))
    assert rx.has_changed()
    assert await rx.changed() == [1]
    assert not tx.send_if_modified(lambda value: False)
    assert not rx.has_changed()

    def append_two(value: list[int]) -> bool:
        value.append(2)
        return True

    assert tx.send_if_modified(append_two)
    assert await rx.changed() == [1, 2]
    assert tx.send_replace([9]) == [1, 2]
    assert rx.borrow() == [9]


async def test_send_modify_that_raises_does_not_notify() -> None:
    tx, rx = watch.channel[dict[str, int]]({})

    def broken(value: dict[str, int]) -> None:
        raise LookupError

    with pytest.raises(LookupError):
        tx.send_modify(broken)
    assert not rx.has_changed()


async def test_wait_for_checks_the_current_value_first() -> None:
    tx, rx = watch.channel[int](10)
    assert await rx.wait_for(lambda v: v >= 10) == 10
    async with trio.open_nursery() as nursery:

        async def wait_big() -> None:
            assert await rx.wait_for(lambda v: v > 100) == 101

        nursery.start_soon(wait_big)
        for value in (50, 99, 101):
            await wait_idle()
            tx.send(value)


async def test_sender_close_reports_the_last_change_then_ends() -> None:
    tx, rx = watch.channel[int](0)
    tx.send(1)
    tx.close()
    tx.close()
    assert tx.is_closed()
    with pytest.raises(trio.ClosedResourceError):
        tx.send(2)
    assert await rx.changed() == 1
    with pytest.raises(EndOfChannel):
        await rx.changed()
    assert rx.borrow() == 1
    assert [value async for value in rx] == []


async def test_sender_close_wakes_waiters_and_wait_for_ends() -> None:
    tx, rx = watch.channel[int](0)
    async with trio.open_nursery() as nursery:

        async def wait() -> None:
            with pytest.raises(EndOfChannel):
                await rx.wait_for(lambda v: v > 0)

        nursery.start_soon(wait)
        await wait_idle()
        tx.close()


async def test_iteration_yields_each_seen_change() -> None:
    tx, rx = watch.channel[int](0)
    seen: list[int] = []
    async with trio.open_nursery() as nursery:

        async def follow() -> None:
            async for value in rx:
                seen.append(value)

        nursery.start_soon(follow)
        for value in (1, 2, 3):
            await wait_idle()
            tx.send(value)
        await wait_idle()
        tx.close()
    assert seen == [1, 2, 3]


async def test_receiver_close_and_sender_closed() -> None:
    tx, rx = watch.channel[int](0)
    other = tx.subscribe()
    assert tx.receiver_count() == 2
    returned = trio.Event()
    async with trio.open_nursery() as nursery:

        async def wait_closed() -> None:
            await tx.closed()
            returned.set()

        async def waiting_receiver() -> None:
            with pytest.raises(trio.ClosedResourceError):
                await rx.changed()

        nursery.start_soon(wait_closed)
        nursery.start_soon(waiting_receiver)
        await wait_idle()
        rx.close()
        await wait_idle()
        assert not returned.is_set()
        with other:
            pass
    assert returned.is_set()
    assert tx.receiver_count() == 0
    tx.send(1)  # still stores the value with nobody listening
    assert tx.borrow() == 1
    with pytest.raises(trio.ClosedResourceError):
        await rx.wait_for(lambda v: True)


async def test_cancelled_changed_marks_nothing_seen() -> None:
    tx, rx = watch.channel[int](0)
    tx.send(1)
    await raises_cancelled(rx.changed)
    assert rx.has_changed()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(rx.changed)
        await wait_idle()
        nursery.cancel_scope.cancel()
    assert tx.statistics().receivers_waiting == 0


async def test_operations_are_checkpoints(set_budget: Callable[[int], object]) -> None:
    set_budget(1)
    tx, rx = watch.channel[int](0)
    tx.send(1)
    with trio.testing.assert_checkpoints():
        await rx.changed()
    with trio.testing.assert_checkpoints():
        await rx.wait_for(lambda v: True)
    rx.close()
    with trio.testing.assert_checkpoints():
        await tx.closed()


def test_statistics_and_reprs() -> None:
    tx, rx = watch.channel[int](0)
    tx.send(1)
    stats = tx.statistics()
    assert (stats.version, stats.sender_closed, stats.receivers) == (1, False, 1)
    assert "version=1" in repr(tx)
    assert "seen=0" in repr(rx)
