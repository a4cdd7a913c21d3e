"""spawn, JoinHandle, abort and unobserved failures."""

from __future__ import annotations

import gc
import logging
import sys

import pytest
import trio
import trio.testing

import runtime
from runtime import JoinError, RuntimeConfig, TaskState

pytestmark = pytest.mark.usefixtures("task_scope_path")


class AppError(ValueError):
    pass


async def double(x: int) -> int:
    await trio.sleep(0)
    return 2 * x


async def fail(message: str) -> None:
    await trio.sleep(0)
    raise AppError(message)


async def test_await_returns_value(rt: runtime.Runtime) -> None:
    handle = runtime.spawn(double, 21)
    assert await handle == 42
    assert handle.done()
    assert handle.info().state is TaskState.DONE


async def test_await_reraises_own_exception_type(rt: runtime.Runtime) -> None:
    handle = runtime.spawn(fail, "bad input")
    with pytest.raises(AppError, match="bad input") as info:
        await handle
    assert type(info.value) is AppError  # not an ExceptionGroup
    assert handle.info().state is TaskState.FAILED


async def test_handle_can_be_awaited_twice(rt: runtime.Runtime) -> None:
    handle = runtime.spawn(double, 1)
    assert await handle == 2
    assert await handle.join() == 2


async def test_name_and_id(rt: runtime.Runtime) -> None:
    a = runtime.spawn(double, 1)
    b = runtime.spawn(double, 2, name="worker-b")
    assert a.name.endswith("double")
    assert b.name == "worker-b"
    assert a.id != b.id
    assert "worker-b" in repr(b)
    await a
    await b


async def test_abort_raises_join_error_cancelled(rt: runtime.Runtime) -> None:
    started = trio.Event()
    cleaned_up = trio.Event()

    async def forever() -> None:
        try:
            started.set()
            await trio.sleep_forever()
        finally:
            cleaned_up.set()

    handle = runtime.spawn(forever)
    await started.wait()
    handle.abort()
    with pytest.raises(JoinError) as info:
        await handle
    assert info.value.cancelled is True
    assert info.value.task_id == handle.id
    assert cleaned_up.is_set()
    assert handle.info().state is TaskState.CANCELLED


async def test_abort_before_first_run(rt: runtime.Runtime) -> None:
    ran = []

    async def body() -> None:
        await trio.sleep(0)
        ran.append(True)

    handle = runtime.spawn(body)
    handle.abort()
    with pytest.raises(JoinError):
        await handle
    assert ran == []


async def test_abort_after_done_is_noop(rt: runtime.Runtime) -> None:
    handle = runtime.spawn(double, 5)
    assert await handle == 10
    handle.abort()
    assert await handle == 10


async def test_cancelling_the_awaiter_leaves_the_task_running(rt: runtime.Runtime) -> None:
    release = trio.Event()

    async def waits() -> str:
        await release.wait()
        return "finished"

    handle = runtime.spawn(waits)
    with trio.CancelScope() as scope:
        scope.cancel()  # the awaiter is cancelled; no clock involved
        await handle
    assert scope.cancelled_caught
    assert not handle.done()
    release.set()
    assert await handle == "finished"


async def test_await_is_a_checkpoint_even_when_done(rt: runtime.Runtime) -> None:
    handle = runtime.spawn(double, 1)
    await handle
    with trio.testing.assert_checkpoints():
        await handle


async def test_unobserved_failure_is_logged(
    rt: runtime.Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR)
    runtime.spawn(fail, "nobody listens", name="orphan")  # handle dropped at once
    await trio.testing.wait_all_tasks_blocked()
    records = [r for r in caplog.records if "orphan" in r.getMessage()]
    assert len(records) == 1
    assert "nobody awaited it" in records[0].getMessage()
    assert records[0].exc_info is not None
    assert records[0].exc_info[0] is AppError
    assert rt.statistics().failed == 1


async def test_failure_of_a_kept_then_dropped_handle_is_logged_at_runtime_exit(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR)
    async with runtime.open_runtime(RuntimeConfig(handle_signals=False)):
        handle = runtime.spawn(fail, "kept", name="kept-then-dropped")
        await trio.testing.wait_all_tasks_blocked()
        assert handle.done()
        assert not [r for r in caplog.records if "kept-then-dropped" in r.getMessage()]
        del handle
        gc.collect()  # no finalizer reports it: the runtime does, at its end
    records = [r for r in caplog.records if "kept-then-dropped" in r.getMessage()]
    assert len(records) == 1
    assert records[0].exc_info is not None and records[0].exc_info[0] is AppError


