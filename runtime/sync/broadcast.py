"""broadcast: every subscriber sees every value, in order; the sender never waits.

How it works. Values go into a ring of ``capacity`` slots, numbered by a running sequence
number (``tail`` is the number the next value gets). Each subscriber keeps its own cursor, the
number of the next value it will read. Reading is an index into the ring; sending overwrites
the oldest slot and wakes the subscribers parked for a new value. Nothing is copied per
subscriber, so a send costs the same for 1 subscriber or 1,000.

A subscriber more than ``capacity`` values behind has lost the overwritten ones: its next
receive raises :class:`~runtime.sync.Lagged` with the number missed, and moves its cursor to the
oldest value still in the ring, where the receive after that continues. The sender is never
slowed down by a slow subscriber; choose the capacity for the longest stall you want to absorb.

Values stay referenced by the ring until they are overwritten, even once every subscriber has
read them.

Close semantics: when every sender handle is closed, subscribers receive what is left and then
get ``EndOfChannel``. A closed subscriber (``Receiver.close()``) stops counting as one; using it
afterwards raises ``trio.ClosedResourceError``.
"""

from __future__ import annotations

from functools import partial
from typing import Any, Generic, TypeVar, final

import attrs
import trio

from ._endpoint import Closeable
from ._errors import EndOfChannel, Lagged, WouldBlock, closed_error
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
from ._named import remember

__all__ = ["BroadcastStatistics", "Receiver", "Sender", "channel"]

T = TypeVar("T")


@attrs.frozen
class BroadcastStatistics:
    """A snapshot of a broadcast channel.

    Attributes:
        capacity: Values retained for slow subscribers.
        sent: Values sent so far.
        open_senders: Sender handles not yet closed.
        subscribers: Receivers not yet closed.
        receivers_waiting: Tasks parked waiting for the next value.
    """

    capacity: int
    sent: int
    open_senders: int
    subscribers: int
    receivers_waiting: int


class _State(Generic[T]):
    __slots__ = ("__weakref__", "capacity", "ring", "senders", "subscribers", "tail", "waiters")

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.ring: list[Any] = [None] * capacity
        self.tail = 0
        self.senders = 1
        self.subscribers = 0
        self.waiters: dict[Task, None] = {}

    def publish(self, value: T) -> int:
        tail = self.tail
        self.ring[tail % self.capacity] = value
        self.tail = tail + 1
        if self.waiters:
            self.wake_all()
        return self.subscribers

    def wake_all(self) -> None:
        waiters = self.waiters
        self.waiters = {}
        for task in waiters:
            reschedule(task, WOKEN)

    def abort_wait(self, task: Task, _: object) -> trio.lowlevel.Abort:
        del self.waiters[task]
        return Abort.SUCCEEDED


@final
class Sender(Closeable, Generic[T]):
    """The sending half of a broadcast channel. Clone it for more producers."""

    __slots__ = ("__weakref__", "_closed", "_state")

    def __init__(self, state: _State[T]) -> None:
        self._state = state
        self._closed = False

    @enable_ki_protection
    async def send(self, value: T) -> int:
        """Send a value to every current subscriber. Never waits for subscribers.

        A cancellation point; it yields only once per cooperative budget, so a producer in a
        loop still lets its subscribers run.

        Args:
            value: The value. Every subscriber gets the same object, so prefer immutable ones.

        Returns:
            How many subscribers will see it (0 means nobody listened; the value is retained
            for capacity's sake but no current subscriber is waiting for it).

        Raises:
            trio.ClosedResourceError: This handle was closed.

        Cancellation: a cancelled send did not send.
        """
        if self._closed or not try_consume_budget():
            await checkpoint()
            if self._closed:
                raise closed_error("broadcast sender")
        return self._state.publish(value)

    @enable_ki_protection
    def send_nowait(self, value: T) -> int:
        """Send a value from synchronous code. Same as :meth:`send`, without the budget.

        Args:
            value: The value.

        Returns:
            How many subscribers will see it.

        Raises:
            trio.ClosedResourceError: This handle was closed.
        """
        if self._closed:
            raise closed_error("broadcast sender")
        return self._state.publish(value)

    def subscribe(self) -> Receiver[T]:
        """A new subscriber that sees every value sent from now on.

        Raises:
            trio.ClosedResourceError: This handle was closed.
        """
        if self._closed:
            raise closed_error("broadcast sender")
        return Receiver(self._state)

    def clone(self) -> Sender[T]:
        """Another handle on the same channel, closed independently.

        Raises:
            trio.ClosedResourceError: This handle was closed.
        """
        if self._closed:
            raise closed_error("broadcast sender")
        self._state.senders += 1
        return Sender(self._state)

    @enable_ki_protection
    def close(self) -> None:
        """Close this handle. Idempotent. Once every handle is closed, subscribers receive
        what is left and then ``EndOfChannel``."""
        if self._closed:
            return
        self._closed = True
        state = self._state
        state.senders -= 1
        if state.senders == 0:
            state.wake_all()

    def is_closed(self) -> bool:
        """Whether this handle was closed."""
        return self._closed

    def _open_when_dropped(self) -> bool:
        return not self._closed

    def subscriber_count(self) -> int:
        """Subscribers not yet closed."""
        return self._state.subscribers

    def statistics(self) -> BroadcastStatistics:
        """A snapshot of the channel."""
        return _statistics(self._state)

    def __repr__(self) -> str:
        state = self._state
        return (
            f"<broadcast.Sender {'closed' if self._closed else 'open'} "
            f"capacity={state.capacity} subscribers={state.subscribers}>"
        )


