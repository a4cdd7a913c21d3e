"""The hierarchical timing wheel: the pure data structure (its Trio driver is ``_driver.py``).

How time maps onto the wheel
----------------------------
Time is counted in *ticks* of ``tick`` seconds (1 ms by default) from the wheel's ``origin``.
Tick ``k`` is the instant ``origin + k / rate`` with ``rate = 1 / tick`` (dividing by 1000.0
gives the float nearest a round number: tick 1500 of a 1 ms wheel is exactly 1.5 s). A deadline
``d`` is due at the first tick at or after it (``_ceil_tick``), so a timer never fires early
and at most one tick late. ``elapsed`` is the last tick the wheel has processed; every pending
timer is due after it, at the next tick at the earliest.

There are ``levels`` levels of ``slots`` slots each, ``slots = 2**bits``. A slot on level ``l``
spans ``slots**l`` ticks and the whole level spans ``slots**(l + 1)``: with 64 slots and 1 ms,
level 0 holds the next 64 ms one tick per slot, level 1 the next 4 s in 64 ms slots, and level
5 about 2.2 years in 12-day slots. A timer due at tick ``when`` goes to the lowest level on
which ``when`` and ``elapsed`` agree in every bit above that level's group of ``bits``::

    level = (bit_length((elapsed ^ when) | (slots - 1)) - 1) // bits
    slot  = (when >> (bits * level)) & (slots - 1)

so placing a timer is a few integer operations and a dict store, and cancelling it is a dict
delete (each entry knows the dict that holds it). Each level keeps a bitmask of occupied
slots, so the next slot to process is found with a rotate and a lowest-set-bit, never by
scanning.

Cascading, without the pause
----------------------------
When the wheel reaches a slot on level ``l > 0`` (at the slot's first tick), its timers must
move down, because ``elapsed`` has caught up with their upper bits. Moving them one by one
costs a pause proportional to the slot's population: a level-2 slot spans 4 s, and with
10,000 timers a second that is 40,000 timers, tens of milliseconds in Python, during which
nothing fires. So slots on levels >= 2 are kept *split* by the next lower digit: each holds
one sub-slot per slot of the level below. Reaching the slot hands each later sub-slot down
whole, as the lower level's slot for that part of time (an O(1) move: its timers point at the
sub-slot, which just changes role). Only the first sub-slot, due at once, is moved timer by
timer, and so are the slot's own timers, which it has only if it was itself handed down
whole. The work per cascade is O(slots) plus 1/slots of the timers, and no timer is moved
more than ``levels`` times. (The top level is the exception: it may hold clamped timers from
later turns, so its slots, reached every 12 days with the defaults, go timer by timer.)

Deadlines further away than the top level's span are *clamped* onto the top level, as Tokio
does: they go in the top-level slot their bits name, which the top level treats as a ring. The
search for the next slot starts just after the current one, so a slot at or behind the current
position is reached on the next turn, after every slot ahead of it. When the slot comes round,
its clamped timers go back into the top level until their real turn arrives, so they still
fire at their own tick.

New timers, resets and order
----------------------------
A new timer first goes into ``_incoming`` (a dict of timer to deadline, in insertion order)
and is placed on the wheel the next time anything looks at the wheel (when the driver wakes,
or someone asks for the next wakeup or advances it), or as soon as 256 live timers wait there.
A ``timeout()`` around an operation that finishes before then costs a dict store and a dict
delete and never touches the levels.

Resetting a timer to a *later* tick is lazy: only ``when`` changes, and the timer is moved
when its old slot is reached (the old slot is always reached first). Resetting it earlier
takes it out and inserts it again. Timers due in the same tick fire in the order they were
inserted (a lazily reset timer takes its place when it is moved).

The driver seam
---------------
This module is the data structure alone: it imports no Trio, reads time only from the clock
it is given (or from where it was last advanced to), and is tested with a plain fake clock.
Something outside it has to move it; ``_driver.py`` does, with one Trio task per wheel. The
two meet in three calls. ``park(sleeper)``: the driver is about to sleep; the wheel sets
``sleeper.deadline`` (a ``trio.CancelScope`` in practice) to the next slot to process, or
leaves it at infinity when the wheel is empty. Until ``unpark()``, a new timer due earlier
than that moves ``sleeper.deadline``, so the driver never polls and never busy-waits, and
Trio's ``MockClock`` (which jumps to the earliest deadline) drives it in tests. ``wake(now)``
counts the wakeup and advances the wheel. Cancelling a timer does not move the deadline back
(that would cost a Trio heap update per cancel): a driver armed for a timer that was
cancelled wakes once, finds nothing, and then sleeps with no deadline.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any, Protocol

import attrs

logger = logging.getLogger("runtime.time")

_NEVER = 1 << 256  # "armed for no tick": greater than any tick a wheel will reach
# New timers wait in _incoming until this many are live there, then they are placed at once:
# a flush is a short pause (a few hundred microseconds), never one proportional to a burst of
# inserts landing just when the first of them is due.
_FLUSH_AT = 256
_FAR = float(1 << 62)  # ticks: deadlines further away than this are treated as this far


class Sleeper(Protocol):
    """What a driver sleeps in; the wheel moves its ``deadline`` (a ``trio.CancelScope``)."""

    deadline: float


class _Slot(dict["_Entry", Any]):
    """A set of entries in insertion order: a slot of the table, or a sub-slot of one.

    The values are None, except in the wheel's ``_incoming`` slot, where they are deadlines.

    A table slot has its occupancy ``bit`` (0 once it is detached for processing). Table
    slots on levels >= 2 also have ``subs``: new timers go into the sub-slot named by the next
    lower digit of their tick, and ``live`` counts the non-empty ones. A sub-slot has a
    ``parent``. The slot's own entries, if any, came from a sub-slot of the level above that
    was installed as this slot; they are older than anything in its sub-slots.
    """

    __slots__ = ("bit", "level", "live", "parent", "subs", "wheel")

    def __init__(
        self, wheel: WheelCore, level: int, bit: int, parent: _Slot | None, split: bool
    ) -> None:
        super().__init__()
        self.wheel = wheel
        self.level = level
        self.bit = bit
        self.parent = parent
        self.subs: list[_Slot | None] | None = [None] * wheel._slots if split else None
        self.live = 0


class _Entry:
    """Something the wheel can hold: it is its own wheel node, so a timer costs one object.

    ``_slot`` is the slot holding it (None when it is not pending); ``_when`` is the tick it
    is due at, once it is placed on the wheel. Subclasses say what firing means.
    """

    __slots__ = ("_slot", "_when")

    _slot: _Slot | None
    _when: int

    def _fire(self, wheel: WheelCore) -> None:
        raise NotImplementedError


def _emptied(slot: _Slot) -> None:
    """``slot`` just lost its last entry: clear the occupancy bit it (or its parent) held."""
    parent = slot.parent
    if parent is not None:
        parent.live -= 1
        slot = parent
        if slot:
            return
    if not slot.live:
        slot.wheel._occupied[slot.level] &= ~slot.bit


def cancel_entry(entry: _Entry) -> bool:
    """Take ``entry`` out of its wheel. O(1). Returns whether it was pending."""
    slot = entry._slot
    if slot is None:
        return False
    del slot[entry]
    entry._slot = None
    if not slot and (slot.bit or slot.parent is not None):
        _emptied(slot)
    wheel = slot.wheel
    wheel._pending -= 1
    wheel._cancelled += 1
    return True


@attrs.frozen
class WheelStatistics:
    """A snapshot of one timer wheel, from its ``statistics()``.

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


