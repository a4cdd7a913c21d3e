"""mpsc: a multi-producer, single-consumer channel with a bounded buffer and permits.

How it works. One ``_State`` holds everything: the buffer (a deque), how many slots are promised
to permits (``reserved``), the one parked receiver (``recv_task``) and the parked senders in
arrival order (``send_waiters``, task -> (sender handle, value or _RESERVE)). Invariants:

* a parked receiver means the buffer is empty;
* parked senders mean there is no room (``len(buffer) + reserved >= capacity``), so each slot
  that frees up admits exactly the first parked sender: its value moves into the buffer (or a
  permit is granted) and it is rescheduled. FIFO order needs nothing more;
* with capacity 0 (a rendezvous) the buffer stays empty and the receiver takes the value
  straight from the first parked sender, or a sender hands it to the parked receiver.

Every path goes through the same two transitions of ``_State``: ``try_put`` (deliver a value
now, to the parked receiver or into the buffer, or say it must wait) and ``try_take`` (the next
value now: from the buffer, admitting the first parked sender, or at capacity 0 from the first
parked sender). ``send``, ``try_send``, ``recv``, ``try_recv``, ``recv_many`` and ``async for``
differ only in what they do when those say no: park, raise ``WouldBlock``, or end.

A send that finds room, or a receiver waiting, completes at once and spends one unit of the
cooperative budget instead of yielding (``runtime.rt._coop``); only a send that must wait parks.
Because a parked operation is finished by the other side *before* it is rescheduled, and a
cancelled one is removed from the queue by its abort callback, a cancelled ``send`` never sent
and a cancelled ``recv`` never took anything.

Close semantics (and dropping is not closing: an endpoint or permit garbage-collected while
open gets a ``ResourceWarning`` and is closed late, from the run; see ``_endpoint``):

* ``Sender.close()`` closes that handle (and fails its own parked sends with ``Closed``). When
  every sender handle and every permit is gone, the receiver drains the buffer and then gets
  ``EndOfChannel``.
* ``Receiver.close()`` stops the intake: parked and later sends fail at once with
  ``trio.BrokenResourceError`` (nothing was sent), ``Sender.closed()`` returns, and the receiver
  can still drain what was already accepted, then gets ``EndOfChannel``. An accepted value is
  never dropped by a close.
"""

from __future__ import annotations

import sys
from collections import OrderedDict, deque
from collections.abc import Generator
from functools import partial
from math import inf
from types import TracebackType
from typing import Any, Generic, TypeVar, final

import attrs
import trio

from ._endpoint import Closeable, close_dropped
from ._errors import EndOfChannel, WouldBlock, broken_error, closed_error
from ._lowlevel import (
    NO_VALUE,
    WOKEN,
    Abort,
    Error,
    Handoff,
    Task,
    checkpoint,
    current_task,
    enable_ki_protection,
    reschedule,
    try_consume_budget,
    wait_task_rescheduled,
)
from ._named import remember

__all__ = [
    "ChannelStatistics",
    "Permit",
    "Receiver",
    "Sender",
    "channel",
    "unbounded_channel",
]

T = TypeVar("T")

_UNBOUNDED = sys.maxsize
_RESERVE: Any = object()  # a parked reserve(): it wants a slot, not to deliver a value


@attrs.frozen
class ChannelStatistics:
    """A snapshot of an mpsc channel.

    Attributes:
        capacity: Buffer slots; ``math.inf`` for an unbounded channel, 0 for a rendezvous.
        buffered: Values in the buffer now.
        peak_buffered: The most values the buffer has held at once (peak depth).
        reserved: Slots held by outstanding permits.
        open_senders: Sender handles not yet closed.
        receiver_closed: Whether the receiver was closed.
        senders_waiting: Tasks parked in ``send`` or ``reserve``.
        receiver_waiting: Whether a task is parked in ``recv``.
    """

    capacity: float
    buffered: int
    peak_buffered: int
    reserved: int
    open_senders: int
    receiver_closed: bool
    senders_waiting: int
    receiver_waiting: bool


