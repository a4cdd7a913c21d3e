"""The wheel itself (``_wheel.py``): arithmetic, clamping, ordering, lazy resets, statistics,
the driver seam on a fake clock, and that it needs no Trio. The driver is in test_driver.py."""

from __future__ import annotations

import ast
import importlib.util
import logging
import math
import sys
from pathlib import Path

import pytest

from runtime.time import Timer, TimerWheel, WheelStatistics, _wheel
from runtime.time._wheel import WheelCore

TICK = 0.001


def recorder(log: list[object], value: object) -> object:
    return lambda: log.append(value)


# -- the wheel by hand (no Trio) ------------------------------------------------------------


def test_settings_are_validated_with_clear_messages() -> None:
    with pytest.raises(ValueError, match="tick must be a positive"):
        TimerWheel(tick=0)
    with pytest.raises(ValueError, match="tick must be a positive"):
        TimerWheel(tick=math.inf)
    with pytest.raises(ValueError, match="levels must be >= 1"):
        TimerWheel(levels=0)
    with pytest.raises(ValueError, match="power of two"):
        TimerWheel(slots=48)
    with pytest.raises(ValueError, match="power of two"):
        TimerWheel(slots=1)
    with pytest.raises(ValueError, match="origin"):
        TimerWheel(origin=math.nan)


def test_span_is_slots_to_the_power_of_levels_ticks() -> None:
    wheel = TimerWheel(tick=0.001, levels=6, slots=64)
    assert wheel.span == pytest.approx(64**6 / 1000)  # about 2.2 years
    assert (wheel.tick, wheel.levels, wheel.slots, wheel.origin) == (0.001, 6, 64, 0.0)
    assert TimerWheel(tick=0.5, levels=2, slots=4).span == 8.0


def test_a_timer_fires_at_the_first_tick_at_or_after_its_deadline() -> None:
    wheel = TimerWheel(origin=10.0)
    fired: list[object] = []
    wheel.call_at(10.0025, recorder(fired, "a"))  # between ticks 2 and 3
    wheel.call_at(10.004, recorder(fired, "b"))  # exactly on tick 4
    assert wheel.advance(10.0029) == 0
    assert wheel.advance(10.003) == 1
    assert fired == ["a"]
    assert wheel.advance(10.00399) == 0
    assert wheel.advance(10.004) == 1
    assert fired == ["a", "b"]


@pytest.mark.parametrize(("levels", "slots"), [(1, 2), (2, 4), (3, 8), (6, 64)])
def test_deadlines_past_the_top_level_are_clamped_and_fire_on_their_own_tick(
    levels: int, slots: int
) -> None:
    wheel = TimerWheel(TICK, levels=levels, slots=slots)
    fired: list[tuple[str, float]] = []
    far = wheel.span * 7.3 + 0.0004  # seven turns of the top level and a bit
    now = 0.0

    def at(name: str) -> object:
        return lambda: fired.append((name, now))

    wheel.call_at(far, at("far"))
    wheel.call_at(far / 3, at("third"))
    wheel.call_at(0.002, at("near"))
    # Walk time forward in uneven steps, and check nothing fires early or late.
    steps = 0
    while now < far + 0.01:
        now = round(now + wheel.span / 5 + 0.0003 * (steps % 3), 6)
        wheel.advance(now)
        steps += 1
        for _, when in fired:
            assert when <= now
    deadlines = {"near": 0.002, "third": far / 3, "far": far}
    assert [name for name, _ in fired] == ["near", "third", "far"]
    for name, when in fired:
        # advance() ran at `when`; the timer was due in the step that ended there.
        assert when >= deadlines[name]
        assert when - deadlines[name] < wheel.span / 5 + 0.002
    assert len(wheel) == 0