class WheelCore:
    """A hierarchical hashed timing wheel: O(1) insert, cancel and reset for any number of timers.

    The data structure without a driver: it needs no Trio. Move it by hand with
    :meth:`advance`, or let a driver sleep until :meth:`next_wakeup` (see the module notes on
    ``park``/``unpark``/``wake``). :class:`runtime.time.TimerWheel` is this with its Trio
    driver, and is what the runtime uses.

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
        clock: What :meth:`now` reads: a function returning the time on the deadlines' clock.
            Default None: a wheel moved by hand reads the time of the last tick it was
            advanced to.

    Raises:
        ValueError: if a setting is out of range.
    """

    __slots__ = (
        "__weakref__",
        "_armed",
        "_armed_at",
        "_bits",
        "_cancelled",
        "_elapsed",
        "_fired",
        "_full",
        "_incoming",
        "_last_lag",
        "_level_of",
        "_levels",
        "_mask",
        "_max_bit_length",
        "_now",
        "_occupied",
        "_origin",
        "_pending",
        "_rate",
        "_shifts",
        "_sleeper",
        "_slots",
        "_table",
        "_tick",
        "_top",
        "_wakeups",
    )

    def __init__(
        self,
        tick: float = 0.001,
        levels: int = 6,
        slots: int = 64,
        *,
        origin: float = 0.0,
        clock: Callable[[], float] | None = None,
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
        self._rate = 1.0 / self._tick
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
            [_Slot(self, level, 1 << index, None, level >= 2) for index in range(slots)]
            for level in range(levels)
        ]
        self._occupied = [0] * levels
        # New timers, in insertion order, with their deadlines; placed on the wheel the next
        # time anything looks at it (see insert).
        self._incoming = _Slot(self, 0, 0, None, False)
        self._elapsed = 0
        self._pending = 0
        self._fired = 0
        self._cancelled = 0
        self._wakeups = 0
        self._last_lag = 0.0
        # The tick the driver sleeps until, and its time: (_NEVER, inf) while it sleeps with
        # no deadline, (0, -inf) while it is not asleep (it will look at the wheel anyway).
        self._armed = 0
        self._armed_at = -math.inf
        self._sleeper: Sleeper | None = None  # what the driver sleeps in, while it is parked
        self._now: Callable[[], float] = self._advanced_to if clock is None else clock

    # -- the wheel in use --------------------------------------------------------------

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
        self._ceil_tick(deadline)  # refuses NaN and infinity
        timer = Timer(callback, deadline)
        timer._wheel = self
        self.insert(timer, deadline)
        return timer

    def advance(self, now: float) -> int:
        """Process the wheel up to ``now``: fire every timer due by then, in order.

        The driver calls this (through :meth:`wake`) each time it wakes; call it yourself on a
        wheel you drive by hand (no Trio needed). Timers due in the same tick fire in
        insertion order; earlier ticks fire first.

        Args:
            now: The current time on the wheel's clock. Going backwards does nothing.

        Returns:
            How many timers fired.
        """
        now_tick = self._floor_tick(now)
        count = 0
        while True:
            found = self._next_expiration()
            if found is None or found[2] > now_tick:
                break
            count += self._expire(found[0], found[1], found[2], now)
        if now_tick > self._elapsed:
            self._elapsed = now_tick
        return count

    def next_wakeup(self) -> float | None:
        """When the wheel next has work to do (a timer due or a slot to cascade), or None."""
        found = self._next_expiration()
        return None if found is None else self._time_of(found[2])

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

    # -- the driver seam: what a driver (``_driver.py``) calls ----------------------------

    def park(self, sleeper: Sleeper) -> None:
        """The driver is about to sleep in ``sleeper``: arm it for the next slot with work.

        Sets ``sleeper.deadline`` to that slot's time, or leaves it alone when the wheel is
        empty (the driver sleeps with no deadline). Until :meth:`unpark`, a new timer due
        earlier moves ``sleeper.deadline`` earlier; a cancelled one never moves it back.
        """
        found = self._next_expiration()
        if found is None:
            self._armed = _NEVER
            self._armed_at = math.inf
        else:
            self._armed = found[2]
            sleeper.deadline = self._armed_at = self._time_of(found[2])
        self._sleeper = sleeper

    def unpark(self) -> None:
        """The driver is awake (or stopping): new timers no longer move its deadline."""
        self._sleeper = None
        self._armed = 0
        self._armed_at = -math.inf

    def wake(self, now: float) -> int:
        """The driver woke up at ``now``: count the wakeup and :meth:`advance` to ``now``."""
        self._wakeups += 1
        return self.advance(now)

    # -- the time of a wheel moved by hand -------------------------------------------------

    def _advanced_to(self) -> float:
        """The clock of a wheel given none: the time of the last tick it was advanced to."""
        return self._time_of(self._elapsed)

    # -- the internal API: what sleep, timeout, DelayQueue and IdleDeadline use ---------
    #
    # Entries (``_Entry`` subclasses) are placed, moved and taken out through these alone;
    # nothing outside this module reads or writes the wheel's private state. ``cancel_entry``
    # (module level) takes an entry out of whatever wheel holds it.

    def now(self) -> float:
        """The wheel's clock (``clock``): Trio's for a wheel the runtime or a Trio run made."""
        return self._now()

    def insert(self, entry: _Entry, deadline: float) -> None:
        """Insert ``entry`` (not pending) to fire at ``deadline``. O(1), amortised.

        The deadline must not be NaN or +inf (callers check, with their own messages).
        """
        incoming = self._incoming
        incoming[entry] = deadline
        entry._slot = incoming
        self._pending += 1
        if deadline < self._armed_at:
            self._arm_for(deadline)
        if len(incoming) >= _FLUSH_AT:
            self._flush()

    def insert_after_tick(self, entry: _Entry, seconds: float) -> None:
        """Insert ``entry`` to fire ``seconds`` after the tick the wheel is processing.

        For an entry that re-inserts itself from its ``_fire``: it stays on the tick grid
        without reading the clock.
        """
        self._schedule(entry, self._elapsed + math.ceil(seconds * self._rate))

    def reset(self, entry: _Entry, deadline: float) -> None:
        """Make ``entry`` fire at ``deadline`` instead, inserting it if it is not pending.

        Later is O(1) and lazy; earlier moves it.

        Raises:
            ValueError: if ``deadline`` is NaN or +inf.
        """
        self._reset(entry, self._ceil_tick(deadline))

    # -- the arithmetic ----------------------------------------------------------------

    def _time_of(self, tick: int) -> float:
        """The instant of ``tick``. Every conversion uses this same expression."""
        return self._origin + tick / self._rate

    def _ceil_tick(self, deadline: float) -> int:
        """The first tick at or after ``deadline``.

        Deadlines more than ``_FAR`` ticks away (146 million years at 1 ms) count as that far;
        -inf and other past deadlines give a tick that is due already.

        Raises:
            ValueError: for NaN and +inf.
        """
        origin = self._origin
        rate = self._rate
        ticks = (deadline - origin) * rate
        if not -_FAR < ticks < _FAR:
            return self._odd_deadline(deadline)
        k = int(ticks)
        while origin + k / rate < deadline:
            k += 1
        return k

    def _odd_deadline(self, deadline: float) -> int:
        if deadline != deadline:
            raise ValueError("deadline must be a number, got NaN")
        if deadline == math.inf:
            raise ValueError("deadline must be finite; a timer that never fires needs no timer")
        return int(_FAR) if deadline > self._origin else self._elapsed

    def _floor_tick(self, now: float) -> int:
        """The last tick at or before ``now``; consistent with the times the driver sleeps to."""
        origin = self._origin
        rate = self._rate
        k = math.floor((now - origin) * rate)
        if origin + k / rate > now:
            k -= 1
        elif origin + (k + 1) / rate <= now:
            k += 1
        return k

    def _next_expiration(self) -> tuple[int, int, int] | None:
        """(level, slot index, tick) of the next slot to process, or None if empty.

        Lower levels always come first: a level only holds ticks before the next slot of the
        level above it. On each level the search starts just after the slot ``elapsed`` is
        in; that slot itself counts as one full turn ahead. Only the top level can hold
        timers there (clamped ones), and for them it is right: their slot comes round again.
        """
        if self._incoming:
            self._flush()
        elapsed = self._elapsed
        occupied = self._occupied
        slots = self._slots
        for level in range(self._levels):
            occ = occupied[level]
            if occ:
                shift = self._shifts[level]
                start = ((elapsed >> shift) & self._mask) + 1
                rotated = ((occ >> start) | (occ << (slots - start))) & self._full
                offset = start + (rotated & -rotated).bit_length() - 1
                span = shift + self._bits
                tick = ((elapsed >> span) << span) + (offset << shift)
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
        self._occupied[level] |= slot.bit
        subs = slot.subs
        if subs is not None:  # levels >= 2: into the sub-slot of the next lower digit
            index = (when >> self._shifts[level - 1]) & self._mask
            sub = subs[index]
            if sub is None:
                sub = subs[index] = _Slot(self, level, 0, slot, False)
            if not sub:
                slot.live += 1
            slot = sub
        slot[entry] = None
        entry._slot = slot
        if when < self._armed:
            self._arm(when)

    def _arm(self, when: int) -> None:
        """Wake the parked driver at tick ``when`` instead (earlier than it was armed for)."""
        self._armed = when
        sleeper = self._sleeper
        assert sleeper is not None
        sleeper.deadline = self._armed_at = self._time_of(when)

    def _arm_for(self, deadline: float) -> None:
        """A new timer's deadline is before the driver's: wake it for that tick if need be."""
        when = max(self._ceil_tick(deadline), self._elapsed + 1)
        if when < self._armed:
            self._arm(when)

    def _schedule(self, entry: _Entry, when: int) -> None:
        """Insert a new timer due at tick ``when``.

        Like every insert it goes into ``_incoming``, in order, and is placed on the wheel by
        ``_flush`` the next time the wheel is looked at: when the driver wakes, or anyone asks
        for the next wakeup or advances it. A timer cancelled before then (a ``timeout()``
        around an operation that finished at once) costs a dict store and a dict delete,
        nothing more. The driver is woken earlier if this deadline comes before the one it
        sleeps until, so placing late never makes a timer late.
        """
        self.insert(entry, self._time_of(when))

    def _flush(self) -> None:
        """Place the timers waiting in ``_incoming`` on the wheel, in insertion order."""
        incoming = self._incoming
        self._incoming = _Slot(self, 0, 0, None, False)
        ceil_tick = self._ceil_tick
        for entry, deadline in incoming.items():
            self._place(entry, ceil_tick(deadline))

    def _reset(self, entry: _Entry, when: int) -> None:
        """Move a timer to tick ``when``: lazily if later, as a new insert if earlier."""
        slot = entry._slot
        if slot is None:
            self._schedule(entry, when)
            return
        if when <= self._elapsed:
            when = self._elapsed + 1
        if slot is self._incoming:
            old = max(self._ceil_tick(slot[entry]), self._elapsed + 1)
            if when >= old:
                slot[entry] = self._time_of(when)
                return
        elif when >= entry._when:
            entry._when = when  # its old slot comes first; it is re-bucketed from there
            return
        del slot[entry]
        if not slot:
            _emptied(slot)
        self._pending -= 1
        self._schedule(entry, when)

    # -- processing a slot -------------------------------------------------------------

    def _expire(self, level: int, index: int, tick: int, now: float) -> int:
        """Process the slot due at ``tick``; fire what is due. Returns how many fired.

        The slot is detached from the table first, so callbacks and cancels never see it
        half-processed. Its own entries are sorted out first (they are the oldest), then its
        sub-slots: each one for a later part of the slot becomes the lower level's slot for
        that part as it is, in O(1), unless that slot already has entries, in which case its
        timers are moved one by one behind them. Only the first sub-slot, due at once, is
        always moved one by one. So reaching a slot costs O(slots) plus the timers due in its
        first 1/slots, not O(timers in the slot). Timers due now fire last, in order, once
        the wheel is consistent again.
        """
        row = self._table[level]
        slot = row[index]
        row[index] = _Slot(self, level, slot.bit, None, level >= 2)
        self._occupied[level] &= ~slot.bit
        slot.bit = 0  # detached: a cancel that empties it must leave the bitmask alone
        self._elapsed = tick
        due: list[tuple[_Entry, _Slot]] = []
        if slot:
            self._sort_out(slot, tick, due)
        subs = slot.subs
        if subs is not None and slot.live:
            if level < self._top:
                self._open(subs, level - 1, tick, due)
            else:
                # The top level can hold clamped timers from later turns: a sub-slot of it is
                # not exactly one slot of the level below, so its timers go one by one.
                for sub in subs:
                    if sub:
                        self._sort_out(sub, tick, due)
        fired = 0
        lag = now - self._time_of(tick)
        for entry, batch in due:
            if entry._slot is batch:  # not cancelled or moved by an earlier callback
                entry._slot = None
                self._pending -= 1
                self._fired += 1
                self._last_lag = lag
                fired += 1
                entry._fire(self)
        return fired

    def _sort_out(self, batch: _Slot, tick: int, due: list[tuple[_Entry, _Slot]]) -> None:
        """Collect the entries of a detached batch due at ``tick``; put the rest back in."""
        for entry in list(batch):
            if entry._slot is batch:
                when = entry._when
                if when <= tick:
                    due.append((entry, batch))
                else:
                    self._place(entry, when)  # a cascade, or a lazy reset catching up

    def _open(
        self, subs: list[_Slot | None], level: int, tick: int, due: list[tuple[_Entry, _Slot]]
    ) -> None:
        """Hand the sub-slots of a detached slot down to ``level`` (see ``_expire``)."""
        row = self._table[level]
        for index in range(1, self._slots):
            sub = subs[index]
            if not sub:
                continue
            target = row[index]
            if target or target.live:
                self._sort_out(sub, tick, due)  # behind the older timers already there
                continue
            sub.level = level
            sub.bit = target.bit
            sub.parent = None
            sub.subs = [None] * self._slots if level >= 2 else None
            row[index] = sub
            self._occupied[level] |= sub.bit
        first = subs[0]
        if first:
            self._sort_out(first, tick, due)

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} tick={self._tick:g}s levels={self._levels} "
            f"slots={self._slots} pending={self._pending}>"
        )


class Timer(_Entry):
    """A callback scheduled on a timer wheel with ``call_at``."""

    __slots__ = ("_callback", "_deadline", "_wheel")

    def __init__(self, callback: Callable[[], object], deadline: float) -> None:
        self._slot = None
        self._when = 0
        self._callback = callback
        self._deadline = deadline
        self._wheel: WheelCore | None = None

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
        return cancel_entry(self)

    def reset(self, deadline: float) -> None:
        """Fire at ``deadline`` instead. O(1); a timer that already fired is scheduled again.

        Raises:
            ValueError: if ``deadline`` is NaN or infinite.
        """
        wheel = self._wheel
        assert wheel is not None
        wheel.reset(self, deadline)
        self._deadline = deadline

    def _fire(self, wheel: WheelCore) -> None:
        try:
            self._callback()
        except Exception:
            logger.exception("timer callback %r failed", self._callback)

    def __repr__(self) -> str:
        state = "pending" if self._slot is not None else "done"
        return f"<Timer {self._callback!r} at {self._deadline:.6g} {state}>"