@final
class Receiver(Closeable, Generic[T]):
    """One subscriber of a broadcast channel, with its own position in the stream.

    Iterate it with ``async for value in rx:``. The loop ends when every sender is closed and
    this subscriber has read everything; :class:`~runtime.sync.Lagged` propagates out of the
    loop (catch it inside a ``while`` loop around ``recv`` to skip the gap and go on).
    """

    __slots__ = ("__weakref__", "_closed", "_next", "_state")

    def __init__(self, state: _State[T]) -> None:
        self._state = state
        self._next = state.tail
        self._closed = False
        state.subscribers += 1

    @enable_ki_protection
    async def recv(self) -> T:
        """Receive the next value, waiting for one if this subscriber has read everything.

        Returns:
            The next value in order.

        Raises:
            Lagged: This subscriber fell more than ``capacity`` values behind; ``missed``
                says how many it lost. The next receive returns the oldest retained value.
            trio.EndOfChannel: Every sender is closed and this subscriber read everything.
            trio.ClosedResourceError: This receiver was closed.

        Cancellation: a cancelled recv took nothing; the position is unchanged.
        """
        state = self._state
        position = self._next
        if not self._closed and position < state.tail and try_consume_budget():
            head = state.tail - state.capacity
            if position >= head:
                self._next = position + 1
                return state.ring[position % state.capacity]  # type: ignore[no-any-return]
            self._next = head
            raise Lagged(head - position)
        if self._closed or position < state.tail or not state.senders:
            await checkpoint()  # budget spent, cancelled, or about to raise
        else:
            await self._park()
        while True:
            try:
                return self.try_recv()
            except WouldBlock:
                await self._park()

    async def _park(self) -> None:
        state = self._state
        task = current_task()
        state.waiters[task] = None
        await wait_task_rescheduled(partial(state.abort_wait, task))

    @enable_ki_protection
    def try_recv(self) -> T:
        """Receive the next value if there is one now.

        Returns:
            The next value in order.

        Raises:
            Lagged: As for :meth:`recv`.
            trio.WouldBlock: This subscriber read everything and a sender is still open.
            trio.EndOfChannel: Every sender is closed and this subscriber read everything.
            trio.ClosedResourceError: This receiver was closed.
        """
        if self._closed:
            raise closed_error("broadcast receiver")
        state = self._state
        position = self._next
        tail = state.tail
        if position < tail:
            head = tail - state.capacity
            if position < head:
                self._next = head
                raise Lagged(head - position)
            self._next = position + 1
            return state.ring[position % state.capacity]  # type: ignore[no-any-return]
        if state.senders == 0:
            raise EndOfChannel("every broadcast sender is closed and this subscriber read all")
        raise WouldBlock

    def subscribe(self) -> Receiver[T]:
        """A new, independent subscriber that sees every value sent from now on."""
        return Receiver(self._state)

    def pending(self) -> int:
        """Values sent that this subscriber has not read. More than ``capacity`` means it has
        lagged, and the excess will be reported by :class:`~runtime.sync.Lagged`."""
        return self._state.tail - self._next

    @enable_ki_protection
    def close(self) -> None:
        """Unsubscribe. Idempotent. Tasks waiting on this receiver get
        ``trio.ClosedResourceError``."""
        if self._closed:
            return
        self._closed = True
        state = self._state
        state.subscribers -= 1
        if state.waiters:
            state.wake_all()

    def is_closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    def _open_when_dropped(self) -> bool:
        return not self._closed

    def __aiter__(self) -> Receiver[T]:
        return self

    async def __anext__(self) -> T:
        try:
            return await self.recv()
        except trio.EndOfChannel:
            raise StopAsyncIteration from None

    def __repr__(self) -> str:
        status = "closed" if self._closed else "open"
        return f"<broadcast.Receiver {status} pending={self.pending()}>"


def _statistics(state: _State[Any]) -> BroadcastStatistics:
    return BroadcastStatistics(
        capacity=state.capacity,
        sent=state.tail,
        open_senders=state.senders,
        subscribers=state.subscribers,
        receivers_waiting=len(state.waiters),
    )


@final
class channel(tuple[Sender[T], Receiver[T]]):  # lowercase: reads as a function
    """Open a broadcast channel and return ``(sender, first_subscriber)``.

    ``tx, rx = broadcast.channel[str](64)``. More subscribers come from ``tx.subscribe()``
    or ``rx.subscribe()``; each sees the values sent after it subscribed.

    Args:
        capacity: Values retained for subscribers that fall behind, at least 1. A subscriber
            further behind than this loses values (:class:`~runtime.sync.Lagged`). If in doubt,
            use the burst size you expect, such as 64: memory is one slot per value, shared by
            all subscribers.
        name: Give the channel a name and the metrics report it; unnamed channels are not
            tracked.

    Raises:
        ValueError: ``name`` is empty.
        ValueError: ``capacity`` is below 1.
        TypeError: ``capacity`` is not an int.
    """

    def __new__(  # type: ignore[misc]  # returns the pair, not an instance
        cls, capacity: int, *, name: str | None = None
    ) -> tuple[Sender[T], Receiver[T]]:
        if not isinstance(capacity, int) or isinstance(capacity, bool):
            raise TypeError(f"capacity must be an int, got {capacity!r}")
        if capacity < 1:
            raise ValueError(
                f"a broadcast channel needs capacity >= 1 to hold a value, got {capacity}"
            )
        state: _State[T] = _State(capacity)
        if name is not None:
            remember(state, "broadcast", name, _statistics)
        return Sender(state), Receiver(state)

    def __init__(  # pragma: no cover - never called
        self, capacity: int, *, name: str | None = None
    ) -> None: ...
