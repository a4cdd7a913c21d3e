"""DelayQueue: items come out when due, remove/reset by key, cancel-safe waiting."""

from __future__ import annotations

import math

import pytest
import trio
import trio.testing

from runtime.time import DelayQueue, TimerWheel

TICK = 0.001


async def drain(queue: DelayQueue[str]) -> list[tuple[str, float]]:
    return [(item, trio.current_time()) async for item in queue]


async def test_items_come_out_in_deadline_order_when_due(
    autojump_clock: trio.testing.MockClock,
) -> None:
    queue: DelayQueue[str] = DelayQueue()
    for item, delay in [("c", 3.0), ("a", 1.0), ("d", 40.0), ("b", 2.5)]:
        queue.insert(item, delay)
    assert len(queue) == 4
    got = await drain(queue)
    assert got == [
        ("a", pytest.approx(1.0)),
        ("b", pytest.approx(2.5)),
        ("c", pytest.approx(3.0)),
        ("d", pytest.approx(40.0)),
    ]
    assert len(queue) == 0


async def test_same_tick_items_keep_insertion_order(
    autojump_clock: trio.testing.MockClock,
) -> None:
    queue: DelayQueue[int] = DelayQueue()
    for n in range(20):
        queue.insert(n, 0.5001 + (19 - n) * 0.00004)  # all due at the tick of 0.501 s
    assert [n async for n in queue] == list(range(20))


async def test_remove_before_and_after_expiry(autojump_clock: trio.testing.MockClock) -> None:
    queue: DelayQueue[str] = DelayQueue()
    a = queue.insert("a", 1)
    b = queue.insert("b", 2)
    c = queue.insert("c", 3)
    assert queue.remove(b) == "b"
    assert b not in queue and a in queue
    await trio.sleep(5)  # a and c have expired, nobody took them
    assert len(queue) == 2
    assert queue.remove(c) == "c"
    assert [item async for item in queue] == ["a"]
    with pytest.raises(KeyError, match="already taken or removed"):
        queue.remove(a)
    assert TimerWheel.current().statistics().pending == 0


async def test_reset_moves_an_item_even_after_it_expired(
    autojump_clock: trio.testing.MockClock,
) -> None:
    queue: DelayQueue[str] = DelayQueue()
    first = queue.insert("first", 1)
    queue.insert("second", 2)
    queue.reset(first, 5)  # later
    assert first.deadline == pytest.approx(5)
    third = queue.insert("third", 10)
    queue.reset_at(third, 0.5)  # earlier
    await trio.sleep(3)
    assert queue.next_expired_nowait() == "third"
    assert queue.next_expired_nowait() == "second"
    with pytest.raises(trio.WouldBlock):
        queue.next_expired_nowait()
    late = queue.insert("late", 0.1)
    await trio.sleep(1)  # expired and waiting
    queue.reset(late, 10)  # back in the wheel
    assert await drain(queue) == [
        ("first", pytest.approx(5)),
        ("late", pytest.approx(14)),
    ]


async def test_keys_from_another_queue_are_refused(
    autojump_clock: trio.testing.MockClock,
) -> None:
    one: DelayQueue[int] = DelayQueue()
    two: DelayQueue[int] = DelayQueue()
    key = one.insert(1, 1)
    with pytest.raises(KeyError, match="another DelayQueue"):
        two.remove(key)
    with pytest.raises(KeyError):
        two.reset(key, 1)


async def test_deadlines_must_be_finite(autojump_clock: trio.testing.MockClock) -> None:
    queue: DelayQueue[int] = DelayQueue()
    for bad in (math.inf, math.nan):
        with pytest.raises(ValueError, match="finite"):
            queue.insert(1, bad)
    key = queue.insert(1, 1)
    with pytest.raises(ValueError, match="finite"):
        queue.reset(key, math.inf)
    assert len(queue) == 1


async def test_zero_and_negative_delays_expire_at_the_next_tick(
    autojump_clock: trio.testing.MockClock,
) -> None:
    queue: DelayQueue[str] = DelayQueue()
    await trio.sleep(0.0003)
    queue.insert("zero", 0)
    queue.insert("negative", -5)
    start = trio.current_time()
    assert [item async for item in queue] == ["zero", "negative"]
    assert 0 <= trio.current_time() - start <= TICK


