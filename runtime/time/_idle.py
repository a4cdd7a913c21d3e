"""IdleDeadline: an idle timeout that costs one attribute store per touch.

The deadline is its own wheel entry and cancels a scope the connection already has, so an idle
connection costs one small object and no Trio cancel scope or heap entry of its own.
``touch()`` only sets a flag. When the wheel reaches the deadline it looks at the flag: set
means there was activity in the last period, so the flag is cleared and the deadline re-armed
one period on; clear means a whole period passed with no activity, and the scope is cancelled.

The price of never reading the clock on the hot path is precision: the wheel only knows that
there was activity during the last period, not when. An idle connection is therefore cut
between one and two periods after its last activity (one period if it was idle from the
start). That is the usual contract of a keep-alive or read-idle timeout; choose the period as
the shortest idle time you are willing to cut.
"""

from __future__ import annotations

import math
from types import TracebackType

import trio

from ._driver import current_wheel
from ._error import Elapsed
from ._wheel import WheelCore, _Entry, cancel_entry


class IdleDeadline(_Entry):
    """Cancel a scope once its connection has been idle for a period.

    One object per connection; call :meth:`touch` on every read and write. Attach it to a
    scope the connection already has (its handler's scope, say)::

        with trio.CancelScope() as scope, IdleDeadline(30, scope=scope) as idle:
            async for data in stream:
                idle.touch()
                ...

    or use :meth:`guard` to give a block a scope of its own. Armed on creation (with a scope)
    or on entering :meth:`guard`; disarmed by :meth:`close` or by leaving its ``with``.

    Args:
        period: Seconds of inactivity that count as idle. The scope is cancelled between one
            and two periods after the last :meth:`touch` (the first check is exactly one
            period after arming). Must be positive and finite.
        scope: The cancel scope to cancel when idle. Without it, use :meth:`guard`.

    Raises:
        ValueError: if ``period`` is not a positive, finite number.
        RuntimeError: with ``scope``, outside a Trio run.

    Cancellation: cancelling the scope (for any reason) does not disarm the deadline; close it
    (or leave its ``with``) when the connection ends so the wheel lets go of the scope.
    """

    __slots__ = ("_expired", "_period", "_scope", "_touched")

    def __init__(self, period: float, *, scope: trio.CancelScope | None = None) -> None:
        if not (period > 0 and math.isfinite(period)):
            raise ValueError(f"period must be a positive number of seconds, got {period!r}")
        self._slot = None
        self._when = 0
        self._period = period
        self._scope = scope
        self._touched = False
        self._expired = False
        if scope is not None:
            self._arm(current_wheel())

    def touch(self) -> None:
        """Record activity. A plain attribute store: no clock read, no wheel work."""
        self._touched = True

    @property
    def period(self) -> float:
        """Seconds of inactivity that count as idle."""
        return self._period

    @property
    def expired(self) -> bool:
        """True once the deadline cancelled its scope for being idle."""
        return self._expired

    @property
    def armed(self) -> bool:
        """True while the deadline is in the wheel, watching for idleness."""
        return self._slot is not None

    def close(self) -> None:
        """Stop watching: the scope will not be cancelled by this deadline. Idempotent."""
        cancel_entry(self)

    def __enter__(self) -> IdleDeadline:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def guard(self) -> IdleGuard:
        """An ``async with`` block with its own cancel scope, cancelled when idle.

        For example::

            idle = IdleDeadline(10)
            async with idle.guard():
                async for data in stream:
                    idle.touch()

        Leaving a block that was cut for idleness raises :class:`~runtime.time.Elapsed`.

        Raises:
            RuntimeError: if the deadline was created with ``scope=``.
        """
        if self._scope is not None:
            raise RuntimeError(
                "this IdleDeadline already watches the scope it was created with; use "
                "either scope= or guard(), not both"
            )
        return IdleGuard(self)

    def _arm(self, wheel: WheelCore) -> None:
        self._touched = False
        self._expired = False
        wheel.insert(self, wheel.now() + self._period)

    def _fire(self, wheel: WheelCore) -> None:
        if self._touched:
            self._touched = False
            wheel.insert_after_tick(self, self._period)
            return
        self._expired = True
        scope = self._scope
        if scope is not None:
            scope.cancel("idle deadline passed (runtime.time)")

    def __repr__(self) -> str:
        state = "expired" if self._expired else "armed" if self._slot is not None else "idle"
        return f"<IdleDeadline period={self._period:g}s {state}>"


class IdleGuard:
    """The ``async with`` block of :meth:`IdleDeadline.guard`."""

    __slots__ = ("_idle", "_scope")

    def __init__(self, idle: IdleDeadline) -> None:
        self._idle = idle
        self._scope: trio.CancelScope | None = None

    async def __aenter__(self) -> IdleDeadline:
        """Open the scope and arm the deadline. A checkpoint."""
        await trio.lowlevel.checkpoint()
        if self._scope is not None:
            raise RuntimeError("an idle guard can be entered only once; call guard() again")
        idle = self._idle
        if idle._scope is not None:
            raise RuntimeError("this IdleDeadline is already guarding a block")
        scope = self._scope = trio.CancelScope()
        scope.__enter__()
        idle._scope = scope
        idle._arm(current_wheel())
        return idle

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        idle = self._idle
        idle.close()
        idle._scope = None
        scope = self._scope
        assert scope is not None
        handled: bool = scope.__exit__(exc_type, exc, tb)
        if idle._expired and scope.cancelled_caught:
            raise Elapsed(
                f"no activity for {idle._period:g}s (idle deadline); touch() the deadline on "
                "every read and write, or allow a longer period"
            ) from None
        return handled
