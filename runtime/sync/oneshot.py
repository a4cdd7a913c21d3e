"""oneshot: a channel for exactly one value, such as the reply to a request.

The sender's :meth:`Sender.send` never waits: it hands the value over and is done, or, if the
receiver is already gone, fails at once and gives the value back on the exception
(:class:`SendError`). The receiver waits for the value; if the sender is closed without sending
(for instance the task that owned it failed and its ``with`` block closed it), the receiver
gets ``EndOfChannel`` instead of waiting forever.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any, Generic, TypeVar, final

import trio

from ._endpoint import Closeable
from ._errors import EndOfChannel, WouldBlock
from ._lowlevel import (
    NO_VALUE,
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

__all__ = ["Receiver", "SendError", "Sender", "channel"]

T = TypeVar("T")


class SendError(trio.BrokenResourceError, Generic[T]):
    """The receiver was gone, so the value was not delivered. It is given back as ``value``.

    A subclass of ``trio.BrokenResourceError``: the other side went away.
    """

    def __init__(self, value: T) -> None:
        super().__init__(
            "the oneshot receiver is closed, so the value was not delivered; it is returned "
            "on this exception as .value"
        )
        self.value = value


class _State(Generic[T]):
    __slots__ = (
        "closed_waiters",
        "recv_task",
        "rx_closed",
        "tx_closed",
        "value",
    )

    def __init__(self) -> None:
        self.value: Any = NO_VALUE
        self.tx_closed = False
        self.rx_closed = False
        self.recv_task: Task | None = None
        self.closed_waiters: trio.lowlevel.ParkingLot | None = None

    def wake_receiver(self, outcome: Handoff[T] | Error) -> None:
        task = self.recv_task
        if task is not None:
            self.recv_task = None
            reschedule(task, outcome)

    def abort_recv(self, _: object) -> trio.lowlevel.Abort:
        self.recv_task = None
        return Abort.SUCCEEDED


def _no_value() -> trio.EndOfChannel:
    return EndOfChannel(
        "the oneshot sender was closed without sending a value (did its task fail?)"
    )


@final
class Sender(Closeable, Generic[T]):
    """The sending half of a oneshot channel: one :meth:`send`, or :meth:`close` without one.

    Use it as a context manager (``with tx:``) so that a failure before the send closes it
    and the receiver learns that no value is coming.
    """

    __slots__ = ("_state",)

    def __init__(self, state: _State[T]) -> None:
        self._state = state

    @enable_ki_protection
    def send(self, value: T) -> None:
        """Deliver the value. Never waits. Closes this sender.

        Args:
            value: The value.

        Raises:
            SendError: The receiver is closed; ``.value`` gives the value back.
            trio.ClosedResourceError: This sender already sent or was closed.
        """
        state = self._state
        if state.tx_closed:
            raise trio.ClosedResourceError(
                "this oneshot sender already sent or was closed; a oneshot carries one value"
            )
        state.tx_closed = True
        if state.rx_closed:
            raise SendError(value)
        state.value = value
        state.wake_receiver(Handoff(value))

    @enable_ki_protection
    def close(self) -> None:
        """Close without sending; the receiver gets ``EndOfChannel``. Idempotent."""
        state = self._state
        if state.tx_closed:
            return
        state.tx_closed = True
        state.wake_receiver(Error(_no_value()))

    def is_closed(self) -> bool:
        """Whether this sender already sent or was closed."""
        return self._state.tx_closed

    def _open_when_dropped(self) -> bool:
        return not self._state.tx_closed

    def receiver_closed(self) -> bool:
        """Whether the receiver is closed, so :meth:`send` would fail."""
        return self._state.rx_closed

    async def closed(self) -> None:
        """Wait until the receiver is closed, for instance to stop working on a reply nobody
        wants any more. Returns at once if it already is.

        Cancellation: safe; nothing changes.
        """
        state = self._state
        if state.rx_closed:
            if not try_consume_budget():
                await checkpoint()
            return
        if state.closed_waiters is None:
            state.closed_waiters = trio.lowlevel.ParkingLot()
        await state.closed_waiters.park()

    def __repr__(self) -> str:
        return f"<oneshot.Sender {'closed' if self._state.tx_closed else 'open'}>"


@final
class Receiver(Closeable, Generic[T]):
    """The receiving half of a oneshot channel. ``await rx`` is the same as ``await rx.recv()``."""

    __slots__ = ("_state",)

    def __init__(self, state: _State[T]) -> None:
        self._state = state

    @enable_ki_protection
    async def recv(self) -> T:
        """Wait for the value.

        Returns:
            The value sent. It stays available: receiving again returns it again.

        Raises:
            trio.EndOfChannel: The sender was closed without sending, or this receiver was
                closed before a value came.
            trio.BusyResourceError: Another task is already waiting on this receiver.

        Cancellation: a cancelled recv took nothing; the value, if it comes, is still there.
        """
        state = self._state
        if state.value is not NO_VALUE or state.tx_closed or state.rx_closed:
            if not try_consume_budget():
                await checkpoint()
            return self.try_recv()
        if state.recv_task is not None:
            raise trio.BusyResourceError(
                "another task is already waiting on this oneshot receiver; share the value "
                "after receiving it, or use a watch channel"
            )
        state.recv_task = current_task()
        return await wait_task_rescheduled(state.abort_recv)  # type: ignore[no-any-return]

    def try_recv(self) -> T:
        """The value if it has come.

        Returns:
            The value sent.

        Raises:
            trio.WouldBlock: No value yet, and the sender is still open.
            trio.EndOfChannel: No value is coming.
        """
        state = self._state
        if state.value is not NO_VALUE:
            return state.value  # type: ignore[no-any-return]
        if state.tx_closed or state.rx_closed:
            raise _no_value() if state.tx_closed else EndOfChannel("this receiver was closed")
        raise WouldBlock

    @enable_ki_protection
    def close(self) -> None:
        """Tell the sender nobody will read the value: its ``send`` then fails. Idempotent.

        A value that already arrived can still be read with :meth:`try_recv`.
        """
        state = self._state
        if state.rx_closed:
            return
        state.rx_closed = True
        if state.value is NO_VALUE:
            state.wake_receiver(Error(EndOfChannel("this receiver was closed")))
        if state.closed_waiters is not None:
            state.closed_waiters.unpark_all()

    def __await__(self) -> Generator[Any, None, T]:
        return self.recv().__await__()

    def _open_when_dropped(self) -> bool:
        state = self._state
        return not (state.rx_closed or state.tx_closed)

    def __repr__(self) -> str:
        state = self._state
        status = "ready" if state.value is not NO_VALUE else "waiting"
        return f"<oneshot.Receiver {status}>"


@final
class channel(tuple[Sender[T], Receiver[T]]):  # lowercase: reads as a function
    """Open a oneshot channel and return ``(sender, receiver)``: ``oneshot.channel[int]()``."""

    def __new__(cls) -> tuple[Sender[T], Receiver[T]]:  # type: ignore[misc]
        state: _State[T] = _State()
        return Sender(state), Receiver(state)

    def __init__(self) -> None:  # pragma: no cover - never called
        ...
