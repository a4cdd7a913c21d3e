"""Model-based tests of the timer wheel: random inserts, cancels, resets and time steps, checked
against a plain list of (due tick, insertion number) that knows nothing about levels or slots.

Two machines: the wheel by hand (``advance(now)``, no Trio), and the wheel driven by its
driver task under Trio's MockClock, inside a runtime.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import hypothesis.strategies as st
import trio
import trio.testing
from hypothesis import HealthCheck, given, settings
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    initialize,
    invariant,
    multiple,
    rule,
)

import runtime
from runtime.time import Timer, TimerWheel

TICK = 0.001
RATE = 1 / TICK  # tick k is the instant k / RATE (the wheel's definition; see _wheel.py)


def first_tick_at_or_after(deadline: float) -> int:
    """The model's own rounding, by search: the smallest k with k / RATE >= deadline."""
    k = math.floor(deadline * RATE) - 2
    while k / RATE < deadline:
        k += 1
    return k


def last_tick_at_or_before(now: float) -> int:
    k = math.floor(now * RATE) + 2
    while k / RATE > now:
        k -= 1
    return k


@dataclass
class ModelTimer:
    name: int
    due: int
    seq: int
    moved_later: bool = False  # reset to a later tick: re-bucketed lazily, order then unknown


@dataclass
class Model:
    """Sorted-list model: the live timers, and the last tick processed."""

    elapsed: int = 0
    live: dict[int, ModelTimer] = field(default_factory=dict)
    seq: int = 0

    def due_for(self, deadline: float) -> int:
        return max(first_tick_at_or_after(deadline), self.elapsed + 1)

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def expire(self, now: float) -> list[ModelTimer]:
        """The timers that must fire by ``now``, sorted by due tick (then insertion)."""
        now_tick = last_tick_at_or_before(now)
        due = sorted(
            (t for t in self.live.values() if t.due <= now_tick), key=lambda t: (t.due, t.seq)
        )
        for timer in due:
            del self.live[timer.name]
        self.elapsed = max(self.elapsed, now_tick)
        return due


# Small wheels overflow their top level within milliseconds, so clamping and cascades are
# exercised on almost every step; with 3 levels or more, slots on levels >= 2 are split by
# the next digit and handed down whole. The default wheel checks the real configuration.
WHEELS = [(2, 4), (3, 4), (4, 4), (5, 2), (6, 64)]


class WheelMachine(RuleBasedStateMachine):
    timers = Bundle("timers")

    def __init__(self) -> None:
        super().__init__()
        self.wheel: TimerWheel | None = None
        self.model = Model()
        self.now = 0.0
        self.handles: dict[int, Timer] = {}
        self.fired: list[int] = []
        self.names = 0

    @initialize(shape=st.sampled_from(WHEELS))
    def choose_wheel(self, shape: tuple[int, int]) -> None:
        self.wheel = TimerWheel(TICK, levels=shape[0], slots=shape[1])

    def _wheel(self) -> TimerWheel:
        assert self.wheel is not None
        return self.wheel

    def _callback(self, name: int) -> Callable[[], None]:
        return lambda: self.fired.append(name)

    @rule(target=timers, delay=st.floats(-0.01, 0.3) | st.sampled_from([0.0, 0.001, 0.004]))
    def insert(self, delay: float) -> int:
        self.names += 1
        name = self.names
        deadline = self.now + delay
        self.handles[name] = self._wheel().call_at(deadline, self._callback(name))
        self.model.live[name] = ModelTimer(
            name, self.model.due_for(deadline), self.model.next_seq()
        )
        return name

    @rule(
        count=st.integers(1, 300),
        delays=st.lists(st.sampled_from([0.0, 0.0015, 0.002, 0.07, 5.0]), min_size=1),
    )
    def insert_burst(self, count: int, delays: list[float]) -> None:
        """Many timers at once, many in the same tick (the wheel batches new timers)."""
        for i in range(count):
            self.insert(delays[i % len(delays)])

    @rule(name=consumes(timers))
    def cancel(self, name: int) -> None:
        was_live = name in self.model.live
        assert self.handles[name].cancel() is was_live
        self.model.live.pop(name, None)
        assert self.handles[name].cancel() is False

    @rule(target=timers, name=consumes(timers), delay=st.floats(-0.01, 0.3))
    def reset(self, name: int, delay: float) -> object:
        deadline = self.now + delay
        due = self.model.due_for(deadline)
        self.handles[name].reset(deadline)
        old = self.model.live.get(name)
        if old is None or due < old.due:
            # Not pending (fired or cancelled): scheduled again. Earlier: moved at once. Both
            # are like a new insert.
            self.model.live[name] = ModelTimer(name, due, self.model.next_seq())
        elif due > old.due:  # later: lazy, it keeps its slot until that slot is reached
            self.model.live[name] = ModelTimer(name, due, old.seq, moved_later=True)
        return multiple(name)

    @rule(step=st.floats(0, 0.05) | st.floats(0, 3.0) | st.sampled_from([TICK, 0.0]))
    def advance(self, step: float) -> None:
        self.now += step
        start = len(self.fired)
        count = self._wheel().advance(self.now)
        got = self.fired[start:]
        expected = self.model.expire(self.now)
        assert count == len(got)
        # Exactly the timers due by now fire, each once, and earlier ticks first.
        assert sorted(got) == sorted(t.name for t in expected)
        position = {name: i for i, name in enumerate(got)}
        ordered = sorted(expected, key=lambda t: position[t.name])
        assert [t.due for t in ordered] == sorted(t.due for t in ordered)
        # Within a tick, insertion order (timers moved later lazily have no fixed place).
        for a, b in itertools.pairwise(ordered):
            if a.due == b.due and not a.moved_later and not b.moved_later:
                assert a.seq < b.seq, (a, b)

    @invariant()
    def pending_matches_model(self) -> None:
        if self.wheel is not None:
            assert len(self.wheel) == len(self.model.live)
            assert self.wheel.statistics().pending == len(self.model.live)

    @invariant()
    def wheel_wakes_in_time(self) -> None:
        """The wheel's next wakeup is in the future and no later than the earliest due timer."""
        if self.wheel is None:
            return
        wake = self.wheel.next_wakeup()
        if not self.model.live:
            assert wake is None
            return
        assert wake is not None
        earliest = min(t.due for t in self.model.live.values())
        assert self.now < wake <= earliest / RATE


