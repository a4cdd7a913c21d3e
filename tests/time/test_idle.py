"""IdleDeadline: touch() is a store, the wheel checks lazily, idle scopes get cancelled."""

from __future__ import annotations

import math

import pytest
import trio
import trio.testing

from runtime.time import Elapsed, IdleDeadline, TimerWheel

TICK = 0.001


async def test_an_untouched_deadline_cancels_its_scope_after_one_period(
    autojump_clock: trio.testing.MockClock,
) -> None:
    with trio.CancelScope() as scope:
        idle = IdleDeadline(5, scope=scope)
        assert idle.armed and not idle.expired
        await trio.sleep(100)
    assert scope.cancelled_caught and idle.expired and not idle.armed
    assert trio.current_time() == pytest.approx(5, abs=TICK)


async def test_activity_keeps_it_alive_and_silence_cuts_it_within_two_periods(
    autojump_clock: trio.testing.MockClock,
) -> None:
    period = 1.0
    last_touch = 0.0
    with trio.CancelScope() as scope, IdleDeadline(period, scope=scope) as idle:
        for _ in range(40):  # 10 s of activity, one touch every 0.25 s
            await trio.sleep(0.25)
            idle.touch()
            last_touch = trio.current_time()
        await trio.sleep(100)  # then silence
    assert idle.expired and scope.cancelled_caught
    quiet = trio.current_time() - last_touch
    assert period <= quiet <= 2 * period + TICK


async def test_touch_does_no_wheel_work(autojump_clock: trio.testing.MockClock) -> None:
    wheel = TimerWheel.current()
    with trio.CancelScope() as scope, IdleDeadline(30, scope=scope) as idle:
        before = wheel.statistics()
        for _ in range(10_000):
            idle.touch()
        after = wheel.statistics()
        assert after == before  # nothing inserted, moved, fired or woken
    assert not scope.cancel_called


async def test_the_wheel_rearms_a_touched_deadline_one_period_on(
    autojump_clock: trio.testing.MockClock,
) -> None:
    wheel = TimerWheel.current()
    with trio.CancelScope() as scope, IdleDeadline(2, scope=scope) as idle:
        idle.touch()
        await trio.sleep(2.0005)  # the check at 2 s saw the touch and re-armed
        stats = wheel.statistics()
        assert (stats.fired, stats.pending) == (1, 1)
        assert stats.next_wakeup is not None and stats.next_wakeup <= 4.0
        assert idle.armed and not idle.expired
        await trio.sleep(10)
    assert idle.expired
    assert trio.current_time() == pytest.approx(4, abs=TICK)


async def test_close_disarms(autojump_clock: trio.testing.MockClock) -> None:
    wheel = TimerWheel.current()
    with trio.CancelScope() as scope:
        idle = IdleDeadline(1, scope=scope)
        idle.close()
        idle.close()  # idempotent
        assert not idle.armed
        await trio.sleep(10)
    assert not scope.cancelled_caught and not idle.expired
    assert wheel.statistics().pending == 0


async def test_leaving_its_with_block_disarms(autojump_clock: trio.testing.MockClock) -> None:
    with trio.CancelScope() as scope:
        with IdleDeadline(1, scope=scope) as idle:
            await trio.sleep(0.5)
        await trio.sleep(10)
    assert not idle.expired and not scope.cancelled_caught


async def test_guard_is_the_standalone_form(autojump_clock: trio.testing.MockClock) -> None:
    idle = IdleDeadline(1)
    with pytest.raises(Elapsed, match="no activity for 1s"):
        async with idle.guard():
            await trio.sleep(100)
    assert idle.expired
    assert trio.current_time() == pytest.approx(1, abs=TICK)

    busy = IdleDeadline(1)
    async with busy.guard() as same:
        assert same is busy
        for _ in range(20):
            await trio.sleep(0.5)
            busy.touch()
    assert not busy.expired and not busy.armed


async def test_guard_is_a_checkpoint(autojump_clock: trio.testing.MockClock) -> None:
    idle = IdleDeadline(1)
    with trio.testing.assert_checkpoints():
        async with idle.guard():
            pass


async def test_guard_and_scope_are_exclusive(autojump_clock: trio.testing.MockClock) -> None:
    with trio.CancelScope() as scope:
        idle = IdleDeadline(1, scope=scope)
        with pytest.raises(RuntimeError, match="either scope= or guard"):
            idle.guard()
        idle.close()
    guard = IdleDeadline(1).guard()
    async with guard:
        pass
    with pytest.raises(RuntimeError, match="only once"):
        async with guard:
            pass  # pragma: no cover


async def test_outer_cancellation_is_not_idleness(autojump_clock: trio.testing.MockClock) -> None:
    idle = IdleDeadline(10)
    with trio.move_on_after(1):
        async with idle.guard():
            await trio.sleep(100)
    assert not idle.expired and not idle.armed
    assert trio.current_time() == pytest.approx(1)


@pytest.mark.parametrize("period", [0, -1, math.inf, math.nan])
def test_period_must_be_positive_and_finite(period: float) -> None:
    with pytest.raises(ValueError, match="period"):
        IdleDeadline(period)


async def test_many_idle_connections_each_cut_on_time(
    autojump_clock: trio.testing.MockClock,
) -> None:
    cut_at: dict[int, float] = {}

    async def connection(n: int) -> None:
        with trio.CancelScope() as scope, IdleDeadline(1 + n * 0.01, scope=scope):
            await trio.sleep_forever()
        cut_at[n] = trio.current_time()

    async with trio.open_nursery() as nursery:
        for n in range(300):
            nursery.start_soon(connection, n)
    for n, when in cut_at.items():
        assert 1 + n * 0.01 <= when <= 1 + n * 0.01 + TICK + 1e-9
    assert len(cut_at) == 300
    assert TimerWheel.current().statistics().pending == 0


def test_repr() -> None:
    assert "period=3s" in repr(IdleDeadline(3))