def test_failure_of_a_handle_that_outlives_the_runtime_is_logged_at_runtime_exit(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR)
    kept: list[runtime.JoinHandle[None]] = []

    async def main() -> None:
        kept.append(runtime.spawn(fail, "outlives", name="outlives-the-runtime"))
        await trio.testing.wait_all_tasks_blocked()

    runtime.run(main, config=RuntimeConfig(handle_signals=False))
    records = [r for r in caplog.records if "outlives-the-runtime" in r.getMessage()]
    assert len(records) == 1  # reported while the runtime still ran, not by a finalizer
    assert records[0].exc_info is not None and records[0].exc_info[0] is AppError
    del kept[:]
    gc.collect()
    assert len([r for r in caplog.records if "outlives-the-runtime" in r.getMessage()]) == 1


def test_unhandled_raise_reports_a_never_awaited_kept_handle_at_runtime_exit() -> None:
    kept: list[runtime.JoinHandle[None]] = []

    async def main() -> None:
        kept.append(runtime.spawn(fail, "never awaited"))
        await trio.testing.wait_all_tasks_blocked()

    with pytest.raises(AppError, match="never awaited"):
        runtime.run(main, config=RuntimeConfig(unhandled="raise", handle_signals=False))


async def test_dropped_handles_are_reported_while_the_runtime_runs(
    rt: runtime.Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR)
    handles = [runtime.spawn(fail, f"n{i}", name=f"batch-{i}") for i in range(40)]
    await trio.testing.wait_all_tasks_blocked()
    del handles  # kept while they failed, then dropped: found by a later sweep
    gc.collect()
    for i in range(40):
        runtime.spawn(fail, "later", name=f"later-{i}")
    await trio.testing.wait_all_tasks_blocked()
    batch = [r for r in caplog.records if r.getMessage().startswith("task 'batch-")]
    assert len(batch) == 40
    assert len(rt._registry.unobserved) < 40  # memory is bounded, not kept to the end


async def test_observed_failure_is_not_logged(
    rt: runtime.Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR)
    handle = runtime.spawn(fail, "seen", name="observed")
    with pytest.raises(AppError):
        await handle
    del handle
    gc.collect()
    assert not [r for r in caplog.records if "observed" in r.getMessage()]


def test_unhandled_raise_crashes_the_runtime() -> None:
    async def main() -> None:
        runtime.spawn(fail, "fatal")
        await trio.sleep_forever()

    with pytest.raises(AppError, match="fatal"):
        runtime.run(main, config=RuntimeConfig(unhandled="raise", handle_signals=False))


def test_spawn_outside_runtime_is_a_clear_error() -> None:
    async def main() -> None:
        runtime.spawn(double, 1)

    with pytest.raises(runtime.NoRuntimeError, match=r"runtime\.run"):
        trio.run(main)


def test_current_outside_runtime() -> None:
    with pytest.raises(runtime.NoRuntimeError):
        runtime.current()


async def test_parent_ids_follow_spawns(rt: runtime.Runtime) -> None:
    seen: dict[str, int | None] = {}

    async def child() -> None:
        seen["child"] = runtime.rt.current_task_id()

    async def parent() -> int | None:
        await runtime.spawn(child)
        return runtime.rt.current_task_id()

    handle = runtime.spawn(parent)
    parent_id = await handle
    assert parent_id == handle.id
    snapshot = [t for t in rt.tasks() if t.parent_id == handle.id]
    assert snapshot == []  # the child has finished and left the registry
    assert seen["child"] is not None
    assert seen["child"] != parent_id


async def test_yield_now_is_a_checkpoint(rt: runtime.Runtime) -> None:
    with trio.testing.assert_checkpoints():
        await runtime.yield_now()


async def exits(code: int) -> None:
    await trio.sleep(0)
    sys.exit(code)


def test_system_exit_in_an_awaited_task_propagates_as_itself() -> None:
    seen: list[BaseException] = []
    handles: list[runtime.JoinHandle[None]] = []

    async def main() -> None:
        handles.append(runtime.spawn(exits, 3))
        try:
            await handles[0]
        except BaseException as exc:
            seen.append(exc)
            raise

    with pytest.raises(SystemExit) as info:
        runtime.run(main, config=RuntimeConfig(handle_signals=False))
    assert type(info.value) is SystemExit
    assert info.value.code == 3
    assert seen == [info.value]  # ``await handle`` re-raised the task's own SystemExit
    assert handles[0].info().state is TaskState.FAILED


@pytest.mark.parametrize("error", [KeyboardInterrupt, GeneratorExit])
def test_other_base_exceptions_in_a_task_stop_the_runtime_unwrapped(
    error: type[BaseException],
) -> None:
    async def raises() -> None:
        await trio.sleep(0)
        raise error

    async def main() -> None:
        runtime.spawn(raises)  # nobody awaits it: it still stops the runtime, as itself
        await trio.sleep_forever()

    with pytest.raises(error) as info:
        runtime.run(main, config=RuntimeConfig(handle_signals=False))
    assert type(info.value) is error
