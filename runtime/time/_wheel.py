"""The hierarchical timing wheel and its driver task.

How time maps onto the wheel
----------------------------
Time is counted in *ticks* of ``tick`` seconds (1 ms by default) from the wheel's ``origin``.
Tick ``k`` is the instant ``origin + k * tick``; a deadline ``d`` is due at the first tick at or
after it (``_ceil_tick``), so a timer never fires early and at most one tick late. ``elapsed``
is the last tick the wheel has processed; every pending timer is due after it.

There are ``levels`` levels of ``slots`` slots each, ``slots = 2**bits``. A slot on level ``l``
spans ``slots**l`` ticks and the whole level spans ``slots**(l + 1)``: with 64 slots and 1 ms,
level 0 holds the next 64 ms one tick per slot, level 1 the next 4 s in 64 ms slots, and level
5 about 2.2 years in 35-hour slots. A timer due at tick ``when`` goes to the lowest level on
which ``when`` and ``elapsed`` agree in every bit above that level's group of ``bits``::

    level = (bit_length((elapsed ^ when) | (slots - 1)) - 1) // bits
    slot  = (when >> (bits * level)) & (slots - 1)

so insert is a few integer operations and a dict store. Cancel is a dict delete (each entry
knows its slot). Each level keeps a bitmask of occupied slots, so the next slot to process is
found with a rotate and a lowest-set-bit, never by scanning.

When the wheel reaches a slot on level ``l > 0`` (at the slot's first tick), it *cascades* the
slot: each timer goes back in, now on a lower level, because ``elapsed`` has caught up with
its upper bits. A timer is therefore touched at most ``levels`` times in its life, and only
the timers due in the current tick are ever fired.

Deadlines further away than the top level's span are *clamped* onto the top level, as Tokio
does: they go in the top-level slot their bits name, which the wheel then treats as one turn of
the top level ahead. When that slot comes round they cascade back into the top level until
their real turn arrives, so they still fire at their own tick.

Resetting a timer to a *later* tick is lazy: only ``when`` changes, and the timer is moved when
its old slot is reached (the old slot is always reached first). Resetting earlier moves it at
once. Timers due in the same tick fire in the order they were inserted (a lazily reset timer
takes its place when it is moved).

The driver is one task per wheel. It sleeps in a cancel scope whose deadline is the next slot
to process, or with no deadline at all when the wheel is empty; an insert earlier than that
moves the deadline. So it never polls and never busy-waits, and Trio's ``MockClock`` (which
jumps to the earliest deadline) drives it in tests. Cancelling a timer does not move the
deadline back (that would cost a Trio heap update per cancel): a driver armed for a timer that
was cancelled wakes once, finds nothing, and then sleeps with no deadline.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import NoReturn

import attrs
import trio

from ..rt import Runtime, try_current

logger = logging.getLogger("runtime.time")

_NEVER = 1 << 256  # "armed for no tick": greater than any tick a wheel will reach
_run_wheel: trio.lowlevel.RunVar[TimerWheel | None] = trio.lowlevel.RunVar(
    "runtime.time.wheel", default=None
)


class _Slot(dict["_Entry", None]):
    """The entries of one slot, as an insertion-ordered set. Knows its wheel, level and bit."""

    __slots__ = ("bit", "level", "wheel")

    def __init__(self, wheel: TimerWheel, level: int, bit: int) -> None:
        super().__init__()
        self.wheel = wheel
        self.level = level
        self.bit = bit


class _Entry:
    """Something the wheel can hold: it is its own wheel node, so a timer costs one object.

    ``_slot`` is the slot holding it (None when it is not pending); ``_when`` is the tick it
    is due at. Subclasses say what firing means.
    """

    __slots__ = ("_slot", "_when")

    _slot: _Slot | None
    _when: int

    def _fire(self, wheel: TimerWheel) -> None:
        raise NotImplementedError


def _cancel(entry: _Entry) -> bool:
    """Take ``entry`` out of its wheel. Returns whether it was pending."""
    slot = entry._slot
    if slot is None:
        return False
    del slot[entry]
    entry._slot = None
    wheel = slot.wheel
    if not slot:
        wheel._occupied[slot.level] &= ~slot.bit
    wheel._pending -= 1
    wheel._cancelled += 1
    return True


@attrs.frozen
class WheelStatistics:
    """A snapshot of one timer wheel, from :meth:`TimerWheel.statistics`.

    Attributes:
        pending: Timers inserted and neither fired nor cancelled yet.
        fired: Timers fired since the wheel was created.
        cancelled: Timers cancelled before they fired.
        wakeups: Times the driver task woke up to process the wheel.
        last_fire_lag: Seconds between the tick the last fired timer was due at and the
            moment the wheel fired it (0.0 before the first fire). Under load this is how late
            the driver runs.
        next_wakeup: When the wheel next has work (a timer due, or a slot to cascade), or
            None if it is empty.
        tick: The wheel's resolution in seconds.
    """

    pending: int
    fired: int
    cancelled: int
    wakeups: int
    last_fire_lag: float
    next_wakeup: float | None
    tick: float


class TimerWheel:
    """A hierarchical hashed timing wheel: O(1) insert, cancel and reset for any number of timers.

    Each runtime has one, created with the first timer (:meth:`current`); its driver task
    starts then and costs nothing until then. ``sleep``, ``timeout``, ``Interval``,
    ``DelayQueue`` and ``IdleDeadline`` all use it. Use a wheel directly to run plain
    callbacks at a deadline (:meth:`call_at`), or build one yourself and move it by hand with
    :meth:`advance`, which needs no Trio at all.

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

    Raises:
        ValueError: if a setting is out of range.
    """

    __slots__ = (
        "__weakref__",
        "_armed",
        "_bits",
        "_cancelled",
        "_driving",
        "_elapsed",
        "_fired",
        "_full",
        "_last_lag",
        "_level_of",
        "_levels",
        "_mask",
        "_max_bit_length",
        "_now",
        "_occupied",
        "_origin",
        "_pending",
        "_shifts",
        "_sleep_scope",
        "_slots",
        "_table",
        "_tick",
        "_top",
        "_wakeups",
    )

    def __init__(
        self, tick: float = 0.001, levels: int = 6, slots: int = 64, *, origin: float = 0.0
    ) -> None:
        if not (tick > 0 and math.isfinite(tick)):
            raise ValueError(f"tick must be a positive number of seconds, got {tick!r}")
        if levels < 1:
            raise ValueError(f"levels must be >= 1, got {levels!r}")
        if slots < 2 or slots & (slots - 1):
            raise ValueError(f"slots must be a power of two >= 2, got {slots!r}")
        if not math.isfinite(origin):
            raise ValueError(f"origin must be a finite time, got {origin!r}")
        bits = slots.bit_length() - 1
        self._tick = float(tick)
        self._origin = float(origin)
        self._levels = levels
        self._slots = slots
        self._bits = bits
        self._mask = slots - 1
        self._full = (1 << slots) - 1
        self._top = levels - 1
        self._shifts = [bits * level for level in range(levels)]
        self._max_bit_length = bits * levels
        # Level for each bit length of ((elapsed ^ when) | mask); longer ones clamp to the top.
        self._level_of = [max(0, (n - 1) // bits) for n in range(self._max_bit_length + 1)]
        self._table = [
            [_Slot(self, level, 1 << index) for index in range(slots)] for level in range(levels)
        ]
        self._occupied = [0] * levels
        self._elapsed = 0
        self._pending = 0
        self._fired = 0
        self._cancelled = 0
        self._wakeups = 0
        self._last_lag = 0.0
        self._armed = 0  # tick the driver sleeps until; _NEVER if parked; 0 if not sleeping
        self._sleep_scope: trio.CancelScope | None = None
        self._driving = False
        # Trio's clock, read through the run's clock object (trio.current_time() does the
        # same behind three calls); current_wheel() binds it for the wheels it creates.
        self._now: Callable[[], float] = trio.current_time

    # -- the wheel in use --------------------------------------------------------------

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

    @property
    def tick(self) -> float:
        """Resolution in seconds."""
        return self._tick

    @property
    def levels(self) -> int:
        """Number of levels."""
        return self._levels

    @property
    def slots(self) -> int:
        """Slots per level."""
        return self._slots

    @property
    def origin(self) -> float:
        """The time of tick 0."""
        return self._origin

    @property
    def span(self) -> float:
        """Seconds covered by all levels; later deadlines are clamped (and still fire)."""
        return float(self._slots**self._levels) * self._tick

    def __len__(self) -> int:
        """Pending timers."""
        return self._pending

    def call_at(self, deadline: float, callback: Callable[[], object]) -> Timer:
        """Run ``callback()`` from the wheel at ``deadline``.

        The callback runs synchronously in the driver (or in :meth:`advance`), so it must not
        block; start a task from it if there is real work. An exception from it is logged on
        the ``runtime.time`` logger and does not stop the wheel.

        Args:
            deadline: When to fire, on the wheel's clock. A deadline that has passed fires at
                the next tick.
            callback: A function of no arguments.

        Returns:
            A :class:`Timer` to cancel or reset it.

        Raises:
            ValueError: if ``deadline`` is NaN or infinite (a timer that never fires needs no
                timer).
        """
        timer = Timer(callback, deadline)
        timer._wheel = self
        self._schedule(timer, self._ceil_tick(deadline))
        return timer

    def advance(self, now: float) -> int:
        """Process the wheel up to ``now``: fire every timer due by then, in order.

        The driver calls this each time it wakes; call it yourself on a wheel you drive by
        hand (no Trio needed). Timers due in the same tick fire in insertion order; earlier
        ticks fire first.

        Args:
            now: The current time on the wheel's clock. Going backwards does nothing.

        Returns:
            How many timers fired.
        """
        now_tick = self._floor_tick(now)
        count = 0
        table = self._table
        while True:
            found = self._next_expiration()
            if found is None or found[2] > now_tick:
                break
            level, index, tick = found
            batch = table[level][index]
            table[level][index] = _Slot(self, level, batch.bit)
            self._occupied[level] &= ~batch.bit
            batch.bit = 0  # cancels hitting the detached batch must leave the bitmask alone
            self._elapsed = tick
            lag = now - (self._origin + tick * self._tick)
            for entry in list(batch):
                if entry._slot is not batch:
                    continue  # cancelled or moved by a callback that ran before it
                if entry._when <= tick:
                    entry._slot = None
                    self._pending -= 1
                    self._fired += 1
                    self._last_lag = lag
                    count += 1
                    entry._fire(self)
                else:
                    self._place(entry, entry._when)  # cascade, or a lazy reset
        if now_tick > self._elapsed:
            self._elapsed = now_tick
        return count

    def next_wakeup(self) -> float | None:
        """When the wheel next has work to do (a timer due or a slot to cascade), or None."""
        found = self._next_expiration()
        return None if found is None else self._origin + found[2] * self._tick

    def statistics(self) -> WheelStatistics:
        """Pending, fired and cancelled counts, driver wakeups and the lag of the last fire."""
        return WheelStatistics(
            pending=self._pending,
            fired=self._fired,
            cancelled=self._cancelled,
            wakeups=self._wakeups,
            last_fire_lag=self._last_lag,
            next_wakeup=self.next_wakeup(),
            tick=self._tick,
        )

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
        try:
            while True:
                found = self._next_expiration()
                with trio.CancelScope() as scope:
                    if found is None:
                        self._armed = _NEVER
                    else:
                        self._armed = found[2]
                        scope.deadline = self._origin + found[2] * self._tick
                    self._sleep_scope = scope
                    try:
                        await trio.sleep_forever()
                    finally:
                        self._sleep_scope = None
                        self._armed = 0
                self._wakeups += 1
                self.advance(trio.current_time())
        finally:
            self._driving = False
            _forget(self)

    # -- the arithmetic ----------------------------------------------------------------

    def _ceil_tick(self, deadline: float) -> int:
        """The first tick at or after ``deadline``."""
        origin = self._origin
        tick = self._tick
        try:
            k = int((deadline - origin) / tick)
        except (OverflowError, ValueError):
            return self._odd_deadline(deadline)
        while origin + k * tick < deadline:
            k += 1
        return k

    def _odd_deadline(self, deadline: float) -> int:
        if deadline == -math.inf:
            return self._elapsed  # due already: fires at the next tick
        if deadline == math.inf:
            raise ValueError("deadline must be finite; a timer that never fires needs no timer")
        raise ValueError("deadline must be a number, got NaN")

    def _floor_tick(self, now: float) -> int:
        """The last tick at or before ``now``; consistent with the times the driver sleeps to."""
        origin = self._origin
        tick = self._tick
        k = math.floor((now - origin) / tick)
        if origin + k * tick > now:
            k -= 1
        elif origin + (k + 1) * tick <= now:
            k += 1
        return k

    def _next_expiration(self) -> tuple[int, int, int] | None:
        """(level, slot index, tick) of the next slot to process, or None if empty.

        Lower levels always come first: a level only holds ticks before the next slot of the
        level above it. Only the top level can hold a slot "behind" ``elapsed`` (clamped
        timers); that slot is a full turn of the top level ahead.
        """
        elapsed = self._elapsed
        occupied = self._occupied
        for level in range(self._levels):
            occ = occupied[level]
            if occ:
                shift = self._shifts[level]
                pos = (elapsed >> shift) & self._mask
                rotated = ((occ >> pos) | (occ << (self._slots - pos))) & self._full
                offset = pos + (rotated & -rotated).bit_length() - 1
                span = shift + self._bits
                tick = ((elapsed >> span) << span) + (offset << shift)
                if tick <= elapsed:
                    tick += 1 << span
                return level, offset & self._mask, tick
        return None

    def _place(self, entry: _Entry, when: int) -> None:
        """Put ``entry`` in the slot for tick ``when`` (at least the next tick)."""
        elapsed = self._elapsed
        if when <= elapsed:
            when = elapsed + 1
        entry._when = when
        length = ((elapsed ^ when) | self._mask).bit_length()
        level = self._top if length > self._max_bit_length else self._level_of[length]
        slot = self._table[level][(when >> self._shifts[level]) & self._mask]
        slot[entry] = None
        entry._slot = slot
        self._occupied[level] |= slot.bit
        if when < self._armed:
            self._arm(when)

    def _arm(self, when: int) -> None:
        """Wake the sleeping driver at tick ``when`` instead (earlier than it was armed for)."""
        self._armed = when
        scope = self._sleep_scope
        assert scope is not None
        scope.deadline = self._origin + when * self._tick

    def _schedule(self, entry: _Entry, when: int) -> None:
        """Insert a new timer (``entry`` must not be pending)."""
        self._place(entry, when)
        self._pending += 1

    def _schedule_at(self, entry: _Entry, deadline: float) -> None:
        """Insert a new timer due at ``deadline``: ``_ceil_tick`` and ``_schedule`` in one call.

        This is the path of every ``timeout()`` and ``sleep()``, so it is written out flat.
        """
        origin = self._origin
        tick = self._tick
        try:
            when = int((deadline - origin) / tick)
        except (OverflowError, ValueError):
            when = self._odd_deadline(deadline)
        while origin + when * tick < deadline:
            when += 1
        elapsed = self._elapsed
        if when <= elapsed:
            when = elapsed + 1
        entry._when = when
        length = ((elapsed ^ when) | self._mask).bit_length()
        level = self._top if length > self._max_bit_length else self._level_of[length]
        slot = self._table[level][(when >> self._shifts[level]) & self._mask]
        slot[entry] = None
        entry._slot = slot
        self._occupied[level] |= slot.bit
        self._pending += 1
        if when < self._armed:
            self._arm(when)

    def _reset(self, entry: _Entry, when: int) -> None:
        """Move a timer to tick ``when``: lazily if later, at once if earlier."""
        slot = entry._slot
        if slot is None:
            self._schedule(entry, when)
        elif when >= entry._when:
            entry._when = when  # its old slot comes first; it is re-bucketed from there
        else:
            del slot[entry]
            if not slot:
                self._occupied[slot.level] &= ~slot.bit
            self._place(entry, when)

    def __repr__(self) -> str:
        return (
            f"<TimerWheel tick={self._tick:g}s levels={self._levels} slots={self._slots} "
            f"pending={self._pending}>"
        )


class Timer(_Entry):
    """A callback scheduled on a :class:`TimerWheel` with :meth:`TimerWheel.call_at`."""

    __slots__ = ("_callback", "_deadline", "_wheel")

    def __init__(self, callback: Callable[[], object], deadline: float) -> None:
        self._slot = None
        self._when = 0
        self._callback = callback
        self._deadline = deadline
        self._wheel: TimerWheel | None = None

    @property
    def deadline(self) -> float:
        """When the timer fires (as last set), on the wheel's clock."""
        return self._deadline

    @property
    def pending(self) -> bool:
        """True until the timer fires or is cancelled."""
        return self._slot is not None

    def cancel(self) -> bool:
        """Stop the timer. O(1).

        Returns:
            True if it was pending, False if it had already fired or been cancelled.
        """
        return _cancel(self)

    def reset(self, deadline: float) -> None:
        """Fire at ``deadline`` instead. O(1); a timer that already fired is scheduled again.

        Raises:
            ValueError: if ``deadline`` is NaN or infinite.
        """
        wheel = self._wheel
        assert wheel is not None
        when = wheel._ceil_tick(deadline)
        self._deadline = deadline
        wheel._reset(self, when)

    def _fire(self, wheel: TimerWheel) -> None:
        try:
            self._callback()
        except Exception:
            logger.exception("timer callback %r failed", self._callback)

    def __repr__(self) -> str:
        state = "pending" if self._slot is not None else "done"
        return f"<Timer {self._callback!r} at {self._deadline:.6g} {state}>"


def _runtime_wheel(rt: Runtime) -> TimerWheel:
    config = rt.config
    wheel = TimerWheel(
        tick=config.timer_tick,
        levels=config.timer_levels,
        slots=config.timer_slots,
        origin=trio.current_time(),
    )
    wheel._now = trio.lowlevel.current_clock().current_time
    rt.start_system_task(wheel.serve, name="runtime.time.driver")
    return wheel


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
        run_wheel = TimerWheel(origin=trio.current_time())
        run_wheel._now = trio.lowlevel.current_clock().current_time
        trio.lowlevel.spawn_system_task(run_wheel.serve, name="runtime.time.driver")
        _run_wheel.set(run_wheel)
    return run_wheel


def _forget(wheel: TimerWheel) -> None:
    global _cache
    if _cache[1] is wheel:
        _cache = (None, None)
