"""Interval: the first tick is immediate, the period holds, and each missed-tick policy."""

from __future__ import annotations

import math

import pytest
import trio
import trio.testing

from runtime.time import Interval, MissedTickBehavior

TICK = 0.001


async def ticks(interval: Interval, n: int) -> list[tuple[float, float]]:
    """(deadline returned, time it returned) for n ticks."""
    out = []
    for _ in range(n):
        due = await interval.tick()
        out.append((due, trio.current_time()))
    return out


async def test_first_tick_is_immediate_then_every_period(
    autojump_clock: trio.testing.MockClock,
) -> None:
    interval = Interval(0.5)
    got = await ticks(interval, 5)
    assert got == [(pytest.approx(t), pytest.approx(t)) for t in [0, 0.5, 1.0, 1.5, 2.0]]


async def test_a_slow_consumer_does_not_drift(autojump_clock: trio.testing.MockClock) -> None:
    interval = Interval(1)
    seen = []
    for _ in range(6):
        seen.append(await interval.tick())
        await trio.sleep(0.3)  # work shorter than the period: the schedule holds
    assert seen == [pytest.approx(float(n)) for n in range(6)]


# The task takes the first tick at 0, then is busy until 4.5: the tick due at 1 is
# observed 3.5 periods late.
LATE_BY_3_5 = {
    MissedTickBehavior.BURST: [(1, 4.5), (2, 4.5), (3, 4.5), (4, 4.5), (5, 5), (6, 6)],
    MissedTickBehavior.DELAY: [(1, 4.5), (5.5, 5.5), (6.5, 6.5), (7.5, 7.5), (8.5, 8.5)],
    MissedTickBehavior.SKIP: [(1, 4.5), (5, 5), (6, 6), (7, 7), (8, 8)],
}


@pytest.mark.parametrize("policy", list(MissedTickBehavior))
async def test_missed_tick_policies_with_a_task_late_by_3_5_periods(
    policy: MissedTickBehavior, autojump_clock: trio.testing.MockClock
) -> None:
    interval = Interval(1.0, policy)
    assert await interval.tick() == 0
    await trio.sleep(4.5)
    expected = LATE_BY_3_5[policy]
    got = await ticks(interval, len(expected))
    assert got == [(pytest.approx(d), pytest.approx(t, abs=TICK)) for d, t in expected]


async def test_the_policy_can_change_between_ticks(autojump_clock: trio.testing.MockClock) -> None:
    interval = Interval(1.0)
    await interval.tick()
    await trio.sleep(2.5)
    interval.missed_tick = MissedTickBehavior.SKIP
    assert interval.missed_tick is MissedTickBehavior.SKIP
    assert await interval.tick() == 1
    assert interval.next_deadline == 3


async def test_a_cancelled_tick_consumes_nothing(autojump_clock: trio.testing.MockClock) -> None:
    interval = Interval(1.0)
    await interval.tick()
    with trio.move_on_after(0.5):
        await interval.tick()
    assert interval.next_deadline == 1
    assert await interval.tick() == 1
    assert trio.current_time() == pytest.approx(1)
    # Cancelled while a late tick is ready: still not consumed.
    await trio.sleep(3)
    with trio.CancelScope() as scope:
        scope.cancel()
        await interval.tick()
    assert await interval.tick() == 2


async def test_reset_restarts_the_schedule_from_now(
    autojump_clock: trio.testing.MockClock,
) -> None:
    interval = Interval(1.0)
    await interval.tick()
    await trio.sleep(0.4)
    interval.reset()
    assert await interval.tick() == pytest.approx(1.4)
    assert await interval.tick() == pytest.approx(2.4)


async def test_async_iteration(autojump_clock: trio.testing.MockClock) -> None:
    seen = []
    async for due in Interval(0.25, start=10.0):
        seen.append(due)
        if len(seen) == 4:
            break
    assert seen == [10.0, 10.25, 10.5, 10.75]
    assert trio.current_time() == pytest.approx(10.75)


async def test_tick_is_a_checkpoint(autojump_clock: trio.testing.MockClock) -> None:
    interval = Interval(1.0)
    with trio.testing.assert_checkpoints():
        await interval.tick()  # immediate
    with trio.testing.assert_checkpoints():
        await interval.tick()  # waits


@pytest.mark.parametrize("period", [0, -1.0, math.inf, math.nan])
def test_period_must_be_positive_and_finite(period: float) -> None:
    with pytest.raises(ValueError, match="period"):
        Interval(period, start=0.0)


def test_outside_trio_it_needs_a_start() -> None:
    with pytest.raises(RuntimeError, match="pass start="):
        Interval(1.0)
    interval = Interval(1.0, MissedTickBehavior.DELAY, start=3.0)
    assert interval.next_deadline == 3.0 and interval.period == 1.0
    assert "DELAY" in repr(interval)
    with pytest.raises(ValueError, match="start"):
        Interval(1.0, start=math.inf)