TestWheelByHand = WheelMachine.TestCase
TestWheelByHand.settings = settings(max_examples=150, stateful_step_count=50, deadline=None)


# -- the same contract, with the driver under MockClock ------------------------------------

Op = tuple[float, str, int, float]

ops = st.lists(
    st.tuples(
        st.floats(0, 0.05) | st.sampled_from([0.0, TICK]),  # wait before the op
        st.sampled_from(["insert", "insert", "cancel", "reset"]),
        st.integers(0, 50),  # which timer, for cancel and reset
        st.floats(-0.01, 0.3) | st.sampled_from([0.0, -TICK, TICK]),  # delay
    ),
    max_size=40,
)


@dataclass
class Live:
    deadline: float
    since: float  # when it was (re)armed: a past deadline is due from here
    fires: list[float] = field(default_factory=list)
    cancelled: bool = False


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(program=ops, shape=st.sampled_from(WHEELS))
def test_driver_matches_model_under_mock_clock(program: list[Op], shape: tuple[int, int]) -> None:
    levels, slots = shape
    config = runtime.RuntimeConfig(
        handle_signals=False, timer_tick=TICK, timer_levels=levels, timer_slots=slots
    )

    async def main() -> None:
        wheel = TimerWheel.current()
        # Each timer writes its fire time into the Live its cell holds now; a reset swaps
        # in a fresh Live, so a fire for the replaced deadline would land in the wrong one.
        timers: list[tuple[Timer, list[Live]]] = []
        every: list[Live] = []

        def check_none_overdue() -> None:
            now = trio.current_time()
            for live in every:
                if not live.cancelled and not live.fires:
                    # Never more than one tick late: by now it must have fired.
                    assert now <= max(live.deadline, live.since) + TICK + 1e-9, live

        for wait, action, index, delay in program:
            await trio.sleep(wait)
            check_none_overdue()
            now = trio.current_time()
            if action == "insert" or not timers:
                cell = [Live(now + delay, now)]
                every.append(cell[0])
                timer = wheel.call_at(
                    cell[0].deadline, lambda cell=cell: cell[0].fires.append(trio.current_time())
                )
                timers.append((timer, cell))
            else:
                timer, cell = timers[index % len(timers)]
                live = cell[0]
                pending = not live.fires and not live.cancelled
                if action == "cancel":
                    assert timer.cancel() is pending
                    live.cancelled = live.cancelled or pending
                else:
                    live.cancelled = live.cancelled or pending  # replaced: must never fire
                    cell[0] = Live(now + delay, now)
                    every.append(cell[0])
                    timer.reset(cell[0].deadline)
            live_count = sum(1 for live in every if not live.cancelled and not live.fires)
            assert wheel.statistics().pending == live_count

        await trio.sleep(1.0)  # longer than any delay: everything live has fired
        check_none_overdue()
        for live in every:
            if live.cancelled:
                assert live.fires == []
            else:
                assert len(live.fires) == 1, live
                fired = live.fires[0]
                assert fired >= live.deadline  # never early
                assert fired <= max(live.deadline, live.since) + TICK + 1e-9  # one tick late
        assert wheel.statistics().pending == 0

    runtime.run(main, config=config, clock=trio.testing.MockClock(autojump_threshold=0))