class _State(Generic[T]):
    __slots__ = (
        "__weakref__",
        "abort_recv",
        "buffer",
        "capacity",
        "closed_waiters",
        "peak",
        "recv_task",
        "reserved",
        "rx_closed",
        "send_waiters",
        "senders",
    )

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.buffer: deque[T] = deque()
        self.reserved = 0
        self.peak = 0
        self.senders = 1
        self.rx_closed = False
        self.recv_task: Task | None = None
        self.send_waiters: OrderedDict[Task, tuple[Sender[T], T]] = OrderedDict()
        self.closed_waiters: trio.lowlevel.ParkingLot | None = None
        self.abort_recv = self._abort_recv

    def _abort_recv(self, _: object) -> trio.lowlevel.Abort:
        self.recv_task = None
        return Abort.SUCCEEDED

    def abort_send(self, task: Task, _: object) -> trio.lowlevel.Abort:
        del self.send_waiters[task]
        return Abort.SUCCEEDED

    def has_room(self) -> bool:
        """Whether a slot is free for a permit: room in the buffer and nobody queued first."""
        return len(self.buffer) + self.reserved < self.capacity and not self.send_waiters

    def try_put(self, value: T) -> bool:
        """Deliver ``value`` now if it can be: to the parked receiver, else into the buffer.

        Never past parked senders (with permits holding every slot, a receiver and senders
        can both be waiting). The caller checks that the channel is open.

        Returns:
            False, having changed nothing, when the value has to wait.
        """
        if self.send_waiters or (
            self.recv_task is None and len(self.buffer) + self.reserved >= self.capacity
        ):
            return False
        self.deliver(value)
        return True

    def deliver(self, value: T) -> bool:
        """Hand an accepted value to the parked receiver (returns True), else buffer it."""
        task = self.recv_task
        if task is not None:
            self.recv_task = None
            reschedule(task, Handoff(value))
            return True
        buffer = self.buffer
        buffer.append(value)
        if len(buffer) > self.peak:
            self.peak = len(buffer)
        return False

    def try_take(self) -> T:
        """Take the next value if there is one now, else return ``NO_VALUE``.

        From the buffer (admitting the first parked sender into the slot that frees), or, at
        capacity 0, straight from the first parked sender. With a buffer, parked senders (all
        slots taken) have nothing for the receiver yet.
        """
        buffer = self.buffer
        if buffer:
            value = buffer.popleft()
            if self.send_waiters:
                self.slot_freed()
            return value
        if self.send_waiters and not self.capacity:
            task, (_sender, value) = self.send_waiters.popitem(last=False)
            reschedule(task, WOKEN)
            return value
        return NO_VALUE  # type: ignore[no-any-return]

    def slot_freed(self) -> None:
        """A slot became free: admit parked senders in order, or maybe end the channel.

        A value handed straight to a waiting receiver leaves the slot free, so admission goes
        on until a value lands in the buffer or a permit takes the slot.
        """
        waiters = self.send_waiters
        while waiters:
            task, (_sender, value) = waiters.popitem(last=False)
            reschedule(task, WOKEN)
            if value is _RESERVE:
                self.reserved += 1
                return
            if not self.deliver(value):
                return  # it went into the buffer: the slot is taken again
        self.maybe_end()

    def ended(self) -> bool:
        return self.rx_closed or (self.senders == 0 and self.reserved == 0)

    def maybe_end(self) -> None:
        task = self.recv_task
        if task is not None and self.ended():
            self.recv_task = None
            reschedule(task, Error(_end_of_channel(self)))


def _end_of_channel(state: _State[Any]) -> trio.EndOfChannel:
    if state.rx_closed:
        return EndOfChannel("the receiver was closed and everything buffered has been received")
    return EndOfChannel("every sender is closed and everything buffered has been received")


