"""Deadline: a deadline moved on every request and reached rarely, at one store per move.

A connection sets a read deadline before each wait and a send deadline before each write;
almost none of them is ever reached. Re-filing a wheel entry each time would be wasted work, so
a ``Deadline`` keeps its wheel entry where it is when the deadline moves *later* (the common
case: each new deadline is a little after the last), and only notes the new time. When the
wheel reaches the entry, it looks: a deadline that has moved on re-files the entry there, one
that has passed calls ``on_expiry``. Moving it earlier re-files the entry at once.

Unlike :class:`~runtime.time.IdleDeadline`, it is exact: it never fires early, and at most one
wheel tick late, like every wheel timer.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable

from ._driver import current_wheel
from ._wheel import WheelCore, _Entry, cancel_entry

logger = logging.getLogger("runtime.time")

_INF = math.inf


class Deadline(_Entry):
    """Call ``on_expiry()`` once the deadline last :meth:`set` has passed.

    Example::

        deadline = Deadline(connection.close)
        deadline.set(trio.current_time() + 30)   # before a wait
        ...                                        # the wait ends in time
        deadline.clear()                           # or set() again for the next one

    Args:
        on_expiry: Called from the wheel (synchronously: it must not block) when a deadline
            passes. An exception from it is logged on the ``runtime.time`` logger.
        wheel: The wheel to use (default: the running runtime's).

    Raises:
        RuntimeError: outside a Trio run, without ``wheel``.
    """

    __slots__ = ("_armed_at", "_deadline", "_on_expiry", "_wheel")

    def __init__(self, on_expiry: Callable[[], object], wheel: WheelCore | None = None) -> None:
        self._slot = None
        self._when = 0
        self._on_expiry = on_expiry
        self._wheel: WheelCore = wheel if wheel is not None else current_wheel()
        self._deadline = _INF  # inf: not set
        self._armed_at = _INF  # where the wheel entry is filed, when it is pending

    @property
    def deadline(self) -> float:
        """The deadline set, on the wheel's clock; ``math.inf`` when none is set."""
        return self._deadline

    def set(self, when: float) -> None:
        """Expire at ``when`` (absolute). One store, unless ``when`` is earlier than before.

        Raises:
            ValueError: if ``when`` is NaN or infinite (use :meth:`clear`).
        """
        if not math.isfinite(when):
            raise ValueError(f"a deadline must be a finite time, got {when!r}; clear() it")
        self._deadline = when
        if self._slot is None or when < self._armed_at:
            self._armed_at = when
            self._wheel.reset(self, when)

    def clear(self) -> None:
        """No deadline until the next :meth:`set` (one store; the entry lapses by itself)."""
        self._deadline = _INF

    def close(self) -> None:
        """Clear it and take its entry off the wheel (when the connection ends)."""
        self._deadline = _INF
        cancel_entry(self)

    def _fire(self, wheel: WheelCore) -> None:
        deadline = self._deadline
        if deadline == _INF:
            return
        if wheel.now() < deadline:  # it moved on since the entry was filed: follow it
            self._armed_at = deadline
            wheel.reset(self, deadline)
            return
        self._deadline = _INF
        try:
            self._on_expiry()
        except Exception:
            logger.exception("deadline callback %r failed", self._on_expiry)

    def __repr__(self) -> str:
        state = "clear" if self._deadline == _INF else f"at {self._deadline:.6g}"
        return f"<Deadline {self._on_expiry!r} {state}>"


__all__ = ["Deadline"]
