"""Graceful shutdown: the signal, the drain, the grace period, nested tasks, signals."""

from __future__ import annotations

import logging
import math
import signal

import pytest
import trio
import trio.testing

import runtime
from runtime import RuntimeConfig


async def drains_on_request(done: list[str]) -> None:
    await runtime.current().shutdown_requested()
    await trio.sleep(0.5)  # finish in-flight work
    done.append("drained")


async def test_end_of_main_drains_then_cancels(
    autojump_clock: trio.abc.Clock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="runtime")
    done: list[str] = []
    start = trio.current_time()
    async with runtime.open_runtime(RuntimeConfig(handle_signals=False, shutdown_grace=5)):
        runtime.spawn(drains_on_request, done)
        stubborn = runtime.spawn(trio.sleep_forever, name="stubborn")
    assert done == ["drained"]
    assert stubborn.done()
    assert trio.current_time() - start == pytest.approx(5)
    messages = [r.getMessage() for r in caplog.records]
    assert any("shutdown started (main returned): 2 tasks alive" in m for m in messages)
    assert any("1 tasks drained, 1 tasks cancelled" in m for m in messages)


async def test_nested_spawns_are_cancelled_at_shutdown(autojump_clock: trio.abc.Clock) -> None:
    cancelled: list[int] = []

    async def level(depth: int) -> None:
        if depth < 3:
            runtime.spawn(level, depth + 1)
        try:
            await trio.sleep_forever()
        except trio.Cancelled:
            cancelled.append(depth)
            raise

    async with runtime.open_runtime(RuntimeConfig(handle_signals=False, shutdown_grace=1)) as rt:
        runtime.spawn(level, 1)
        await trio.testing.wait_all_tasks_blocked()
        by_id = {t.id: t for t in rt.tasks()}
        assert len(by_id) == 3
        roots = [t for t in by_id.values() if t.parent_id not in by_id]
        assert len(roots) == 1
    assert sorted(cancelled) == [1, 2, 3]
    assert rt.statistics().cancelled == 3
    assert rt.statistics().alive == 0


async def test_shutdown_method_with_grace(autojump_clock: trio.abc.Clock) -> None:
    async with runtime.open_runtime(RuntimeConfig(handle_signals=False)) as rt:
        waiter = runtime.spawn(rt.shutdown_requested)
        stubborn = runtime.spawn(trio.sleep_forever)
        start = trio.current_time()
        rt.shutdown(grace=2)
        assert rt.is_shutting_down
        await waiter
        with pytest.raises(trio.Cancelled):  # main itself is cut off after the grace
            await trio.sleep_forever()
    assert trio.current_time() - start == pytest.approx(2)
    assert stubborn.done()


async def test_shutdown_can_shorten_but_not_extend_grace(autojump_clock: trio.abc.Clock) -> None:
    start = trio.current_time()
    async with runtime.open_runtime(RuntimeConfig(handle_signals=False)) as rt:
        runtime.spawn(trio.sleep_forever)
        rt.shutdown(grace=3)
        rt.shutdown(grace=50)
    assert trio.current_time() - start == pytest.approx(3)


async def test_cancel_is_immediate(autojump_clock: trio.abc.Clock) -> None:
    start = trio.current_time()
    async with runtime.open_runtime(RuntimeConfig(handle_signals=False)) as rt:
        runtime.spawn(trio.sleep_forever)
        rt.cancel()
    assert trio.current_time() == start


async def test_runtime_services_outlive_tasks(autojump_clock: trio.abc.Clock) -> None:
    order: list[str] = []

    async def service() -> None:
        try:
            await trio.sleep_forever()
        finally:
            order.append("service stopped")

    async def task() -> None:
        try:
            await trio.sleep_forever()
        finally:
            order.append("task stopped")

    async with runtime.open_runtime(RuntimeConfig(handle_signals=False, shutdown_grace=1)) as rt:
        rt.start_system_task(service)
        runtime.spawn(task)
    assert order == ["task stopped", "service stopped"]


async def test_sigterm_then_second_sigint(autojump_clock: trio.abc.Clock) -> None:
    async with runtime.open_runtime(RuntimeConfig(shutdown_grace=100)) as rt:
        stubborn = runtime.spawn(trio.sleep_forever)
        start = trio.current_time()
        signal.raise_signal(signal.SIGTERM)
        await rt.shutdown_requested()
        assert not stubborn.done()
        signal.raise_signal(signal.SIGINT)
        with pytest.raises(trio.Cancelled):
            await trio.sleep_forever()
    assert stubborn.done()
    assert trio.current_time() - start < 1


def test_run_raises_shutdown_error_when_the_grace_cuts_main_short() -> None:
    async def main() -> str:
        runtime.current().shutdown(grace=2, reason="test")
        await trio.sleep_forever()
        return "unreachable"

    clock = trio.testing.MockClock(autojump_threshold=0)
    with pytest.raises(runtime.rt.ShutdownError, match=r"\(test\).*2s grace") as info:
        runtime.run(main, config=RuntimeConfig(handle_signals=False), clock=clock)
    assert isinstance(info.value, Exception)
    assert info.value.reason == "test"