@final
class Sender(Closeable, Generic[T]):
    """The sending half of an mpsc channel. Clone it to give each producer its own handle.

    Use it as a context manager (``with tx:``) or call :meth:`close` when a producer is done:
    the receiver ends only when every clone is closed. **Dropping a handle is not closing
    it**: one garbage-collected while open emits a ``ResourceWarning`` and is closed late, from
    the Trio run, and only if it is collected on the run's thread (see ``runtime.sync``'s
    reference: "Close your endpoints").
    """

    __slots__ = ("__weakref__", "_closed", "_state")

    def __init__(self, state: _State[T]) -> None:
        self._state = state
        self._closed = False

    @enable_ki_protection
    async def send(self, value: T) -> None:
        """Send a value, waiting for room in the buffer (or, at capacity 0, for the receiver).

        A send that can complete at once does so without a schedule point (it spends one unit
        of the cooperative budget). Senders that wait are served first come, first served.

        Args:
            value: The value to send.

        Raises:
            trio.ClosedResourceError: This handle was closed (before or during the wait).
            trio.BrokenResourceError: The receiver is closed; the value was not sent.

        Cancellation: a cancelled send did not send; the value was not delivered and the
        channel is unchanged.
        """
        state = self._state
        if not (self._closed or state.rx_closed) and try_consume_budget():
            if not state.try_put(value):
                await _park_sender(state, self, value)  # parking ends the turn anyway
            return
        await self._send_slow(value)

    async def _send_slow(self, value: T) -> None:
        # The budget is spent or the task is cancelled, or the send is about to raise: take a
        # full checkpoint first, then look again.
        await checkpoint()
        state = self._check_open()
        if not state.try_put(value):
            await _park_sender(state, self, value)

    @enable_ki_protection
    def try_send(self, value: T) -> None:
        """Send a value if that can be done without waiting.

        Args:
            value: The value to send.

        Raises:
            trio.WouldBlock: The buffer is full (or, at capacity 0, no receiver is waiting).
            trio.ClosedResourceError: This handle was closed.
            trio.BrokenResourceError: The receiver is closed.
        """
        if not self._check_open().try_put(value):
            raise WouldBlock

    def reserve(self) -> _Reserve[T]:
        """Wait for a free slot and hold it as a :class:`Permit`.

        Use ``async with tx.reserve() as permit: permit.send(value)``; the slot is given back
        on any exit from the block that did not send. ``permit = await tx.reserve()`` works
        too (then call ``permit.send`` or ``permit.release``). A slot is a promise that the
        value can be sent without waiting, which lets you take the value from somewhere else
        only once you know it will be accepted. Needs a capacity of at least 1.

        Returns:
            An awaitable that is also an async context manager, giving a Permit.

        Raises:
            ValueError: The channel has capacity 0 (a rendezvous has no slot to hold).
            trio.ClosedResourceError: This handle was closed.
            trio.BrokenResourceError: The receiver is closed.

        Cancellation: a cancelled reserve holds nothing.
        """
        if self._state.capacity == 0:
            raise ValueError(
                "reserve() needs a buffer slot, and a capacity-0 channel has none; "
                "use send(), or a channel with capacity >= 1"
            )
        return _Reserve(self)

    @enable_ki_protection
    async def _reserve(self) -> Permit[T]:
        state = self._state
        if self._closed or state.rx_closed or (state.has_room() and not try_consume_budget()):
            await checkpoint()
            state = self._check_open()
        if state.has_room():
            state.reserved += 1
        else:
            await _park_sender(state, self, _RESERVE)
        return Permit(state)

    @enable_ki_protection
    def try_reserve(self) -> Permit[T]:
        """Hold a free slot if there is one now.

        Returns:
            A Permit for one value.

        Raises:
            ValueError: The channel has capacity 0.
            trio.WouldBlock: No slot is free.
            trio.ClosedResourceError: This handle was closed.
            trio.BrokenResourceError: The receiver is closed.
        """
        if self._state.capacity == 0:
            raise ValueError("try_reserve() needs a channel with capacity >= 1")
        state = self._check_open()
        if not state.has_room():
            raise WouldBlock
        state.reserved += 1
        return Permit(state)

    def _check_open(self) -> _State[T]:
        if self._closed:
            raise closed_error("sender")
        state = self._state
        if state.rx_closed:
            raise broken_error("channel")
        return state

    def clone(self) -> Sender[T]:
        """Another handle on the same channel, closed independently of this one.

        Raises:
            trio.ClosedResourceError: This handle was closed.
        """
        if self._closed:
            raise closed_error("sender")
        self._state.senders += 1
        return Sender(self._state)

    @enable_ki_protection
    def close(self) -> None:
        """Close this handle. Idempotent.

        Tasks parked in ``send`` on this handle fail with ``trio.ClosedResourceError`` (their
        values were not sent). When this was the last open handle and no permit is left, the
        receiver gets ``EndOfChannel`` once the buffer is drained.
        """
        if self._closed:
            return
        self._closed = True
        state = self._state
        waiters = state.send_waiters
        for task in [t for t, (sender, _) in waiters.items() if sender is self]:
            del waiters[task]
            reschedule(task, Error(closed_error("sender")))
        state.senders -= 1
        state.maybe_end()

    def is_closed(self) -> bool:
        """Whether this handle was closed."""
        return self._closed

    def _open_when_dropped(self) -> bool:
        return not self._closed

    def receiver_closed(self) -> bool:
        """Whether the receiver is closed, so every send would fail."""
        return self._state.rx_closed

    async def closed(self) -> None:
        """Wait until the receiver is closed (returns at once if it already is).

        Useful to stop producing when nobody listens any more.

        Cancellation: safe; nothing changes.
        """
        state = self._state
        if state.rx_closed:
            await _budget_checkpoint()
            return
        if state.closed_waiters is None:
            state.closed_waiters = trio.lowlevel.ParkingLot()
        await state.closed_waiters.park()

    def statistics(self) -> ChannelStatistics:
        """A snapshot of the channel."""
        return _statistics(self._state)

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<mpsc.Sender {state} {_describe(self._state)}>"


