"""watch: one latest value, and a way to wait until it changes.

A watch channel holds a single value and a version number. Sending replaces the value, bumps
the version and wakes everyone waiting in :meth:`Receiver.changed`. Each receiver remembers the
last version it has *seen*, so a change is never missed, but intermediate values may be
skipped: a watch carries state (a configuration, a set of endpoints, a health flag), not a
stream of events. Use broadcast or mpsc when every value matters.

Sending never waits and never fails because of receivers: the value is stored even when
nobody subscribes, and later subscribers read it.

Close semantics: when the sender is closed, receivers can still :meth:`~Receiver.borrow` the
last value; :meth:`~Receiver.changed` first reports a change they have not seen yet, then
raises ``EndOfChannel``. When every receiver is closed, :meth:`Sender.closed` returns.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any, Generic, TypeVar, final

import attrs
import trio

from ._endpoint import Closeable
from ._errors import EndOfChannel, closed_error
from ._lowlevel import (
    WOKEN,
    Abort,
    Task,
    checkpoint,
    current_task,
    enable_ki_protection,
    reschedule,
    try_consume_budget,
    wait_task_rescheduled,
)

__all__ = ["Receiver", "Sender", "WatchStatistics", "channel"]

T = TypeVar("T")


@attrs.frozen
class WatchStatistics:
    """A snapshot of a watch channel.

    Attributes:
        version: How many times the value was sent (0 for the initial value).
        sender_closed: Whether the sender was closed.
        receivers: Receivers not yet closed.
        receivers_waiting: Tasks parked in ``changed`` or ``wait_for``.
    """

    version: int
    sender_closed: bool
    receivers: int
    receivers_waiting: int


class _State(Generic[T]):
    __slots__ = ("closed_waiters", "receivers", "tx_closed", "value", "version", "waiters")

    def __init__(self, value: T) -> None:
        self.value = value
        self.version = 0
        self.tx_closed = False
        self.receivers = 0
        self.waiters: dict[Task, None] = {}
        self.closed_waiters: trio.lowlevel.ParkingLot | None = None

    def notify(self) -> None:
        self.version += 1
        self.wake_all()

    def wake_all(self) -> None:
        waiters = self.waiters
        if waiters:
            self.waiters = {}
            for task in waiters:
                reschedule(task, WOKEN)

    def abort_wait(self, task: Task, _: object) -> trio.lowlevel.Abort:
        del self.waiters[task]
        return Abort.SUCCEEDED

    async def park(self) -> None:
        task = current_task()
        self.waiters[task] = None
        await wait_task_rescheduled(partial(self.abort_wait, task))


@final
class Sender(Closeable, Generic[T]):
    """The sending half of a watch channel: it owns the value."""

    __slots__ = ("_closed", "_state")

    def __init__(self, state: _State[T]) -> None:
        self._state = state
        self._closed = False

    def _open_state(self) -> _State[T]:
        if self._closed:
            raise closed_error("watch sender")
        return self._state

    @enable_ki_protection
    def send(self, value: T) -> None:
        """Replace the value and wake every receiver waiting for a change. Never waits.

        Args:
            value: The new value. Receivers get this same object, so prefer immutable ones.

        Raises:
            trio.ClosedResourceError: The sender was closed.
        """
        state = self._open_state()
        state.value = value
        state.notify()

    @enable_ki_protection
    def send_replace(self, value: T) -> T:
        """Like :meth:`send`, and return the value it replaced.

        Raises:
            trio.ClosedResourceError: The sender was closed.
        """
        state = self._open_state()
        old = state.value
        state.value = value
        state.notify()
        return old

    @enable_ki_protection
    def send_modify(self, modify: Callable[[T], None]) -> None:
        """Change the value in place, then notify receivers.

        Args:
            modify: Called with the current value; mutates it.

        Raises:
            trio.ClosedResourceError: The sender was closed.
            Exception: Whatever ``modify`` raises; receivers are then not notified (a partial
                change made before the error stays, so keep ``modify`` all-or-nothing).
        """
        state = self._open_state()
        modify(state.value)
        state.notify()

    @enable_ki_protection
    def send_if_modified(self, modify: Callable[[T], bool]) -> bool:
        """Change the value in place, and notify receivers only if ``modify`` says it did.

        Args:
            modify: Called with the current value; returns True if it changed it.

        Returns:
            What ``modify`` returned.

        Raises:
            trio.ClosedResourceError: The sender was closed.
        """
        state = self._open_state()
        modified = modify(state.value)
        if modified:
            state.notify()
        return modified

    def borrow(self) -> T:
        """The current value."""
        return self._state.value

    def subscribe(self) -> Receiver[T]:
        """A new receiver. It has seen the current value: its ``changed()`` waits for the
        next send."""
        return Receiver(self._state)

    def receiver_count(self) -> int:
        """Receivers not yet closed."""
        return self._state.receivers

    @enable_ki_protection
    def close(self) -> None:
        """Close the sender. Idempotent. Receivers keep the last value; their ``changed()``
        raises ``EndOfChannel`` once they have seen it."""
        if self._closed:
            return
        self._closed = True
        state = self._state
        state.tx_closed = True
        state.wake_all()

    def is_closed(self) -> bool:
        """Whether the sender was closed."""
        return self._closed

    def _open_when_dropped(self) -> bool:
        return not self._closed

    async def closed(self) -> None:
        """Wait until every receiver is closed (returns at once if none is open).

        Cancellation: safe; nothing changes.
        """
        state = self._state
        if state.receivers == 0:
            if not try_consume_budget():
                await checkpoint()
            return
        if state.closed_waiters is None:
            state.closed_waiters = trio.lowlevel.ParkingLot()
        await state.closed_waiters.park()

    def statistics(self) -> WatchStatistics:
        """A snapshot of the channel."""
        return _statistics(self._state)

    def __repr__(self) -> str:
        state = self._state
        status = "closed" if self._closed else "open"
        return f"<watch.Sender {status} version={state.version} receivers={state.receivers}>"


@final
class Receiver(Closeable, Generic[T]):
    """A view of a watch channel that remembers which version it has seen.

    ``async for value in rx:`` yields the value after each change it sees, and ends when the
    sender is closed.
    """

    __slots__ = ("_closed", "_seen", "_state")

    def __init__(self, state: _State[T], seen: int | None = None) -> None:
        self._state = state
        self._seen = state.version if seen is None else seen
        self._closed = False
        state.receivers += 1

    def borrow(self) -> T:
        """The current value. Does not mark it seen (see :meth:`borrow_and_update`)."""
        return self._state.value

    def borrow_and_update(self) -> T:
        """The current value, marking it seen."""
        state = self._state
        self._seen = state.version
        return state.value

    def has_changed(self) -> bool:
        """Whether a value was sent that this receiver has not seen."""
        return self._state.version != self._seen

    @enable_ki_protection
    async def changed(self) -> T:
        """Wait for a value this receiver has not seen, mark it seen and return it.

        Returns at once if such a value is already there.

        Returns:
            The current value (later values may have replaced the ones in between).

        Raises:
            trio.EndOfChannel: The sender is closed and this receiver saw its last value.
            trio.ClosedResourceError: This receiver was closed.

        Cancellation: a cancelled call marks nothing seen.
        """
        state = self._state
        if state.version != self._seen and not self._closed and try_consume_budget():
            self._seen = state.version
            return state.value
        if state.version != self._seen or self._closed or state.tx_closed:
            await checkpoint()
        else:
            await state.park()
        while True:
            if self._closed:
                raise closed_error("watch receiver")
            if state.version != self._seen:
                self._seen = state.version
                return state.value
            if state.tx_closed:
                raise EndOfChannel("the watch sender was closed and its last value was seen")
            await state.park()

    async def wait_for(self, predicate: Callable[[T], bool]) -> T:
        """Wait until the value satisfies ``predicate``, checking the current value first.

        Args:
            predicate: Called with each value this receiver sees; return True to stop.

        Returns:
            The first value for which ``predicate`` returned True (it is marked seen).

        Raises:
            trio.EndOfChannel: The sender was closed before such a value came.
            trio.ClosedResourceError: This receiver was closed.

        Cancellation: a cancelled call may have marked values seen that it rejected.
        """
        if not try_consume_budget():
            await checkpoint()
        if self._closed:
            raise closed_error("watch receiver")
        value = self.borrow_and_update()
        if predicate(value):
            return value
        while not predicate(value := await self.changed()):
            pass
        return value

    def clone(self) -> Receiver[T]:
        """Another receiver that has seen what this one has seen."""
        return Receiver(self._state, self._seen)

    @enable_ki_protection
    def close(self) -> None:
        """Close this receiver. Idempotent. Tasks waiting on it get
        ``trio.ClosedResourceError``; when it was the last one, ``Sender.closed()`` returns."""
        if self._closed:
            return
        self._closed = True
        state = self._state
        state.receivers -= 1
        state.wake_all()
        if state.receivers == 0 and state.closed_waiters is not None:
            state.closed_waiters.unpark_all()

    def is_closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    def _open_when_dropped(self) -> bool:
        return not self._closed

    def __aiter__(self) -> Receiver[T]:
        return self

    async def __anext__(self) -> T:
        try:
            return await self.changed()
        except trio.EndOfChannel:
            raise StopAsyncIteration from None

    def __repr__(self) -> str:
        status = "closed" if self._closed else "open"
        return f"<watch.Receiver {status} seen={self._seen} version={self._state.version}>"


def _statistics(state: _State[Any]) -> WatchStatistics:
    return WatchStatistics(
        version=state.version,
        sender_closed=state.tx_closed,
        receivers=state.receivers,
        receivers_waiting=len(state.waiters),
    )


@final
class channel(tuple[Sender[T], Receiver[T]]):  # lowercase: reads as a function
    """Open a watch channel holding ``initial`` and return ``(sender, receiver)``.

    ``tx, rx = watch.channel[Config](Config())``. The receiver starts having seen ``initial``.

    Args:
        initial: The value before the first send.
    """

    def __new__(cls, initial: T) -> tuple[Sender[T], Receiver[T]]:  # type: ignore[misc]
        state: _State[T] = _State(initial)
        return Sender(state), Receiver(state)

    def __init__(self, initial: T) -> None:  # pragma: no cover - never called
        ...