def test_run_raises_shutdown_error_when_runtime_cancel_cuts_main_short() -> None:
    async def main() -> None:
        runtime.current().cancel()
        await trio.sleep_forever()

    with pytest.raises(runtime.rt.ShutdownError, match="at once"):
        runtime.run(main, config=RuntimeConfig(handle_signals=False))


def test_run_returns_the_value_of_a_main_that_drains_within_the_grace() -> None:
    async def main() -> str:
        rt = runtime.current()
        rt.shutdown(grace=5)
        await rt.shutdown_requested()
        await trio.sleep(1)  # in-flight work, well within the grace
        return "drained"

    clock = trio.testing.MockClock(autojump_threshold=0)
    assert runtime.run(main, config=RuntimeConfig(handle_signals=False), clock=clock) == "drained"


def test_sigint_with_nothing_draining_raises_keyboard_interrupt_at_once() -> None:
    async def main() -> None:
        signal.raise_signal(signal.SIGINT)
        await trio.sleep_forever()  # nobody waits on shutdown_requested()

    clock = trio.testing.MockClock()  # no autojump: waiting out the grace would hang here
    with pytest.raises(KeyboardInterrupt):
        runtime.run(main, config=RuntimeConfig(shutdown_grace=100), clock=clock)
    assert clock.current_time() == 0


def test_sigint_then_a_main_that_returns_in_the_grace_returns_its_value() -> None:
    async def main() -> str:
        signal.raise_signal(signal.SIGINT)
        await runtime.current().shutdown_requested()
        return "clean"

    assert runtime.run(main, config=RuntimeConfig(shutdown_grace=100)) == "clean"


def test_sigint_and_a_main_cut_short_by_the_grace_raises_keyboard_interrupt() -> None:
    async def main() -> None:
        signal.raise_signal(signal.SIGINT)
        await runtime.current().shutdown_requested()
        await trio.sleep_forever()  # drains too slowly

    clock = trio.testing.MockClock(autojump_threshold=0)
    with pytest.raises(KeyboardInterrupt):
        runtime.run(main, config=RuntimeConfig(shutdown_grace=3), clock=clock)


async def test_shutdown_deadline_follows_the_grace_and_the_final_cancel(
    autojump_clock: trio.abc.Clock,
) -> None:
    async with runtime.open_runtime(RuntimeConfig(handle_signals=False)) as rt:
        assert rt.shutdown_deadline == math.inf
        start = trio.current_time()
        rt.shutdown(grace=4)
        assert rt.shutdown_deadline == pytest.approx(start + 4)
        rt.shutdown(grace=9)  # can't extend
        assert rt.shutdown_deadline == pytest.approx(start + 4)
        rt.cancel()
        assert rt.shutdown_deadline <= trio.current_time()


async def test_shielded_scope_holds_off_abort_but_ends_when_the_grace_runs_out(
    autojump_clock: trio.abc.Clock,
) -> None:
    ended: list[float] = []

    async def lingers(rt: runtime.Runtime) -> None:
        try:
            await trio.sleep_forever()
        finally:
            with rt.shielded_scope():
                await trio.sleep(100)  # a lingering close, far longer than the grace
            ended.append(trio.current_time())

    async with runtime.open_runtime(RuntimeConfig(handle_signals=False, shutdown_grace=3)) as rt:
        handle = runtime.spawn(lingers, rt)
        await trio.testing.wait_all_tasks_blocked()
        handle.abort()  # the shield holds against this: only the shutdown's end stops it
        await trio.sleep(1)
        assert not handle.done()
        shutdown_starts = trio.current_time()  # main returns: the shutdown starts
    assert ended == [pytest.approx(shutdown_starts + 3)]  # the grace, not grace + linger


async def test_shielded_scope_ends_at_once_on_runtime_cancel(
    autojump_clock: trio.abc.Clock,
) -> None:
    async with runtime.open_runtime(RuntimeConfig(handle_signals=False, shutdown_grace=50)) as rt:
        entered = trio.Event()
        caught: list[bool] = []

        async def lingers() -> None:
            with rt.shielded_scope() as scope:
                entered.set()
                await trio.sleep(100)
            caught.append(scope.cancelled_caught)

        handle = runtime.spawn(lingers)
        await entered.wait()
        start = trio.current_time()
        rt.shutdown()
        await trio.sleep(1)
        assert not handle.done()  # draining: the shield still runs
        rt.cancel()  # what a second SIGINT does
        with rt.shielded_scope() as late:  # after the final cancel: cancelled from the start
            await trio.lowlevel.checkpoint()
        assert late.cancelled_caught
    assert caught == [True]  # the task's linger was cut at the final cancel
    assert handle.done()
    assert trio.current_time() - start == pytest.approx(1)