@final
class _Reserve(Generic[T]):
    """What ``Sender.reserve()`` returns: await it for a Permit, or use it with async with."""

    __slots__ = ("_permit", "_sender")

    def __init__(self, sender: Sender[T]) -> None:
        self._sender = sender
        self._permit: Permit[T] | None = None

    def __await__(self) -> Generator[Any, None, Permit[T]]:
        return self._sender._reserve().__await__()

    async def __aenter__(self) -> Permit[T]:
        self._permit = await self._sender._reserve()
        return self._permit

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._permit is not None:
            self._permit.release()


@final
class Permit(Generic[T]):
    """One reserved slot in an mpsc channel: :meth:`send` is then guaranteed not to wait.

    A permit is used once: :meth:`send` consumes it, :meth:`release` gives it back unused.
    As a context manager it is released on exit if it was not used. An outstanding permit
    keeps the channel open, like a sender, and holds its slot: release it. One
    garbage-collected while held emits a ``ResourceWarning`` and is released late, from the
    Trio run (as for :class:`Sender`).
    """

    __slots__ = ("_state",)

    def __init__(self, state: _State[T]) -> None:
        self._state: _State[T] | None = state

    @enable_ki_protection
    def send(self, value: T) -> None:
        """Send into the reserved slot, without waiting. Consumes the permit.

        Args:
            value: The value to send.

        Raises:
            trio.ClosedResourceError: The permit was already used or released.
            trio.BrokenResourceError: The receiver was closed since the slot was reserved;
                the value was not sent (the slot is given back).
        """
        state = self._take()
        state.reserved -= 1
        if state.rx_closed:
            state.slot_freed()
            raise broken_error("channel")
        if state.deliver(value):
            state.slot_freed()  # the value skipped the buffer, so the slot is free again

    @enable_ki_protection
    def release(self) -> None:
        """Give the slot back without sending. Idempotent."""
        state = self._state
        if state is None:
            return
        self._state = None
        state.reserved -= 1
        state.slot_freed()

    def _take(self) -> _State[T]:
        state = self._state
        if state is None:
            raise trio.ClosedResourceError(
                "this permit was already used or released; reserve() another for each value"
            )
        self._state = None
        return state

    def __enter__(self) -> Permit[T]:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object
    ) -> None:
        self.release()

    def __repr__(self) -> str:
        return f"<mpsc.Permit {'used' if self._state is None else 'held'}>"

    def __del__(self) -> None:
        if self._state is not None:
            close_dropped(self, self.release)


