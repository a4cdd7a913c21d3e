"""Buffer: a bounded queue in front of a service that worker tasks drive.

Use it when the inner service must be called from one task (or a fixed few): a connection
that is not safe to share, a resource bound to its task. Callers put requests in the queue
and wait; ``workers`` tasks take them in FIFO order and call the inner service, one request at
a time each; each caller gets its own response or its own exception.

**Slots.** The queue has ``bound`` slots. A slot is taken before a request is queued (that is
Buffer's readiness) and given back exactly once, when the request is over. "Over" depends on
where the caller was when it stopped waiting:

=========================  ====================================================================
Caller cancelled while...  What happens
=========================  ====================================================================
waiting for a slot         it holds none
queued                     the request leaves the queue, the slot is freed at once
being served               the worker's call is cancelled; the worker frees the slot
=========================  ====================================================================

A reservation (``ready()``) owns its slot until its block ends; a request made on it borrows
the slot, and if the block ends while that request is still being served, the slot passes to
the worker, which frees it when done. So no path keeps a slot: Tower's Buffer can leak one
when a reserved ``poll_ready`` is dropped without a call.

**Workers are tasks with a parent.** :meth:`Buffer.serve_requests` runs them (``nursery.start``),
:func:`open_buffer` runs them for the length of an ``async with`` block, and
:class:`BufferLayer` starts them in a nursery you give it, or in the runtime. When they stop,
the buffer is closed: queued requests and later calls fail with ``trio.ClosedResourceError``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator, Iterator
from contextlib import (
    AbstractAsyncContextManager,
    AbstractContextManager,
    asynccontextmanager,
    contextmanager,
)
from typing import Any, Generic, TypeVar

import attrs
import outcome
import trio

from runtime.rt import spawn
from runtime.sync import Semaphore

from ._service import Call, Service
from ._tasks import running
from ._validate import at_least_one

Req = TypeVar("Req")
Resp = TypeVar("Resp")

__all__ = ["Buffer", "BufferLayer", "BufferStatistics", "open_buffer"]

_QUEUED = 0
_RUNNING = 1
_DONE = 2


def _closed() -> trio.ClosedResourceError:
    return trio.ClosedResourceError(
        "this Buffer's workers have stopped (their nursery or the runtime ended), so it takes "
        "no more requests; use the buffer only while its workers run"
    )


class _Message(Generic[Req, Resp]):
    __slots__ = ("done", "owns_slot", "request", "result", "scope", "state")

    def __init__(self, request: Req, owns_slot: bool) -> None:
        self.request = request
        self.state = _QUEUED
        self.owns_slot = owns_slot
        self.scope: trio.CancelScope | None = None
        self.result: outcome.Outcome[Resp] | None = None
        self.done = trio.Event()


@attrs.frozen
class BufferStatistics:
    """A buffer at one moment.

    Attributes:
        queued: Requests waiting for a worker.
        free_slots: Slots free now.
        closed: Whether the workers have stopped.
    """

    queued: int
    free_slots: int
    closed: bool


@attrs.define(eq=False, init=False)
class Buffer(Service[Req, Resp]):
    """A bounded queue of requests, served by worker tasks that call the inner service.

    Args:
        inner: The service the workers call.
        bound: Slots in the queue: requests queued or being served, at most.
        workers: Worker tasks, each serving one request at a time. Default 1: the point of a
            buffer is usually that one task drives the inner service.

    Cancellation:
        A cancelled caller never keeps a slot (see the module notes); if its request was
        being served, that call is cancelled too.
    """

    inner: Service[Req, Resp]
    bound: int
    workers: int
    _slots: Semaphore
    _queue: deque[_Message[Req, Resp]]
    _idle: trio.lowlevel.ParkingLot
    _serving: bool
    _closed: bool

    def __init__(self, inner: Service[Req, Resp], bound: int, *, workers: int = 1) -> None:
        _check(bound, workers)
        self.inner = inner
        self.bound = bound
        self.workers = workers
        self._slots = Semaphore(bound)
        self._queue = deque()
        self._idle = trio.lowlevel.ParkingLot()
        self._serving = False
        self._closed = False

    async def __call__(self, request: Req) -> Resp:
        """Queue the request (waiting for a slot) and wait for a worker's answer.

        Raises:
            trio.ClosedResourceError: the workers have stopped.
            Exception: whatever the inner service raised for this request.
        """
        if self._closed:
            raise _closed()
        await self._slots.acquire()
        return await self._submit(_Message(request, owns_slot=True))

    async def _submit(self, message: _Message[Req, Resp]) -> Resp:
        if self._closed:
            self._finish(message, outcome.Error(_closed()))
        else:
            self._queue.append(message)
            self._idle.unpark()
        try:
            await message.done.wait()
        except BaseException:
            self._abandon(message)
            raise
        assert message.result is not None
        return message.result.unwrap()

    def _abandon(self, message: _Message[Req, Resp]) -> None:
        if message.state == _QUEUED:
            self._queue.remove(message)
            message.state = _DONE
            if message.owns_slot:
                self._slots.add_permits(1)
        elif message.state == _RUNNING:
            assert message.scope is not None
            message.scope.cancel()

    def _finish(self, message: _Message[Req, Resp], result: outcome.Outcome[Resp]) -> None:
        message.result = result
        message.state = _DONE
        if message.owns_slot:
            self._slots.add_permits(1)
        message.done.set()

    async def serve_requests(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Run the workers until cancelled; then close the buffer.

        Start it with ``await nursery.start(buffer.serve_requests)``.

        Raises:
            RuntimeError: the workers are already running, or ran before (a buffer is served
                once).

        Cancellation:
            Cancelling it is how the buffer stops: the request being served is cancelled and
            fails with ``trio.ClosedResourceError``, as do the queued ones and any later call.
        """
        if self._serving or self._closed:
            raise RuntimeError("this Buffer is already served; run serve_requests() once")
        self._serving = True
        try:
            async with trio.open_nursery() as nursery:
                for _ in range(self.workers):
                    nursery.start_soon(self._work)
                task_status.started()
        finally:
            self._close()

    async def _work(self) -> None:
        queue = self._queue
        while True:
            while not queue:
                await self._idle.park()
            await self._serve(queue.popleft())

    async def _serve(self, message: _Message[Req, Resp]) -> None:
        message.state = _RUNNING
        result: outcome.Outcome[Resp] | None = None
        try:
            with trio.CancelScope() as message.scope:
                try:
                    result = outcome.Value(await self.inner(message.request))
                except Exception as exc:
                    result = outcome.Error(exc)
        finally:
            # No result: the caller gave up (its scope was cancelled) or the workers stopped.
            self._finish(message, result if result is not None else outcome.Error(_closed()))

    def _close(self) -> None:
        self._closed = True
        self._serving = False
        while self._queue:
            self._finish(self._queue.popleft(), outcome.Error(_closed()))

    @asynccontextmanager
    async def _ready(self) -> AsyncIterator[Call[Req, Resp]]:
        if self._closed:
            raise _closed()
        await self._slots.acquire()
        with self._holding_slot() as call:
            yield call

    @contextmanager
    def _ready_nowait(self) -> Iterator[Call[Req, Resp]]:
        if self._closed:
            raise _closed()
        self._slots.try_acquire()
        with self._holding_slot() as call:
            yield call

    @contextmanager
    def _holding_slot(self) -> Iterator[Call[Req, Resp]]:
        current: list[_Message[Req, Resp]] = []

        async def call(request: Req) -> Resp:
            message = _Message[Req, Resp](request, owns_slot=False)
            current[:] = [message]
            return await self._submit(message)

        try:
            yield call
        finally:
            if current and current[0].state == _RUNNING:
                current[0].owns_slot = True  # the worker frees it when the call unwinds
            else:
                self._slots.add_permits(1)

    def ready(self) -> AbstractAsyncContextManager[Call[Req, Resp]]:
        """Wait for a free slot and hold it until the block ends.

        Raises:
            trio.ClosedResourceError: the workers have stopped.
        """
        return self._ready()

    def ready_nowait(self) -> AbstractContextManager[Call[Req, Resp]]:
        """Take a free slot without waiting.

        Raises:
            trio.WouldBlock: (on entry) every slot is taken.
            trio.ClosedResourceError: the workers have stopped.
        """
        return self._ready_nowait()

    def is_ready(self) -> bool:
        return not self._closed and self._slots.available_permits() > 0

    def statistics(self) -> BufferStatistics:
        """Queued requests, free slots and whether the buffer is closed."""
        return BufferStatistics(
            queued=len(self._queue),
            free_slots=self._slots.available_permits(),
            closed=self._closed,
        )


