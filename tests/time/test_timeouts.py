"""timeout, timeout_at, move_on_after, move_on_at: wheel-cancelled scopes."""

from __future__ import annotations

import math

import pytest
import trio
import trio.testing

from runtime.time import (
    Elapsed,
    TimeoutScope,
    TimerWheel,
    move_on_after,
    move_on_at,
    sleep,
    timeout,
    timeout_at,
)

TICK = 0.001


async def test_timeout_raises_elapsed_when_the_wheel_fires(
    autojump_clock: trio.testing.MockClock,
) -> None:
    with pytest.raises(Elapsed, match=r"did not finish within 1\.5s") as info, timeout(1.5):
        await trio.sleep(10)
    assert isinstance(info.value, TimeoutError)
    assert 1.5 <= trio.current_time() <= 1.5 + TICK


async def test_a_body_that_finishes_in_time_is_left_alone(
    autojump_clock: trio.testing.MockClock,
) -> None:
    wheel = TimerWheel.current()
    with timeout(2) as scope:
        await trio.sleep(1.999)
    assert not scope.expired
    assert not scope.cancelled_caught
    stats = wheel.statistics()
    assert (stats.pending, stats.fired, stats.cancelled) == (0, 0, 1)


async def test_move_on_after_just_ends_the_block(autojump_clock: trio.testing.MockClock) -> None:
    reached = False
    with move_on_after(0.25) as scope:
        await trio.sleep(1)
        reached = True
    assert not reached
    assert scope.expired and scope.cancelled_caught
    assert trio.current_time() == pytest.approx(0.25, abs=TICK)


async def test_absolute_deadlines(autojump_clock: trio.testing.MockClock) -> None:
    deadline = trio.current_time() + 3
    with move_on_at(deadline) as scope:
        assert scope.deadline == deadline
        await trio.sleep(5)
    assert scope.expired
    assert trio.current_time() == pytest.approx(3, abs=TICK)
    with pytest.raises(Elapsed, match="by its deadline"), timeout_at(trio.current_time() + 1):
        await trio.sleep(5)


async def test_deadline_can_be_read_and_moved_inside_the_block(
    autojump_clock: trio.testing.MockClock,
) -> None:
    start = trio.current_time()
    with move_on_after(1) as scope:
        assert scope.deadline == pytest.approx(start + 1)
        scope.deadline += 2  # later: lazy, the wheel re-buckets it when the old slot fires
        await trio.sleep(10)
    assert trio.current_time() - start == pytest.approx(3, abs=TICK)

    start = trio.current_time()
    with move_on_after(10) as scope:
        await trio.sleep(1)
        scope.deadline = trio.current_time() + 0.5  # earlier: moved at once
        await trio.sleep(10)
    assert trio.current_time() - start == pytest.approx(1.5, abs=TICK)

    start = trio.current_time()
    with move_on_after(1) as scope:
        scope.deadline = math.inf  # no limit any more
        await trio.sleep(50)
    assert not scope.expired
    assert trio.current_time() - start == pytest.approx(50)
    assert TimerWheel.current().statistics().pending == 0


async def test_deadline_of_a_relative_timeout_is_set_on_entry(
    autojump_clock: trio.testing.MockClock,
) -> None:
    scope = move_on_after(2)
    with pytest.raises(RuntimeError, match="when the block is entered"):
        _ = scope.deadline
    await trio.sleep(1)
    with scope:
        assert scope.deadline == pytest.approx(3)
    absolute = timeout_at(7)
    absolute.deadline = 8  # before entering: just stored
    assert absolute.deadline == 8


@pytest.mark.parametrize("seconds", [0.0, -1.0, -math.inf])
async def test_zero_and_negative_timeouts_expire_at_the_next_tick(
    seconds: float, autojump_clock: trio.testing.MockClock
) -> None:
    await trio.sleep(0.0004)
    start = trio.current_time()
    with pytest.raises(Elapsed), timeout(seconds):
        await trio.sleep(1)
    assert 0 <= trio.current_time() - start <= TICK


