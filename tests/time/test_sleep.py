"""sleep and sleep_until on the wheel: timing, zero and negative delays, cancellation."""

from __future__ import annotations

import math

import pytest
import trio
import trio.testing

import runtime
from runtime.time import TimerWheel, sleep, sleep_until

TICK = 0.001


async def test_sleep_wakes_on_the_first_tick_at_or_after_the_deadline(
    autojump_clock: trio.testing.MockClock,
) -> None:
    for seconds in [0.0015, 0.25, 1.5, 7.0, 301.2345]:
        start = trio.current_time()
        await sleep(seconds)
        slept = trio.current_time() - start
        assert seconds <= slept <= seconds + TICK + 1e-9


async def test_sleep_until_an_absolute_deadline(autojump_clock: trio.testing.MockClock) -> None:
    deadline = trio.current_time() + 2.5
    await sleep_until(deadline)
    assert deadline <= trio.current_time() <= deadline + TICK


@pytest.mark.parametrize("seconds", [0.0, -0.0, -0.5, -math.inf])
async def test_zero_and_negative_sleeps_are_plain_checkpoints(
    seconds: float, autojump_clock: trio.testing.MockClock
) -> None:
    """Regression (B14c): sleep(0) used to wait for the next wheel tick."""
    await sleep(0.0005)  # off a tick boundary
    start = trio.current_time()
    with trio.testing.assert_checkpoints():
        await sleep(seconds)
    assert trio.current_time() == start
    assert TimerWheel.current().statistics().pending == 0


@pytest.mark.parametrize("offset", [0.0, -0.25, -math.inf])
async def test_sleep_until_now_or_the_past_is_a_plain_checkpoint(
    offset: float, autojump_clock: trio.testing.MockClock
) -> None:
    await sleep(0.0005)
    start = trio.current_time()
    with trio.testing.assert_checkpoints():
        await sleep_until(start + offset)
    assert trio.current_time() == start


async def test_a_zero_sleep_delivers_a_pending_cancel() -> None:
    with trio.CancelScope() as scope:
        scope.cancel()
        await sleep(0)
    assert scope.cancelled_caught


async def test_sleepers_wake_in_deadline_order(autojump_clock: trio.testing.MockClock) -> None:
    woke: list[float] = []

    async def sleeper(seconds: float) -> None:
        await sleep(seconds)
        woke.append(seconds)

    async with trio.open_nursery() as nursery:
        for seconds in [0.3, 0.1, 5.0, 0.2, 70.0, 0.05]:
            nursery.start_soon(sleeper, seconds)
    assert woke == sorted(woke)


async def test_a_sleep_cancelled_from_outside_leaves_the_wheel(
    autojump_clock: trio.testing.MockClock,
) -> None:
    wheel = TimerWheel.current()
    outcome: list[str] = []

    async def sleeper(task_status: trio.TaskStatus[trio.CancelScope]) -> None:
        with trio.CancelScope() as scope:
            task_status.started(scope)
            try:
                await sleep(10)
            except trio.Cancelled:
                outcome.append("cancelled")
                raise
            outcome.append("woke")

    async with trio.open_nursery() as nursery:
        scope = await nursery.start(sleeper)
        await trio.testing.wait_all_tasks_blocked()
        assert wheel.statistics().pending == 1
        await trio.sleep(1)
        scope.cancel()
    assert outcome == ["cancelled"]
    stats = wheel.statistics()
    assert (stats.pending, stats.cancelled, stats.fired) == (0, 1, 0)
    assert trio.current_time() == pytest.approx(1.0)


async def test_an_already_cancelled_sleep_raises_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    wheel = TimerWheel.current()
    with trio.CancelScope() as scope:
        scope.cancel()
        await sleep(5)
    assert scope.cancelled_caught
    assert wheel.statistics().pending == 0
    assert trio.current_time() == 0


async def test_an_infinite_sleep_waits_for_cancellation(
    autojump_clock: trio.testing.MockClock,
) -> None:
    with trio.move_on_after(100):
        await sleep(math.inf)
    assert trio.current_time() == pytest.approx(100)
    assert TimerWheel.current().statistics().pending == 0


async def test_nan_is_refused() -> None:
    with pytest.raises(ValueError, match="NaN"):
        await sleep(math.nan)
    with pytest.raises(ValueError, match="NaN"):
        await sleep_until(math.nan)


def test_sleep_inside_a_runtime_uses_the_runtime_wheel() -> None:
    async def main() -> tuple[float, int]:
        start = trio.current_time()
        await sleep(0.75)
        return trio.current_time() - start, TimerWheel.current().statistics().fired

    config = runtime.RuntimeConfig(handle_signals=False, timer_tick=0.01)
    slept, fired = runtime.run(main, config=config, clock=trio.testing.MockClock(0, 0))
    assert slept == pytest.approx(0.75)
    assert fired == 1
