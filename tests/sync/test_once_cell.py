"""runtime.sync.OnceCell: initialised once, concurrently safe, retried after failure."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import trio
import trio.testing

from runtime.sync import OnceCell

wait_idle = trio.testing.wait_all_tasks_blocked


async def test_concurrent_callers_share_one_initialisation() -> None:
    cell = OnceCell[str]()
    calls = 0
    release = trio.Event()

    async def init() -> str:
        nonlocal calls
        calls += 1
        await release.wait()
        return "connection"

    results: list[str] = []

    async def get() -> None:
        results.append(await cell.get_or_init(init))

    async with trio.open_nursery() as nursery:
        for _ in range(5):
            nursery.start_soon(get)
        await wait_idle()
        assert not cell.initialized()
        release.set()
    assert calls == 1
    assert results == ["connection"] * 5
    assert cell.get() == "connection"


async def test_a_failed_initialisation_leaves_the_cell_empty_for_the_next_caller() -> None:
    cell = OnceCell[int]()

    async def fail() -> int:
        raise ConnectionError("try again")

    async def succeed() -> int:
        return 42

    with pytest.raises(ConnectionError):
        await cell.get_or_init(fail)
    assert not cell.initialized()
    assert cell.get("default") == "default"
    assert await cell.get_or_init(succeed) == 42


async def test_a_cancelled_initialiser_lets_a_waiter_try() -> None:
    cell = OnceCell[str]()

    async def slow() -> str:
        await trio.sleep_forever()
        raise AssertionError

    async def fast() -> str:
        return "second"

    results: list[str] = []
    async with trio.open_nursery() as nursery:
        first = trio.CancelScope()

        async def run_first() -> None:
            with first:
                await cell.get_or_init(slow)

        async def run_second() -> None:
            results.append(await cell.get_or_init(fast))

        nursery.start_soon(run_first)
        await wait_idle()
        nursery.start_soon(run_second)
        await wait_idle()
        first.cancel()
    assert results == ["second"]


async def test_set_once() -> None:
    cell = OnceCell[int]()
    assert cell.get() is None
    cell.set(1)
    with pytest.raises(RuntimeError, match="already initialised"):
        cell.set(2)
    assert OnceCell(5).get() == 5
    assert "5" in repr(OnceCell(5))
    assert "empty" in repr(OnceCell[int]())


async def test_get_or_init_is_a_checkpoint(set_budget: Callable[[int], object]) -> None:
    set_budget(1)
    cell = OnceCell(3)

    async def never() -> int:
        raise AssertionError

    with trio.testing.assert_checkpoints():
        assert await cell.get_or_init(never) == 3