async def test_iteration_ends_when_empty_but_next_expired_waits(
    autojump_clock: trio.testing.MockClock,
) -> None:
    queue: DelayQueue[str] = DelayQueue()
    assert [item async for item in queue] == []

    async def later() -> None:
        await trio.sleep(7)
        queue.insert("x", 1)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(later)
        assert await queue.next_expired() == "x"
    assert trio.current_time() == pytest.approx(8)


def test_a_queue_made_outside_trio_finds_the_wheel_on_first_insert() -> None:
    queue: DelayQueue[int] = DelayQueue()  # no Trio needed to create it

    async def main() -> list[int]:
        queue.insert(1, 0.2)
        return [n async for n in queue]

    assert trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0)) == [1]


@pytest.mark.parametrize("cancel_first", [True, False])
async def test_a_cancelled_wait_loses_no_item(
    cancel_first: bool, autojump_clock: trio.testing.MockClock
) -> None:
    """Cancel the waiter in the very tick its item expires, before and after the item."""
    queue: DelayQueue[str] = DelayQueue()
    wheel = TimerWheel.current()
    deadline = trio.current_time() + 1
    got: list[str] = []

    async def consumer(task_status: trio.TaskStatus[trio.CancelScope]) -> None:
        with trio.CancelScope() as scope:
            task_status.started(scope)
            got.append(await queue.next_expired())

    async with trio.open_nursery() as nursery:
        scope = await nursery.start(consumer)
        if cancel_first:
            wheel.call_at(deadline, scope.cancel)
            queue.insert_at("item", deadline)
        else:
            queue.insert_at("item", deadline)
            wheel.call_at(deadline, scope.cancel)
    assert trio.current_time() == pytest.approx(1)
    # Either the consumer took the item, or it is still in the queue: never lost.
    assert got + [item async for item in queue] == ["item"]
    assert got == ([] if cancel_first else ["item"])


async def test_many_waiters_each_get_one_item(autojump_clock: trio.testing.MockClock) -> None:
    queue: DelayQueue[int] = DelayQueue()
    got: list[int] = []

    async def waiter() -> None:
        got.append(await queue.next_expired())

    async with trio.open_nursery() as nursery:
        for _ in range(5):
            nursery.start_soon(waiter)
        await trio.testing.wait_all_tasks_blocked()
        for n in range(5):
            queue.insert(n, 1 + n)
    assert sorted(got) == [0, 1, 2, 3, 4]
    assert len(queue) == 0


async def test_next_expired_is_a_checkpoint(autojump_clock: trio.testing.MockClock) -> None:
    queue: DelayQueue[int] = DelayQueue()
    queue.insert(1, 0)
    await trio.sleep(1)
    with trio.testing.assert_checkpoints():
        assert await queue.next_expired() == 1
    assert "DelayQueue" in repr(queue)


def test_a_queue_with_waiting_items_refuses_a_second_run() -> None:
    """Regression (B14a): the queue kept the wheel of its first run and waited on it forever."""
    queue: DelayQueue[str] = DelayQueue()

    async def first() -> None:
        queue.insert("left behind", 10)
        queue.insert("taken", 0.5)
        assert await queue.next_expired() == "taken"

    async def second() -> None:
        with pytest.raises(RuntimeError, match="another run"):
            queue.insert("new", 1)
        with pytest.raises(RuntimeError, match="another run"):
            await queue.next_expired()

    trio.run(first, clock=trio.testing.MockClock(autojump_threshold=0))
    trio.run(second, clock=trio.testing.MockClock(autojump_threshold=0))
    assert len(queue) == 1


def test_an_emptied_queue_moves_to_the_next_run() -> None:
    queue: DelayQueue[str] = DelayQueue()

    async def use(item: str) -> tuple[str, float]:
        start = trio.current_time()
        queue.insert(item, 2)
        got = await queue.next_expired()
        return got, trio.current_time() - start

    for item in ["first run", "second run"]:
        got, waited = trio.run(use, item, clock=trio.testing.MockClock(autojump_threshold=0))
        assert (got, waited) == (item, pytest.approx(2))