def test_a_deadline_years_away_fires_on_its_tick_with_the_default_wheel() -> None:
    wheel = TimerWheel()
    fired: list[object] = []
    three_years = 3 * 365 * 24 * 3600.0
    assert three_years > wheel.span
    wheel.call_at(three_years, recorder(fired, "late"))
    wheel.advance(three_years - TICK)
    assert fired == []
    assert wheel.next_wakeup() == pytest.approx(three_years)
    wheel.advance(three_years)
    assert fired == ["late"]


@pytest.mark.parametrize("deadline", [5.0, 4.9995, 4.0, -1.0, -math.inf])
def test_zero_and_negative_delays_fire_at_the_next_tick(deadline: float) -> None:
    wheel = TimerWheel()
    wheel.advance(5.0)
    fired: list[object] = []
    wheel.call_at(deadline, recorder(fired, deadline))
    assert wheel.advance(5.0) == 0  # not in the tick that is already done
    assert wheel.next_wakeup() == pytest.approx(5.001)
    assert wheel.advance(5.001) == 1
    assert fired == [deadline]


def test_expiries_in_the_same_tick_fire_in_insertion_order() -> None:
    wheel = TimerWheel()
    fired: list[object] = []
    # Deadlines inside one tick (1.0001 .. 1.0009 are all due at tick 1001), inserted out of
    # deadline order, some through higher levels (they cascade) and some directly.
    for i, offset in enumerate([0.0009, 0.0001, 0.0005, 0.0003, 0.0007]):
        wheel.call_at(1.0 + offset, recorder(fired, i))
    wheel.advance(0.990)  # now tick 1001 is on level 0; these go straight there
    for i, offset in enumerate([0.0002, 0.0008], start=5):
        wheel.call_at(1.0 + offset, recorder(fired, i))
    wheel.advance(1.001)
    assert fired == [0, 1, 2, 3, 4, 5, 6]


def test_cancel_is_final_and_reports_whether_it_was_pending() -> None:
    wheel = TimerWheel()
    fired: list[object] = []
    timer = wheel.call_at(0.5, recorder(fired, "x"))
    assert timer.pending
    assert timer.cancel() is True
    assert not timer.pending
    assert timer.cancel() is False
    wheel.advance(1.0)
    assert fired == []
    stats = wheel.statistics()
    assert (stats.pending, stats.fired, stats.cancelled) == (0, 0, 1)


def test_reset_later_is_lazy_and_reset_earlier_moves_the_timer() -> None:
    wheel = TimerWheel()
    fired: list[tuple[str, float]] = []
    now = [0.0]
    late = wheel.call_at(0.010, lambda: fired.append(("late", now[0])))
    early = wheel.call_at(0.050, lambda: fired.append(("early", now[0])))
    late.reset(0.030)  # later: the wheel still wakes at its old slot, and re-buckets it
    early.reset(0.005)  # earlier: moved at once
    assert (late.deadline, early.deadline) == (0.030, 0.005)
    assert wheel.next_wakeup() == pytest.approx(0.005)
    for step in range(1, 61):
        now[0] = step * TICK
        wheel.advance(now[0])
    assert fired == [("early", pytest.approx(0.005)), ("late", pytest.approx(0.030))]


def test_reset_of_a_fired_timer_schedules_it_again() -> None:
    wheel = TimerWheel()
    fired: list[object] = []
    timer = wheel.call_at(0.001, recorder(fired, "tick"))
    wheel.advance(0.001)
    assert not timer.pending
    timer.reset(0.002)
    assert timer.pending
    wheel.advance(0.002)
    assert fired == ["tick", "tick"]


def test_call_at_rejects_deadlines_that_are_not_numbers_or_never_come() -> None:
    wheel = TimerWheel()
    with pytest.raises(ValueError, match="NaN"):
        wheel.call_at(math.nan, lambda: None)
    with pytest.raises(ValueError, match="finite"):
        wheel.call_at(math.inf, lambda: None)
    timer = wheel.call_at(1.0, lambda: None)
    with pytest.raises(ValueError, match="finite"):
        timer.reset(math.inf)
    assert len(wheel) == 1


