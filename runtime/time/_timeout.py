"""timeout, timeout_at, move_on_after, move_on_at: cancel scopes that the wheel cancels.

A ``TimeoutScope`` is both the context manager and its own wheel entry, and its Trio cancel
scope has no deadline: Trio's deadline heap is never touched. Entering costs a wheel insert
(a few integer operations and a dict store); leaving costs a dict delete. Moving ``deadline``
later is a single store (the wheel re-buckets lazily).
"""

from __future__ import annotations

import math
from types import TracebackType

import trio

from ._driver import current_wheel
from ._error import Elapsed
from ._wheel import WheelCore, _Entry, cancel_entry

_CancelScope = trio.CancelScope
_INF = math.inf


class TimeoutScope(_Entry):
    """A block with a deadline, from :func:`timeout`, :func:`timeout_at`, :func:`move_on_after`
    or :func:`move_on_at`. Use it with ``with``; it is not reusable.

    When the wheel reaches the deadline it cancels the block (the body sees ``trio.Cancelled``
    at its next checkpoint). On leaving, a ``timeout`` block that was cut short raises
    :class:`~runtime.time.Elapsed`; a ``move_on`` block just ends, and :attr:`expired` says
    what happened.

    Cancellation: the block is a Trio cancel scope, nested like any other: cancelling an
    outer scope cancels the body too (and that is not an expiry, so no ``Elapsed``).
    """

    __slots__ = ("_deadline", "_expired", "_raise", "_relative", "_scope", "_seconds", "_wheel")

    def __init__(
        self, deadline: float, relative: float | None, raise_elapsed: bool, shield: bool
    ) -> None:
        if deadline != deadline or relative != relative:
            raise ValueError("a timeout must be a number of seconds or a deadline, got NaN")
        self._slot = None
        self._deadline = deadline
        self._relative = relative
        self._seconds = relative
        self._raise = raise_elapsed
        self._expired = False
        self._scope = _CancelScope(shield=True) if shield else _CancelScope()
        self._wheel: WheelCore | None = None

    def __enter__(self) -> TimeoutScope:
        wheel = self._wheel = current_wheel()
        relative = self._relative
        if relative is not None:
            self._relative = None
            deadline = self._deadline = wheel.now() + relative
        else:
            deadline = self._deadline
        self._scope.__enter__()
        if deadline != _INF:
            wheel.insert(self, deadline)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        if self._slot is not None:
            cancel_entry(self)
        self._wheel = None
        scope = self._scope
        handled: bool = scope.__exit__(exc_type, exc, tb)
        if self._expired and self._raise and scope.cancelled_caught:
            if self._seconds is not None:
                what = f"the block did not finish within {self._seconds:g}s"
            else:
                what = f"the block did not finish by its deadline ({self._deadline:.6g})"
            raise Elapsed(
                f"{what}; allow more time, or catch runtime.time.Elapsed (a TimeoutError) "
                "to handle the timeout"
            ) from None
        return handled

    def _fire(self, wheel: WheelCore) -> None:
        self._expired = True
        self._scope.cancel("deadline passed (runtime.time)")

    @property
    def deadline(self) -> float:
        """The absolute deadline on Trio's clock. Read and set it, even inside the block.

        Setting it later is O(1) and lazy; setting it earlier moves the timer; ``math.inf``
        removes it. A deadline that has already passed fires at the next tick. Once the
        block has expired, a new deadline changes nothing (the cancel has happened).

        Raises:
            RuntimeError: when read before entering a relative timeout (its deadline is set
                on entry).
            ValueError: when set to NaN.
        """
        if self._relative is not None:
            raise RuntimeError(
                "a relative timeout gets its deadline when the block is entered; read it "
                "inside the block"
            )
        return self._deadline

    @deadline.setter
    def deadline(self, value: float) -> None:
        if value != value:
            raise ValueError("deadline must be a number, got NaN")
        self._deadline = float(value)
        self._relative = self._seconds = None
        wheel = self._wheel
        if wheel is None or self._expired:
            return
        if value == math.inf:
            cancel_entry(self)
        else:
            wheel.reset(self, value)

    @property
    def expired(self) -> bool:
        """True once the wheel cancelled the block because its deadline passed."""
        return self._expired

    @property
    def cancelled_caught(self) -> bool:
        """True if the block ended because it was cancelled (by expiry or :meth:`cancel`)."""
        return self._scope.cancelled_caught

    @property
    def cancel_scope(self) -> trio.CancelScope:
        """The underlying Trio cancel scope (for ``shield`` and friends)."""
        return self._scope

    def cancel(self) -> None:
        """Cancel the block now. It ends without ``Elapsed``: that is not an expiry."""
        self._scope.cancel()

    def __repr__(self) -> str:
        kind = "timeout" if self._raise else "move_on"
        state = "expired" if self._expired else "pending" if self._slot is not None else "idle"
        return f"<TimeoutScope {kind} deadline={self._deadline:.6g} {state}>"


def timeout(seconds: float, *, shield: bool = False) -> TimeoutScope:
    """A block that must finish within ``seconds``, or raise :class:`~runtime.time.Elapsed`.

    For example::

        with runtime.time.timeout(5):
            response = await fetch()

    The clock starts when the block is entered. When it runs out, the wheel cancels the
    body; leaving the block then raises ``Elapsed`` (a ``TimeoutError``). A body that
    finishes first, even one tick late, is not interrupted. Zero or negative ``seconds``
    expire at the next tick.

    Args:
        seconds: The time allowed. ``math.inf`` means no limit.
        shield: Shield the body from outside cancellation, as ``trio.CancelScope(shield=)``.

    Raises:
        ValueError: if ``seconds`` is NaN.

    Cancellation: the body is cancelled at its next checkpoint after expiry; an outer cancel
    propagates as ``trio.Cancelled``, never as ``Elapsed``.
    """
    return TimeoutScope(math.inf, seconds, True, shield)


def timeout_at(deadline: float, *, shield: bool = False) -> TimeoutScope:
    """Like :func:`timeout`, with an absolute ``deadline`` on Trio's clock.

    Raises:
        ValueError: if ``deadline`` is NaN.
    """
    return TimeoutScope(deadline, None, True, shield)


def move_on_after(seconds: float, *, shield: bool = False) -> TimeoutScope:
    """Like :func:`timeout`, but expiry just ends the block (check ``.expired``).

    Raises:
        ValueError: if ``seconds`` is NaN.
    """
    return TimeoutScope(math.inf, seconds, False, shield)


def move_on_at(deadline: float, *, shield: bool = False) -> TimeoutScope:
    """Like :func:`move_on_after`, with an absolute ``deadline`` on Trio's clock.

    Raises:
        ValueError: if ``deadline`` is NaN.
    """
    return TimeoutScope(deadline, None, False, shield)