async def test_a_deadline_that_already_passed_expires_at_the_next_tick(
    autojump_clock: trio.testing.MockClock,
) -> None:
    await trio.sleep(5)
    with move_on_at(1.0) as scope:
        await trio.sleep(1)
    assert scope.expired
    assert trio.current_time() <= 5 + TICK


async def test_cancelled_from_outside_is_not_an_expiry(
    autojump_clock: trio.testing.MockClock,
) -> None:
    wheel = TimerWheel.current()
    seen: list[BaseException] = []

    async def worker(task_status: trio.TaskStatus[trio.CancelScope]) -> None:
        with trio.CancelScope() as outer:
            task_status.started(outer)
            try:
                with timeout(10):
                    await trio.sleep(100)
            except BaseException as exc:
                seen.append(exc)
                raise

    async with trio.open_nursery() as nursery:
        outer = await nursery.start(worker)
        await trio.sleep(2)
        outer.cancel()
    assert len(seen) == 1 and isinstance(seen[0], trio.Cancelled)
    assert trio.current_time() == pytest.approx(2)
    stats = wheel.statistics()
    assert (stats.pending, stats.fired) == (0, 0)


async def test_cancel_ends_the_block_without_elapsed(
    autojump_clock: trio.testing.MockClock,
) -> None:
    with timeout(10) as scope:
        scope.cancel()
        await trio.sleep(1)
    assert scope.cancelled_caught and not scope.expired


async def test_nested_timeouts_only_the_one_that_expired_raises(
    autojump_clock: trio.testing.MockClock,
) -> None:
    with pytest.raises(Elapsed, match="within 1s"), timeout(5), timeout(1):
        await trio.sleep(10)
    assert trio.current_time() == pytest.approx(1, abs=TICK)

    start = trio.current_time()
    # The outer deadline comes first: no Elapsed from the inner one.
    with move_on_after(1) as outer, timeout(5) as inner:
        await trio.sleep(10)
    assert outer.expired and not inner.expired
    assert trio.current_time() - start == pytest.approx(1, abs=TICK)


async def test_shield_keeps_outer_cancellation_out_but_not_the_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    with trio.CancelScope() as outer:
        outer.cancel()
        with move_on_after(2, shield=True) as scope:
            assert scope.cancel_scope.shield
            await trio.sleep(10)
    assert scope.expired
    assert trio.current_time() == pytest.approx(2, abs=TICK)


async def test_a_body_woken_in_the_same_tick_before_the_expiry_is_not_cut(
    autojump_clock: trio.testing.MockClock,
) -> None:
    wheel = TimerWheel.current()
    deadline = trio.current_time() + 1
    done = trio.Event()
    wheel.call_at(deadline, done.set)  # same tick, inserted first: fires first
    with timeout_at(deadline) as scope:
        await done.wait()  # woken before the cancel; no checkpoint after it
    assert scope.expired and not scope.cancelled_caught  # so no Elapsed

    deadline = trio.current_time() + 1
    late = trio.Event()
    with pytest.raises(Elapsed), timeout_at(deadline):
        wheel.call_at(deadline, late.set)  # same tick, inserted after: fires after
        await late.wait()


async def test_a_scope_is_not_reusable(autojump_clock: trio.testing.MockClock) -> None:
    scope = move_on_after(1)
    with scope:
        pass
    with pytest.raises(RuntimeError), scope:
        pass  # pragma: no cover
    assert TimerWheel.current().statistics().pending == 0


def test_nan_is_refused() -> None:
    for make in (timeout, move_on_after, timeout_at, move_on_at):
        with pytest.raises(ValueError, match="NaN"):
            make(math.nan)
    scope = timeout_at(1.0)
    with pytest.raises(ValueError, match="NaN"):
        scope.deadline = math.nan


async def test_repr(autojump_clock: trio.testing.MockClock) -> None:
    scope = timeout_at(5.0)
    assert isinstance(scope, TimeoutScope)
    assert "timeout" in repr(scope) and "idle" in repr(scope)
    with scope:
        assert "pending" in repr(scope)
    with move_on_after(0) as gone:
        await sleep(1)
    assert "move_on" in repr(gone) and "expired" in repr(gone)