def _check(bound: int, workers: int) -> None:
    if bound < 1:
        raise ValueError(f"buffer bound must be >= 1 slot, got {bound!r}")
    if workers < 1:
        raise ValueError(f"buffer needs >= 1 worker, got {workers!r}")


@asynccontextmanager
async def open_buffer(
    inner: Service[Req, Resp], bound: int, *, workers: int = 1
) -> AsyncIterator[Buffer[Req, Resp]]:
    """A Buffer whose workers run for the length of the ``async with`` block.

    Args:
        inner: The service the workers call.
        bound: Slots in the queue.
        workers: Worker tasks.

    Yields:
        The buffer, already served.

    Cancellation:
        Leaving the block stops the workers: requests still queued or being served fail with
        ``trio.ClosedResourceError``.
    """
    buffer = Buffer(inner, bound, workers=workers)
    async with running(buffer.serve_requests):
        yield buffer


@attrs.frozen
class BufferLayer:
    """Wraps services in :class:`Buffer` and starts their workers.

    Attributes:
        bound: Slots per buffer.
        workers: Worker tasks per buffer.
        nursery: Where the workers run. Default None: in the current runtime
            (``runtime.spawn``), so they stop at its shutdown.
    """

    bound: int = attrs.field(validator=at_least_one)
    workers: int = attrs.field(default=1, validator=at_least_one)
    nursery: trio.Nursery | None = None

    def layer(self, inner: Service[Req, Resp]) -> Buffer[Req, Resp]:
        """Wrap ``inner`` and start the workers.

        Raises:
            runtime.NoRuntimeError: no nursery was given and no runtime is running.
        """
        buffer = Buffer(inner, self.bound, workers=self.workers)
        if self.nursery is not None:
            self.nursery.start_soon(buffer.serve_requests)
        else:
            spawn(buffer.serve_requests, name=f"buffer workers for {inner!r}")
        return buffer
