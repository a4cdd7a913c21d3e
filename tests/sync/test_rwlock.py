"""runtime.sync.RwLock: shared reads, exclusive writes, write preference, FIFO fairness."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import trio
import trio.testing

from runtime.sync import RwLock, WouldBlock

wait_idle = trio.testing.wait_all_tasks_blocked


async def test_readers_share_and_writers_replace_the_value() -> None:
    lock = RwLock({"version": 1})
    async with lock.read() as first, lock.read() as second:
        assert first.value is second.value
        assert lock.statistics().readers == 2
    async with lock.write() as guard:
        guard.value = {"version": 2}
        assert lock.statistics().writer
    reader = await lock.read()
    assert reader.value == {"version": 2}
    reader.release()
    reader.release()  # idempotent
    with pytest.raises(RuntimeError, match="released"):
        _ = reader.value


async def test_a_writer_excludes_readers_and_writers() -> None:
    lock = RwLock(0)
    writer = lock.try_write()
    with pytest.raises(WouldBlock):
        lock.try_read()
    with pytest.raises(WouldBlock):
        lock.try_write()
    with writer:
        writer.value = 5
    with lock.try_read() as reader:
        assert reader.value == 5


async def test_a_waiting_writer_blocks_new_readers() -> None:
    lock = RwLock("v1")
    events: list[str] = []
    reader = await lock.read()

    async def write() -> None:
        async with lock.write() as guard:
            events.append("writer")
            guard.value = "v2"

    async def read(name: str) -> None:
        async with lock.read() as guard:
            events.append(f"{name} saw {guard.value}")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(write)
        await wait_idle()
        nursery.start_soon(read, "late reader")
        await wait_idle()
        with pytest.raises(WouldBlock):
            lock.try_read()
        assert events == []
        reader.release()
    assert events == ["writer", "late reader saw v2"]


async def test_waiters_are_served_in_order_and_readers_go_in_together() -> None:
    lock = RwLock(0)
    writer = await lock.write()
    events: list[str] = []

    async def read(name: str) -> None:
        async with lock.read():
            events.append(f"{name} in")
            await wait_idle()
            events.append(f"{name} out")

    async def write(name: str) -> None:
        async with lock.write():
            events.append(f"{name} in")
            events.append(f"{name} out")

    async with trio.open_nursery() as nursery:
        for name, fn in [("r1", read), ("r2", read), ("w1", write), ("r3", read)]:
            nursery.start_soon(fn, name)
            await wait_idle()
        writer.release()
    assert sorted(events[:2]) == ["r1 in", "r2 in"]  # both readers at once
    assert events[4:] == ["w1 in", "w1 out", "r3 in", "r3 out"]
    assert lock.statistics().tasks_waiting == 0


async def test_cancelled_writer_lets_readers_behind_it_go() -> None:
    lock = RwLock(0)
    reader = await lock.read()
    got: list[str] = []

    async def read() -> None:
        async with lock.read():
            got.append("read")

    async with trio.open_nursery() as nursery:
        writer_scope = trio.CancelScope()

        async def write() -> None:
            with writer_scope:
                await lock.write()

        nursery.start_soon(write)
        await wait_idle()
        nursery.start_soon(read)
        await wait_idle()
        assert got == []
        writer_scope.cancel()
    assert got == ["read"]
    reader.release()


def test_max_readers() -> None:
    lock = RwLock(0, max_readers=2)
    first, second = lock.try_read(), lock.try_read()
    with pytest.raises(WouldBlock):
        lock.try_read()
    first.release()
    second.release()
    with pytest.raises(ValueError, match="max_readers"):
        RwLock(0, max_readers=0)
    assert "readers=0" in repr(lock)


async def test_acquiring_is_a_checkpoint(set_budget: Callable[[int], object]) -> None:
    set_budget(1)
    lock = RwLock(0)
    with trio.testing.assert_checkpoints():
        async with lock.read():
            pass
    with trio.testing.assert_checkpoints():
        async with lock.write():
            pass
