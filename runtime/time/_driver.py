"""The timer wheel's Trio side: the driver task and the wheel in use.

``_wheel.py`` is the data structure and imports no Trio. This module makes it run inside
Trio: :class:`TimerWheel` is a wheel whose clock is Trio's and that can :meth:`serve` (be
driven by a task); :func:`current_wheel` finds or makes the wheel for the code running now.

The driver is one task per wheel. It parks in a fresh cancel scope (``wheel.park(scope)``
sets the scope's deadline to the next slot with work, or leaves none when the wheel is
empty, and moves it earlier for a new timer due before that), sleeps until the scope's
deadline, and then lets the wheel fire what is due (``wheel.wake(now)``). So it never polls,
and Trio's ``MockClock``, which jumps to the earliest deadline, drives it in tests.

Which wheel: inside ``runtime.run`` / ``open_runtime`` the wheel is a runtime service (one per
runtime, configured by ``RuntimeConfig``), its driver a runtime system task. In a plain
``trio.run`` each run gets a default wheel in a ``RunVar``, driven by a Trio system task. The
last runtime asked and its wheel are cached as one tuple, so the hot path is one identity
test.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NoReturn

import trio

from ..rt import Runtime, try_current
from ._wheel import WheelCore

__all__ = ["TimerWheel", "current_wheel"]


class TimerWheel(WheelCore):
    """A hierarchical hashed timing wheel: O(1) insert, cancel and reset for any number of timers.

    Each runtime has one, created with the first timer (:meth:`current`); its driver task
    starts then and costs nothing until then. ``sleep``, ``timeout``, ``Interval``,
    ``DelayQueue`` and ``IdleDeadline`` all use it. Use a wheel directly to run plain
    callbacks at a deadline (:meth:`call_at`), or build one yourself and move it by hand with
    :meth:`advance`, which needs no Trio at all, or drive it with :meth:`serve`.

    See ``docs/explanation/timers.md`` for the level and slot arithmetic.

    Args:
        tick: Resolution in seconds. A timer fires at the first tick at or after its deadline,
            so never early and at most one tick late. Default 1 ms, as in Tokio: finer than
            any network timeout, coarse enough that a busy server's timers share ticks.
        levels: Number of levels. Default 6, which with the defaults spans 64**6 ms (about
            2.2 years); later deadlines are clamped onto the top level and still fire on time.
        slots: Slots per level, a power of two. Default 64, so one level's occupancy fits in a
            machine word.
        origin: The time of tick 0, on the clock the deadlines use. The runtime passes
            ``trio.current_time()``.
        clock: The clock the wheel reads. Default ``trio.current_time``; the wheels the
            runtime makes read the run's clock object directly (the same time, fewer calls).

    Raises:
        ValueError: if a setting is out of range.
    """

    __slots__ = ("_driving",)

    def __init__(
        self,
        tick: float = 0.001,
        levels: int = 6,
        slots: int = 64,
        *,
        origin: float = 0.0,
        clock: Callable[[], float] | None = None,
    ) -> None:
        super().__init__(
            tick, levels, slots, origin=origin, clock=trio.current_time if clock is None else clock
        )
        self._driving = False

    @staticmethod
    def current() -> TimerWheel:
        """The wheel of the running runtime, created (and its driver started) on first use.

        Inside ``runtime.run`` / ``open_runtime`` the wheel is a runtime service, configured
        by ``RuntimeConfig.timer_tick``, ``timer_levels`` and ``timer_slots``, and its driver
        is a system task stopped after every spawned task. In a plain ``trio.run`` (a test
        without a runtime, say) each run gets its own default wheel, driven by a Trio system
        task.

        Raises:
            RuntimeError: outside a Trio run.
        """
        return current_wheel()

    async def serve(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> NoReturn:
        """Drive the wheel: sleep until the next tick with work, process it, repeat. Never returns.

        The runtime starts this for its own wheel; call it only for a wheel you made
        yourself. It wakes only when a slot is due (a timer to fire or a slot to cascade), or
        once more for a timer that was cancelled after the driver armed for it.

        Cancellation: cancelling it stops the wheel; pending timers stay in it and fire if a
        driver runs again.

        Raises:
            RuntimeError: if the wheel already has a driver.
        """
        if self._driving:
            raise RuntimeError("this wheel already has a driver; run one serve() per wheel")
        self._driving = True
        task_status.started()
        now = self._now
        try:
            while True:
                with trio.CancelScope() as scope:
                    self.park(scope)
                    try:
                        await trio.sleep_forever()
                    finally:
                        self.unpark()
                self.wake(now())
        finally:
            self._driving = False
            _forget(self)


def _make_wheel(tick: float = 0.001, levels: int = 6, slots: int = 64) -> TimerWheel:
    """A wheel starting now on the run's clock, read through the clock object itself."""
    clock = trio.lowlevel.current_clock()
    return TimerWheel(tick, levels, slots, origin=clock.current_time(), clock=clock.current_time)


def _runtime_wheel(rt: Runtime) -> TimerWheel:
    config = rt.config
    wheel = _make_wheel(config.timer_tick, config.timer_levels, config.timer_slots)
    rt.start_system_task(wheel.serve, name="runtime.time.driver")
    return wheel


_run_wheel: trio.lowlevel.RunVar[TimerWheel | None] = trio.lowlevel.RunVar(
    "runtime.time.wheel", default=None
)

# The last runtime that asked for its wheel, and that wheel, as one tuple (read atomically
# even with runtimes in several threads): one identity test instead of a service lookup on
# the hot path. Cleared when the wheel's driver stops (its runtime is ending).
_cache: tuple[Runtime | None, TimerWheel | None] = (None, None)


def current_wheel() -> TimerWheel:
    """The wheel for the code running now; see :meth:`TimerWheel.current`."""
    global _cache
    rt = try_current()
    if rt is not None:
        cached_rt, cached_wheel = _cache
        if rt is cached_rt and cached_wheel is not None:
            return cached_wheel
        wheel = rt.service(TimerWheel, _runtime_wheel)
        _cache = (rt, wheel)
        return wheel
    run_wheel = _run_wheel.get()
    if run_wheel is None:
        run_wheel = _make_wheel()
        trio.lowlevel.spawn_system_task(run_wheel.serve, name="runtime.time.driver")
        _run_wheel.set(run_wheel)
    return run_wheel


def _forget(wheel: TimerWheel) -> None:
    global _cache
    if _cache[1] is wheel:
        _cache = (None, None)
