"""The per-task cancel scope: the direct path behaves exactly like Trio's ``with scope:``."""

from __future__ import annotations

import pytest
import trio
import trio.testing

import runtime
from runtime import JoinError
from runtime.rt import _scope

pytestmark = pytest.mark.usefixtures("task_scope_path")


async def test_abort_while_blocked(rt: runtime.Runtime) -> None:
    started = trio.Event()

    async def blocked() -> None:
        started.set()
        await trio.sleep_forever()

    handle = runtime.spawn(blocked)
    await started.wait()
    handle.abort()
    with pytest.raises(JoinError) as info:
        await handle
    assert info.value.cancelled
    assert handle.info().state is runtime.TaskState.CANCELLED


async def test_abort_reaches_a_task_inside_its_own_scopes(rt: runtime.Runtime) -> None:
    started = trio.Event()
    inner_caught: list[bool] = []

    async def nested() -> None:
        with trio.move_on_after(1000) as inner:
            started.set()
            await trio.sleep_forever()
        inner_caught.append(inner.cancelled_caught)

    handle = runtime.spawn(nested)
    await started.wait()
    handle.abort()
    with pytest.raises(JoinError):
        await handle
    assert inner_caught == []  # the inner scope did not swallow the task's own cancel


async def test_inner_deadline_still_works(rt: runtime.Runtime, autojump_clock: object) -> None:
    async def times_out() -> bool:
        with trio.move_on_after(5) as scope:
            await trio.sleep_forever()
        return scope.cancelled_caught

    assert await runtime.spawn(times_out) is True


async def test_abort_of_a_task_with_a_nursery_is_not_a_group(rt: runtime.Runtime) -> None:
    started = trio.Event()

    async def with_children() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(trio.sleep_forever)
            nursery.start_soon(trio.sleep_forever)
            started.set()

    handle = runtime.spawn(with_children)
    await started.wait()
    await trio.testing.wait_all_tasks_blocked()
    handle.abort()
    with pytest.raises(JoinError) as info:
        await handle
    assert info.value.cancelled


async def test_group_with_a_real_error_and_a_cancel_keeps_the_error(
    rt: runtime.Runtime,
) -> None:
    started = trio.Event()

    async def fails_after_abort() -> None:
        try:
            started.set()
            await trio.sleep_forever()
        finally:
            with trio.CancelScope(shield=True):
                await trio.lowlevel.checkpoint()

    async def mixed() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(fails_after_abort)
            await started.wait()
            raise KeyError("mine")

    with pytest.raises(ExceptionGroup) as info:
        await runtime.spawn(mixed)
    assert info.value.subgroup(KeyError) is not None


async def test_outer_cancellation_passes_through(rt: runtime.Runtime) -> None:
    """A cancel from outside the task is not the task's scope's to swallow."""
    started = trio.Event()
    outcome: list[str] = []

    async def body() -> None:
        started.set()
        try:
            await trio.sleep_forever()
        except trio.Cancelled:
            outcome.append("cancelled")
            raise

    async with runtime.JoinSet[None]() as tasks:
        handle = tasks.spawn(body)
        await started.wait()
        tasks.abort_all()
    assert outcome == ["cancelled"]
    assert handle.info().state is runtime.TaskState.CANCELLED


async def test_misnesting_in_an_aborted_task_is_reported_not_hidden(
    rt: runtime.Runtime,
) -> None:
    async def leaves_a_scope_open() -> None:
        trio.CancelScope().__enter__()  # never exited: a bug in the task
        await trio.sleep_forever()

    handle = runtime.spawn(leaves_a_scope_open)
    await trio.testing.wait_all_tasks_blocked()
    handle.abort()
    with pytest.raises(RuntimeError, match="Cancel scope stack corrupted"):
        await handle


async def test_abort_waits_for_a_shield_inside_the_task(rt: runtime.Runtime) -> None:
    inside = trio.Event()
    release = trio.Event()
    steps: list[str] = []

    async def shielded() -> None:
        with trio.CancelScope(shield=True):
            inside.set()
            await release.wait()
            steps.append("shield done")
        await trio.sleep_forever()

    handle = runtime.spawn(shielded)
    await inside.wait()
    handle.abort()
    await trio.testing.wait_all_tasks_blocked()
    assert not handle.done()  # the shield holds
    release.set()
    with pytest.raises(JoinError):
        await handle
    assert steps == ["shield done"]


async def test_a_task_can_abort_itself(rt: runtime.Runtime) -> None:
    handles: list[runtime.JoinHandle[None]] = []
    reached: list[str] = []

    async def self_abort() -> None:
        await trio.lowlevel.checkpoint()
        with trio.move_on_after(1000):
            handles[0].abort()
            reached.append("before checkpoint")
            await trio.lowlevel.checkpoint()
            reached.append("not reached")
        reached.append("not reached either")

    handles.append(runtime.spawn(self_abort))
    with pytest.raises(JoinError):
        await handles[0]
    assert reached == ["before checkpoint"]


async def test_abort_twice_and_the_runtime_stays_sound(rt: runtime.Runtime) -> None:
    handles = [runtime.spawn(trio.sleep_forever) for _ in range(3)]
    await trio.testing.wait_all_tasks_blocked()
    handles[1].abort()
    handles[1].abort()
    with pytest.raises(JoinError):
        await handles[1]
    assert not handles[0].done() and not handles[2].done()
    # The neighbours are still cancellable, and new tasks run normally.
    assert await runtime.spawn(trio.sleep, 0) is None
    handles[0].abort()
    handles[2].abort()
    for handle in (handles[0], handles[2]):
        with pytest.raises(JoinError):
            await handle


async def test_exit_swallows_only_its_own_cancel() -> None:
    scope = trio.CancelScope()
    _scope.enter(scope)
    scope.cancel()
    try:
        await trio.lowlevel.checkpoint()
    except trio.Cancelled as exc:
        assert _scope.exit(scope, exc) is True
    assert scope.cancelled_caught


async def test_exit_passes_other_exceptions() -> None:
    scope = trio.CancelScope()
    _scope.enter(scope)
    scope.cancel()
    assert _scope.exit(scope, KeyboardInterrupt()) is False
    scope = trio.CancelScope()
    _scope.enter(scope)
    assert _scope.exit(scope, None) is False
    await trio.lowlevel.checkpoint()  # the task's cancel status is whole again


async def test_exit_leaves_an_outer_cancel_alone() -> None:
    with trio.CancelScope() as outer:
        scope = trio.CancelScope()
        _scope.enter(scope)
        outer.cancel()
        try:
            await trio.lowlevel.checkpoint()
        except trio.Cancelled as exc:
            assert _scope.exit(scope, exc) is False
            raise
    assert outer.cancelled_caught
    assert not scope.cancelled_caught
