"""The wheel's Trio driver (``_driver.py``): which wheel is current, and a driver task that
sleeps until the next expiry, never polls and outlives the runtime's tasks."""

from __future__ import annotations

import pytest
import trio
import trio.testing

import runtime
from runtime import RuntimeConfig
from runtime.time import TimerWheel, move_on_at, sleep

TICK = 0.001


async def test_the_runtime_wheel_follows_the_config_and_is_made_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    config = RuntimeConfig(handle_signals=False, timer_tick=0.005, timer_levels=3, timer_slots=8)
    async with runtime.open_runtime(config):
        wheel = TimerWheel.current()
        assert wheel is TimerWheel.current()
        assert (wheel.tick, wheel.levels, wheel.slots) == (0.005, 3, 8)
        assert wheel.origin == trio.current_time()


async def test_outside_a_runtime_each_trio_run_has_its_own_wheel(
    autojump_clock: trio.testing.MockClock,
) -> None:
    plain = TimerWheel.current()
    assert plain is TimerWheel.current()
    assert (plain.tick, plain.levels, plain.slots) == (TICK, 6, 64)
    async with runtime.open_runtime(RuntimeConfig(handle_signals=False)):
        assert TimerWheel.current() is not plain
    start = trio.current_time()
    await sleep(0.25)  # driven by the per-run wheel's own system task
    assert trio.current_time() - start == pytest.approx(0.25, abs=TICK)


async def test_with_no_timers_the_driver_never_wakes(
    autojump_clock: trio.testing.MockClock,
) -> None:
    wheel = TimerWheel.current()
    await trio.sleep(3600)  # an hour of mock time with nothing pending
    assert wheel.statistics().wakeups == 0


async def test_after_the_last_timer_fires_the_driver_sleeps_with_no_deadline(
    autojump_clock: trio.testing.MockClock,
) -> None:
    wheel = TimerWheel.current()
    await sleep(0.5)
    woke = wheel.statistics().wakeups
    assert woke >= 1
    await trio.sleep(24 * 3600)  # a day with nothing pending
    assert wheel.statistics().wakeups == woke
    assert wheel.statistics().next_wakeup is None


async def test_after_the_last_timer_is_cancelled_the_driver_wakes_at_most_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    wheel = TimerWheel.current()
    timer = wheel.call_at(trio.current_time() + 0.05, lambda: None)
    await trio.testing.wait_all_tasks_blocked()  # the driver is armed for the timer
    before = wheel.statistics().wakeups
    timer.cancel()
    await trio.sleep(3600)
    assert wheel.statistics().wakeups - before <= 1
    settled = wheel.statistics().wakeups
    await trio.sleep(3600)
    assert wheel.statistics().wakeups == settled


async def test_a_sleeping_driver_wakes_earlier_for_an_earlier_timer(
    autojump_clock: trio.testing.MockClock,
) -> None:
    wheel = TimerWheel.current()
    fired: list[float] = []
    start = trio.current_time()
    wheel.call_at(start + 10.0, lambda: fired.append(trio.current_time() - start))
    await trio.testing.wait_all_tasks_blocked()  # driver armed for ~10 s
    wheel.call_at(start + 0.003, lambda: fired.append(trio.current_time() - start))
    await trio.sleep(11)
    assert fired == [pytest.approx(0.003), pytest.approx(10.0)]


async def test_a_hand_made_wheel_can_be_served_and_only_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    wheel = TimerWheel(tick=0.01, origin=trio.current_time())
    fired: list[float] = []
    async with trio.open_nursery() as nursery:
        await nursery.start(wheel.serve)
        with pytest.raises(RuntimeError, match="already has a driver"):
            await wheel.serve()
        start = trio.current_time()
        wheel.call_at(start + 0.123, lambda: fired.append(trio.current_time() - start))
        await trio.sleep(1)
        nursery.cancel_scope.cancel()
    assert fired == [pytest.approx(0.13)]  # 10 ms ticks: the first tick at or after 0.123


def test_timers_keep_working_while_the_runtime_drains() -> None:
    """The driver is a system task: it outlives spawned tasks, so they can sleep to drain."""
    done: list[float] = []
    clock = trio.testing.MockClock(autojump_threshold=0)

    async def drainer() -> None:
        await runtime.current().shutdown_requested()
        start = trio.current_time()
        await sleep(0.5)
        done.append(trio.current_time() - start)

    async def main() -> None:
        runtime.spawn(drainer)
        await sleep(0.01)

    runtime.run(main, config=RuntimeConfig(handle_signals=False), clock=clock)
    assert done == [pytest.approx(0.5, abs=TICK)]


async def test_a_far_timeout_does_not_break_the_driver(
    autojump_clock: trio.testing.MockClock,
) -> None:
    with move_on_at(1e308) as scope:
        await sleep(1)
    assert not scope.expired
    assert trio.current_time() == pytest.approx(1, abs=TICK)