@final
class Receiver(Closeable, Generic[T]):
    """The receiving half of an mpsc channel. One task receives at a time.

    Iterate it with ``async for value in rx:``; the loop ends when every sender is closed and
    the buffer is drained. Close it when you stop reading early, so senders fail at once
    instead of waiting for room; one garbage-collected while senders remain emits a
    ``ResourceWarning`` and is closed late, from the Trio run (as for :class:`Sender`).
    """

    __slots__ = ("__weakref__", "_state")

    def __init__(self, state: _State[T]) -> None:
        self._state = state

    @enable_ki_protection
    async def recv(self) -> T:
        """Receive the next value, waiting for one if the channel is empty.

        A receive that finds a value completes without a schedule point (it spends one unit
        of the cooperative budget).

        Returns:
            The oldest value in the channel.

        Raises:
            trio.EndOfChannel: Every sender (and permit) is gone, or this receiver was closed,
                and the buffer is drained.
            trio.BusyResourceError: Another task is already waiting in ``recv`` on this
                channel (it has a single consumer).

        Cancellation: a cancelled recv took nothing; the value stays first in line.
        """
        state = self._state
        if try_consume_budget():
            value = state.try_take()
            if value is not NO_VALUE:
                return value
            if not state.ended():
                return await _park_receiver(state)
        return await _recv_slow(state)

    @enable_ki_protection
    def try_recv(self) -> T:
        """Receive a value if one is ready now.

        Returns:
            The oldest value in the channel.

        Raises:
            trio.WouldBlock: Nothing is ready, but the channel has not ended.
            trio.EndOfChannel: The channel ended and the buffer is drained.
        """
        state = self._state
        value = state.try_take()
        if value is not NO_VALUE:
            return value
        if state.ended():
            raise _end_of_channel(state)
        raise WouldBlock

    async def recv_many(self, limit: int) -> list[T]:
        """Wait for at least one value, then take every value ready now, up to ``limit``.

        Spends one unit of budget for the whole batch, which makes draining a busy channel
        cheap.

        Args:
            limit: The most values to return, at least 1.

        Returns:
            Between 1 and ``limit`` values, oldest first.

        Raises:
            ValueError: ``limit`` is below 1.
            trio.EndOfChannel: As for :meth:`recv`.
            trio.BusyResourceError: As for :meth:`recv`.

        Cancellation: a cancelled call took nothing.
        """
        if limit < 1:
            raise ValueError(f"recv_many() limit must be >= 1, got {limit}")
        values = [await self.recv()]
        state = self._state
        while len(values) < limit:
            value = state.try_take()
            if value is NO_VALUE:
                break
            values.append(value)
        return values

    @enable_ki_protection
    def close(self) -> None:
        """Stop accepting values. Idempotent.

        Parked and future sends fail with ``trio.BrokenResourceError`` (they did not send),
        outstanding permits can no longer send, and ``Sender.closed()`` returns. What was
        already accepted stays receivable: ``recv`` drains the buffer, then raises
        ``EndOfChannel``.
        """
        state = self._state
        if state.rx_closed:
            return
        state.rx_closed = True
        waiters = state.send_waiters
        while waiters:
            task, _ = waiters.popitem(last=False)
            reschedule(task, Error(broken_error("channel")))
        state.maybe_end()
        if state.closed_waiters is not None:
            state.closed_waiters.unpark_all()

    def is_closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._state.rx_closed

    def _open_when_dropped(self) -> bool:
        return not self._state.ended()  # senders remain, and would wait or send in vain

    def statistics(self) -> ChannelStatistics:
        """A snapshot of the channel, including the peak buffer depth."""
        return _statistics(self._state)

    def __aiter__(self) -> Receiver[T]:
        return self

    @enable_ki_protection
    async def __anext__(self) -> T:
        # recv()'s four lines again, so that ``async for`` costs no extra coroutine per value.
        state = self._state
        try:
            if try_consume_budget():
                value = state.try_take()
                if value is not NO_VALUE:
                    return value
                if not state.ended():
                    return await _park_receiver(state)
            return await _recv_slow(state)
        except trio.EndOfChannel:
            raise StopAsyncIteration from None

    def __repr__(self) -> str:
        state = "closed" if self._state.rx_closed else "open"
        return f"<mpsc.Receiver {state} {_describe(self._state)}>"


async def _budget_checkpoint() -> None:
    if not try_consume_budget():
        await checkpoint()