def test_a_failing_callback_is_logged_and_the_wheel_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    wheel = TimerWheel()
    fired: list[object] = []

    def boom() -> None:
        raise LookupError("bad callback")

    wheel.call_at(0.001, boom)
    wheel.call_at(0.001, recorder(fired, "after"))
    with caplog.at_level(logging.ERROR, logger="runtime.time"):
        assert wheel.advance(0.001) == 2
    assert fired == ["after"]
    assert "timer callback" in caplog.text
    assert "bad callback" in caplog.text


def test_callbacks_may_cancel_and_insert_timers_while_the_wheel_fires() -> None:
    wheel = TimerWheel()
    fired: list[object] = []
    victim: list[Timer] = []

    def first() -> None:
        fired.append("first")
        victim[0].cancel()  # due in the same tick, not fired yet: must not fire
        wheel.call_at(0.0, recorder(fired, "inserted"))  # past: next tick

    wheel.call_at(0.001, first)
    victim.append(wheel.call_at(0.001, recorder(fired, "victim")))
    wheel.call_at(0.001, recorder(fired, "third"))
    wheel.advance(0.001)
    assert fired == ["first", "third"]
    wheel.advance(0.002)
    assert fired == ["first", "third", "inserted"]
    assert len(wheel) == 0


def test_statistics_count_and_measure_the_lag_of_the_last_fire() -> None:
    wheel = TimerWheel()
    assert wheel.statistics() == WheelStatistics(
        pending=0, fired=0, cancelled=0, wakeups=0, last_fire_lag=0.0, next_wakeup=None, tick=TICK
    )
    wheel.call_at(0.010, lambda: None)
    wheel.call_at(0.020, lambda: None).cancel()
    wheel.call_at(0.030, lambda: None)
    wheel.advance(0.0125)  # 2.5 ms after the first was due
    stats = wheel.statistics()
    assert (stats.pending, stats.fired, stats.cancelled) == (1, 1, 1)
    assert stats.last_fire_lag == pytest.approx(0.0025)
    assert stats.next_wakeup is not None and stats.next_wakeup <= 0.030


def test_advance_backwards_does_nothing() -> None:
    wheel = TimerWheel()
    fired: list[object] = []
    wheel.call_at(0.5, recorder(fired, "x"))
    wheel.advance(0.4)
    assert wheel.advance(0.1) == 0
    assert fired == []
    assert wheel.advance(0.5) == 1


def test_repr_says_what_it_is() -> None:
    wheel = TimerWheel()
    timer = wheel.call_at(1.0, print)
    assert "pending=1" in repr(wheel)
    assert "pending" in repr(timer)
    timer.cancel()
    assert "done" in repr(timer)


@pytest.mark.parametrize("deadline", [1e300, 1e308, -1e308])
def test_absurdly_far_deadlines_neither_crash_nor_fire_early(deadline: float) -> None:
    wheel = TimerWheel()
    fired: list[object] = []
    wheel.call_at(deadline, recorder(fired, deadline))
    wheel.advance(1e9)  # 31 years on
    assert fired == ([deadline] if deadline < 0 else [])
    assert len(wheel) == (0 if deadline < 0 else 1)


# -- the pure module: no Trio, a fake clock, the driver seam ---------------------------------

WHEEL_SOURCE = Path(_wheel.__file__)
PURE_IMPORTS = {"__future__", "attrs", "collections.abc", "logging", "math", "typing"}


def _imported_modules(tree: ast.Module) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            found.add("." * node.level + (node.module or ""))
    return found


def test_the_wheel_module_imports_nothing_but_the_stdlib_and_attrs() -> None:
    """Every import, anywhere in the file (a function-local one too): no trio, no runtime."""
    imported = _imported_modules(ast.parse(WHEEL_SOURCE.read_text(encoding="utf-8")))
    assert imported <= PURE_IMPORTS, f"_wheel.py imports {sorted(imported - PURE_IMPORTS)}"


