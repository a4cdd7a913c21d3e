"""Interval: ticks at a fixed period, with Tokio's policies for ticks the task missed."""

from __future__ import annotations

import enum
import math

import trio

from ._driver import current_wheel
from ._sleep import _sleep_on

# A tick observed later than this after its deadline counts as missed (Tokio uses 5 ms). The
# wheel's own lateness (up to one tick) is always tolerated on top.
_MISSED_TOLERANCE = 0.005


class MissedTickBehavior(enum.Enum):
    """What an :class:`Interval` does when ``tick()`` is called after ticks were due.

    Say the period is 1 s, the ticks were due at 1, 2, 3, 4, 5 ..., and the task comes back
    to ``tick()`` at 4.5 (3.5 periods late):

    * ``BURST`` (the default): return the missed ticks at once, one per call (1, 2, 3, 4 at
      4.5), then keep the original schedule (5, 6 ...). Right when every tick must be counted.
    * ``DELAY``: return one tick now (at 4.5) and restart the schedule from it (5.5, 6.5 ...).
      Right when ticks must be at least a period apart.
    * ``SKIP``: return one tick now (at 4.5) and skip to the next tick of the original
      schedule (5, 6 ...). Right when ticks should stay on the grid but never pile up.
    """

    BURST = "burst"
    DELAY = "delay"
    SKIP = "skip"


class Interval:
    """Ticks every ``period`` seconds; ``await interval.tick()`` or ``async for``.

    The first tick completes at once; tick ``n`` is due ``n * period`` after the start. Each
    ``tick()`` returns the deadline of the tick it completed (on Trio's clock), which is the
    schedule, not the moment the task ran.

    For example::

        interval = Interval(1.0, MissedTickBehavior.SKIP)
        async for due in interval:
            await publish_stats()

    Args:
        period: Seconds between ticks. Must be positive and finite.
        missed_tick: What to do about ticks that were due while the task was busy; see
            :class:`MissedTickBehavior`. Default ``BURST``, as in Tokio.
        start: When the first tick is due, on Trio's clock. Default: now, which needs a
            running Trio run.

    Raises:
        ValueError: if ``period`` is not positive and finite, or ``start`` is not finite.
        RuntimeError: without ``start``, outside a Trio run.
    """

    __slots__ = ("_missed", "_next", "_period")

    def __init__(
        self,
        period: float,
        missed_tick: MissedTickBehavior = MissedTickBehavior.BURST,
        *,
        start: float | None = None,
    ) -> None:
        if not (period > 0 and math.isfinite(period)):
            raise ValueError(f"period must be a positive number of seconds, got {period!r}")
        if start is None:
            try:
                start = trio.current_time()
            except RuntimeError:
                raise RuntimeError(
                    "Interval() reads the start time from Trio's clock: create it inside a "
                    "Trio run, or pass start="
                ) from None
        elif not math.isfinite(start):
            raise ValueError(f"start must be a finite time, got {start!r}")
        self._period = float(period)
        self._missed = MissedTickBehavior(missed_tick)
        self._next = float(start)

    @property
    def period(self) -> float:
        """Seconds between ticks."""
        return self._period

    @property
    def missed_tick(self) -> MissedTickBehavior:
        """The missed-tick policy; may be changed at any time."""
        return self._missed

    @missed_tick.setter
    def missed_tick(self, value: MissedTickBehavior) -> None:
        self._missed = MissedTickBehavior(value)

    @property
    def next_deadline(self) -> float:
        """When the next tick is due."""
        return self._next

    def reset(self) -> None:
        """Restart the schedule: the next tick is due one period from now."""
        self._next = trio.current_time() + self._period

    async def tick(self) -> float:
        """Wait for the next tick and return its deadline.

        Returns:
            The time the tick was due (on Trio's clock).

        Cancellation: a checkpoint. A cancelled call consumes no tick: the next call
        completes the same one.
        """
        due = self._next
        wheel = current_wheel()
        if trio.current_time() < due:
            await _sleep_on(wheel, due)
        else:
            await trio.lowlevel.checkpoint()
        now = trio.current_time()
        period = self._period
        if now - due <= _MISSED_TOLERANCE + wheel.tick:
            self._next = due + period
        elif self._missed is MissedTickBehavior.DELAY:
            self._next = now + period
        elif self._missed is MissedTickBehavior.SKIP:
            self._next = due + period * (math.floor((now - due) / period) + 1)
        else:
            self._next = due + period
        return due

    def __aiter__(self) -> Interval:
        return self

    async def __anext__(self) -> float:
        """The next tick's deadline; the iteration never ends by itself."""
        return await self.tick()

    def __repr__(self) -> str:
        return f"<Interval period={self._period:g}s {self._missed.name} next={self._next:.6g}>"