async def _recv_slow(state: _State[T]) -> T:
    # The budget is spent or the task is cancelled, or the channel ended: take a full
    # checkpoint first, then look again.
    await checkpoint()
    value = state.try_take()
    if value is not NO_VALUE:
        return value
    if state.ended():
        raise _end_of_channel(state)
    return await _park_receiver(state)


async def _park_sender(state: _State[T], sender: Sender[T], value: Any) -> None:
    task = current_task()
    state.send_waiters[task] = (sender, value)
    await wait_task_rescheduled(partial(state.abort_send, task))


async def _park_receiver(state: _State[T]) -> T:
    if state.recv_task is not None:
        raise _busy()
    state.recv_task = current_task()
    return await wait_task_rescheduled(state.abort_recv)  # type: ignore[no-any-return]


def _busy() -> trio.BusyResourceError:
    return trio.BusyResourceError(
        "another task is already receiving from this mpsc channel, which has a single "
        "consumer; use one receiving task, or a broadcast channel to fan out"
    )


def _statistics(state: _State[Any]) -> ChannelStatistics:
    return ChannelStatistics(
        capacity=inf if state.capacity == _UNBOUNDED else state.capacity,
        buffered=len(state.buffer),
        peak_buffered=state.peak,
        reserved=state.reserved,
        open_senders=state.senders,
        receiver_closed=state.rx_closed,
        senders_waiting=len(state.send_waiters),
        receiver_waiting=state.recv_task is not None,
    )


def _describe(state: _State[Any]) -> str:
    capacity = "unbounded" if state.capacity == _UNBOUNDED else f"capacity={state.capacity}"
    return f"{capacity} buffered={len(state.buffer)}"


# Written as a class so that ``mpsc.channel[int](8)`` type-checks: a generic class whose
# constructor returns the pair.
@final
class channel(tuple[Sender[T], Receiver[T]]):  # lowercase: reads as a function
    """Open a bounded mpsc channel and return ``(sender, receiver)``.

    ``tx, rx = mpsc.channel[int](16)``. Data flows left to right. Clone the sender for more
    producers; a single task receives.

    Args:
        capacity: Values the buffer holds before ``send`` waits. 0 makes a rendezvous: each
            send waits for the receiver to take the value, the tightest backpressure. If in
            doubt, use a small number such as 16: enough to absorb bursts, small enough that a
            slow consumer is felt at once.
        name: Give the channel a name and the metrics report its depth and capacity
            (``runtime_channel_buffered{channel=name}``); unnamed channels are not tracked.

    Raises:
        ValueError: ``name`` is empty.
        ValueError: ``capacity`` is negative.
        TypeError: ``capacity`` is not an int.
    """

    def __new__(  # type: ignore[misc]  # returns the pair, not an instance
        cls, capacity: int, *, name: str | None = None
    ) -> tuple[Sender[T], Receiver[T]]:
        if not isinstance(capacity, int) or isinstance(capacity, bool):
            raise TypeError(
                f"capacity must be an int, got {capacity!r}; for no bound use "
                "mpsc.unbounded_channel()"
            )
        if capacity < 0:
            raise ValueError(f"capacity must be >= 0, got {capacity}")
        state: _State[T] = _State(capacity)
        if name is not None:
            remember(state, "mpsc", name, _statistics)
        return Sender(state), Receiver(state)

    def __init__(  # pragma: no cover - never called
        self, capacity: int, *, name: str | None = None
    ) -> None: ...


@final
class unbounded_channel(tuple[Sender[T], Receiver[T]]):
    """Open an mpsc channel without a bound on its buffer and return ``(sender, receiver)``.

    ``send`` never waits for room.

    Prefer :class:`channel`: without a bound a slow consumer lets memory grow without limit.
    Use this only where the producer cannot wait (a callback, a sync context) and the rate
    is bounded some other way.
    """

    def __new__(  # type: ignore[misc]
        cls, *, name: str | None = None
    ) -> tuple[Sender[T], Receiver[T]]:
        state: _State[T] = _State(_UNBOUNDED)
        if name is not None:
            remember(state, "mpsc", name, _statistics)
        return Sender(state), Receiver(state)

    def __init__(self, *, name: str | None = None) -> None:  # pragma: no cover - never called
        ...