def test_the_wheel_module_loads_and_runs_where_trio_cannot_be_imported(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Load _wheel.py by path, outside the package, with ``import trio`` made to fail."""
    for name in [m for m in sys.modules if m == "trio" or m.startswith(("trio.", "runtime"))]:
        monkeypatch.setitem(sys.modules, name, None)  # None in sys.modules: ImportError
    spec = importlib.util.spec_from_file_location("lone_wheel", WHEEL_SOURCE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "lone_wheel", module)
    spec.loader.exec_module(module)
    now = [0.0]
    wheel = module.WheelCore(clock=lambda: now[0])
    fired: list[float] = []
    wheel.call_at(0.0105, lambda: fired.append(now[0]))
    now[0] = 0.011
    assert wheel.advance(wheel.now()) == 1
    assert fired == [0.011]


class FakeSleeper:
    """What a driver would sleep in: just a deadline, the way trio.CancelScope has one."""

    def __init__(self) -> None:
        self.deadline = math.inf


def test_now_reads_the_clock_it_was_given() -> None:
    now = [5.0]
    wheel = WheelCore(origin=5.0, clock=lambda: now[0])
    assert wheel.now() == 5.0
    now[0] = 7.25
    assert wheel.now() == 7.25


def test_without_a_clock_now_is_the_last_tick_it_was_advanced_to() -> None:
    wheel = WheelCore(tick=0.01, origin=100.0)
    assert wheel.now() == 100.0
    wheel.advance(100.257)
    assert wheel.now() == pytest.approx(100.25)


def test_a_parked_sleeper_is_armed_for_the_next_slot_and_moved_for_earlier_timers() -> None:
    wheel = WheelCore(tick=0.001)
    sleeper = FakeSleeper()
    wheel.park(sleeper)
    assert sleeper.deadline == math.inf  # empty: no deadline at all
    wheel.unpark()
    wheel.call_at(0.5, lambda: None)
    wheel.park(sleeper)
    assert sleeper.deadline == wheel.next_wakeup()
    wheel.call_at(0.003, lambda: None)  # earlier than the sleeper's deadline: moves it
    assert sleeper.deadline == 0.003
    wheel.call_at(0.2, lambda: None)  # later: leaves it
    assert sleeper.deadline == 0.003
    wheel.unpark()
    wheel.call_at(0.001, lambda: None)  # awake: no deadline to move
    assert sleeper.deadline == 0.003


def test_a_driver_loop_on_a_fake_clock_fires_everything_on_time_and_wakes_only_for_work() -> None:
    """The loop _driver.py runs, with the clock jumping to the sleeper's deadline (as
    MockClock's autojump does) and a callback adding an earlier timer while it is parked."""
    now = [0.0]
    wheel = WheelCore(tick=0.001, clock=lambda: now[0])
    fired: list[tuple[str, float]] = []

    def at(deadline: float, name: str) -> None:
        wheel.call_at(deadline, lambda: fired.append((name, now[0])))

    at(2.0, "b")
    at(0.0105, "a")
    at(2.0, "c")
    while len(wheel):
        sleeper = FakeSleeper()
        wheel.park(sleeper)
        assert sleeper.deadline < math.inf
        if now[0] == 0.0:
            at(0.004, "early")  # arrives while the driver sleeps
        now[0] = sleeper.deadline
        wheel.unpark()
        wheel.wake(now[0])
    assert fired == [("early", 0.004), ("a", 0.011), ("b", 2.0), ("c", 2.0)]
    stats = wheel.statistics()
    # One wakeup per slot with work: the two early fires, the start of the level-1 slot that
    # holds 2.0 s (1.984 s, where b and c move down to level 0), and 2.0 s itself.
    assert stats.wakeups == 4
    assert stats.next_wakeup is None
