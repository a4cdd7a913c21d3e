"""JoinSet: results in completion order, abort, and leaving the block."""

from __future__ import annotations

import logging
import sys

import pytest
import trio
import trio.testing

import runtime
from runtime import JoinError, JoinSet

pytestmark = pytest.mark.usefixtures("task_scope_path")


async def after(delay: float, value: str) -> str:
    await trio.sleep(delay)
    return value


async def test_completion_order(rt: runtime.Runtime, autojump_clock: trio.abc.Clock) -> None:
    async with JoinSet[str]() as tasks:
        tasks.spawn(after, 3, "slow")
        tasks.spawn(after, 1, "fast")
        tasks.spawn(after, 2, "middle")
        assert len(tasks) == 3
        start = trio.current_time()
        assert await tasks.join_next() == "fast"
        assert trio.current_time() - start == pytest.approx(1)
        assert await tasks.join_next() == "middle"
        assert await tasks.join_next() == "slow"
        assert await tasks.join_next() is None
        assert len(tasks) == 0


async def test_async_iteration(rt: runtime.Runtime, autojump_clock: trio.abc.Clock) -> None:
    async with JoinSet[str]() as tasks:
        for i, delay in enumerate([0.3, 0.1, 0.2]):
            tasks.spawn(after, delay, f"t{i}")
        assert [value async for value in tasks] == ["t1", "t2", "t0"]


async def test_join_all(rt: runtime.Runtime, autojump_clock: trio.abc.Clock) -> None:
    async with JoinSet[str]() as tasks:
        tasks.spawn(after, 2, "b")
        tasks.spawn(after, 1, "a")
        assert await tasks.join_all() == ["a", "b"]


async def test_failure_is_raised_by_join_next_and_others_continue(
    rt: runtime.Runtime, autojump_clock: trio.abc.Clock
) -> None:
    async def boom() -> str:
        await trio.sleep(1)
        raise KeyError("boom")

    async with JoinSet[str]() as tasks:
        tasks.spawn(boom)
        tasks.spawn(after, 2, "survivor")
        with pytest.raises(KeyError):
            await tasks.join_next()
        assert await tasks.join_next() == "survivor"


async def test_abort_all(rt: runtime.Runtime, autojump_clock: trio.abc.Clock) -> None:
    async with JoinSet[str]() as tasks:
        tasks.spawn(after, 1, "done")
        tasks.spawn(after, 100, "never")
        assert await tasks.join_next() == "done"
        tasks.abort_all()
        with pytest.raises(JoinError) as info:
            await tasks.join_next()
        assert info.value.cancelled
        assert await tasks.join_next() is None


async def test_leaving_the_block_cancels_and_awaits(
    rt: runtime.Runtime, autojump_clock: trio.abc.Clock
) -> None:
    finished: list[str] = []

    async def cleanup_on_cancel(name: str) -> None:
        try:
            await trio.sleep_forever()
        finally:
            finished.append(name)

    start = trio.current_time()
    async with JoinSet[None]() as tasks:
        tasks.spawn(cleanup_on_cancel, "a")
        tasks.spawn(cleanup_on_cancel, "b")
        await trio.testing.wait_all_tasks_blocked()
    assert sorted(finished) == ["a", "b"]
    assert trio.current_time() == start
    assert rt.statistics().cancelled == 2


async def test_works_without_a_runtime(autojump_clock: trio.abc.Clock) -> None:
    async with JoinSet[str]() as tasks:
        tasks.spawn(after, 1, "plain trio")
        assert await tasks.join_next() == "plain trio"


async def test_spawn_on_closed_set_is_an_error(rt: runtime.Runtime) -> None:
    tasks = JoinSet[str]()
    with pytest.raises(RuntimeError, match="async with"):
        tasks.spawn(after, 0, "x")


async def test_unjoined_failure_is_logged_at_exit(
    rt: runtime.Runtime, caplog: pytest.LogCaptureFixture, autojump_clock: trio.abc.Clock
) -> None:
    caplog.set_level(logging.ERROR)

    async def boom() -> None:
        raise ZeroDivisionError

    async with JoinSet[None]() as tasks:
        tasks.spawn(boom, name="never-joined")
        await trio.testing.wait_all_tasks_blocked()
    assert any("never-joined" in r.getMessage() for r in caplog.records)


async def test_join_next_cancelled_loses_nothing(
    rt: runtime.Runtime, autojump_clock: trio.abc.Clock
) -> None:
    async with JoinSet[str]() as tasks:
        tasks.spawn(after, 5, "late")
        with trio.move_on_after(1):
            await tasks.join_next()
        assert len(tasks) == 1
        assert await tasks.join_next() == "late"


def test_system_exit_from_join_next_propagates_as_itself() -> None:
    async def exits() -> str:
        await trio.sleep(0)
        sys.exit(4)

    async def main() -> None:
        async with JoinSet[str]() as tasks:
            tasks.spawn(exits)
            await tasks.join_next()

    with pytest.raises(SystemExit) as info:
        runtime.run(main, config=runtime.RuntimeConfig(handle_signals=False))
    assert type(info.value) is SystemExit
    assert info.value.code == 4
