"""JoinSet: results in completion order, abort, and leaving the block."""

from __future__ import annotations

import logging
import sys

import pytest
import trio
import trio.testing

import runtime
from runtime import JoinError, JoinSet
from runtime.rt import Joined

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
        first = await tasks.join_next()
        assert first is not None and first.value == "fast"
        assert trio.current_time() - start == pytest.approx(1)
        second, third = await tasks.join_next(), await tasks.join_next()
        assert second is not None and second.value == "middle"
        assert third is not None and third.value == "slow"
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
        survivor = tasks.spawn(after, 2, "survivor")
        with pytest.raises(KeyError):
            await tasks.join_next()
        assert await tasks.join_next() == Joined(survivor.id, "after", "survivor")


async def test_abort_all(rt: runtime.Runtime, autojump_clock: trio.abc.Clock) -> None:
    async with JoinSet[str]() as tasks:
        done = tasks.spawn(after, 1, "done", name="done")
        tasks.spawn(after, 100, "never")
        assert await tasks.join_next() == Joined(done.id, "done", "done")
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
        joined = await tasks.join_next()
        assert joined is not None and joined.unwrap() == "plain trio"


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
        joined = await tasks.join_next()
        assert joined is not None and joined.value == "late"


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


async def test_join_next_tells_a_task_that_returned_none_from_an_empty_set(
    rt: runtime.Runtime,
) -> None:
    async def nothing() -> None:
        await trio.sleep(0)

    async with JoinSet[None]() as tasks:
        ids = {tasks.spawn(nothing).id for _ in range(3)}
        joined_ids = set()
        while (joined := await tasks.join_next()) is not None:
            assert joined.value is None
            joined_ids.add(joined.id)
        assert joined_ids == ids  # the loop saw every task, not just the first None


async def coroutine_function() -> None:
    await trio.sleep(0)


def sync_function() -> int:
    return 1


async def test_spawn_refuses_a_coroutine_object_up_front(rt: runtime.Runtime) -> None:
    coro = coroutine_function()
    with pytest.raises(TypeError, match=r"got a coroutine object.*spawn\(fn, \*args\)"):
        runtime.spawn(coro)  # type: ignore[arg-type]
    assert coro.cr_frame is None  # closed: no "never awaited" warning on top
    async with JoinSet[None]() as tasks:
        coro = coroutine_function()
        with pytest.raises(TypeError, match="got a coroutine object"):
            tasks.spawn(coro)  # type: ignore[arg-type]
        assert len(tasks) == 0
    assert rt.statistics().spawned == 0


async def test_spawn_refuses_a_sync_function_up_front(rt: runtime.Runtime) -> None:
    with pytest.raises(TypeError, match=r"async function.*sync_function.*returned 1"):
        runtime.spawn(sync_function)  # type: ignore[arg-type]
    async with JoinSet[int]() as tasks:
        with pytest.raises(TypeError, match="async function"):
            tasks.spawn(sync_function)  # type: ignore[arg-type]
    assert rt.statistics().spawned == 0


async def test_spawn_with_wrong_arguments_fails_at_the_call(rt: runtime.Runtime) -> None:
    with pytest.raises(TypeError, match="positional argument"):
        runtime.spawn(after, 1)  # type: ignore[call-arg]
