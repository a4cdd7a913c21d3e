"""A mock Service with a handle that scripts it, for middleware tests (tower-test's ``mock``).

``service, handle = mock_service()`` gives a Service whose every call waits until the test
answers it through the handle::

    request = await handle.next_request()   # the next call that reached the service
    request.respond("ok")                   # ... or request.fail(SomeError())

Readiness is scripted too: ``handle.allow(n)`` lets ``n`` more calls in and then the service
is not ready; ``handle.hold()`` is ``allow(0)``; ``handle.allow(None)`` (the default) makes it
always ready. A reservation (``ready()``) takes one unit of the allowance and gives it back if
it ends without a call, so ``handle.statistics().reserved`` shows reservations still held: a
leak check for middleware.
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

from runtime.service import Call, Service

Req = TypeVar("Req")
Resp = TypeVar("Resp")

__all__ = ["MockHandle", "MockRequest", "MockService", "MockStatistics", "mock_service"]


class MockRequest(Generic[Req, Resp]):
    """One call that reached the mock service, waiting for the test to answer it.

    Attributes:
        request: What the caller sent.
    """

    __slots__ = ("_cancelled", "_done", "_result", "request")

    def __init__(self, request: Req) -> None:
        self.request = request
        self._result: outcome.Outcome[Resp] | None = None
        self._done = trio.Event()
        self._cancelled = trio.Event()

    @property
    def cancelled(self) -> bool:
        """Whether the caller stopped waiting (it was cancelled) before an answer came."""
        return self._cancelled.is_set()

    async def wait_cancelled(self) -> None:
        """Wait until the caller is cancelled. A checkpoint."""
        await self._cancelled.wait()

    def respond(self, response: Resp) -> None:
        """Answer the call with ``response``. Ignored if the caller was cancelled.

        Raises:
            RuntimeError: the call was already answered.
        """
        self._answer(outcome.Value(response))

    def fail(self, error: BaseException) -> None:
        """Make the call raise ``error``. Ignored if the caller was cancelled.

        Raises:
            RuntimeError: the call was already answered.
        """
        self._answer(outcome.Error(error))

    def _answer(self, result: outcome.Outcome[Resp]) -> None:
        if self._result is not None:
            raise RuntimeError(
                f"mock request {self.request!r} was already answered; answer each request once"
            )
        self._result = result
        self._done.set()

    def __repr__(self) -> str:
        return f"MockRequest({self.request!r})"


@attrs.frozen
class MockStatistics:
    """The mock service at one moment.

    Attributes:
        calls: Calls that reached the service so far.
        queued: Calls waiting for the test to take them with ``next_request``.
        reserved: Reservations (``ready()`` / ``ready_nowait()``) held now.
        allowance: Calls still allowed, or None for unlimited.
    """

    calls: int
    queued: int
    reserved: int
    allowance: int | None


class _State(Generic[Req, Resp]):
    def __init__(self) -> None:
        self.queue: deque[MockRequest[Req, Resp]] = deque()
        self.arrivals = trio.lowlevel.ParkingLot()
        self.allowance: int | None = None
        self.allowance_changed = trio.lowlevel.ParkingLot()
        self.reserved = 0
        self.calls = 0

    def is_ready(self) -> bool:
        return self.allowance is None or self.allowance > 0

    def take_allowance(self) -> None:
        if self.allowance is not None:
            self.allowance -= 1

    def give_back(self) -> None:
        if self.allowance is not None:
            self.allowance += 1
            self.allowance_changed.unpark_all()

    async def wait_ready(self) -> None:
        await trio.lowlevel.checkpoint()
        while not self.is_ready():
            await self.allowance_changed.park()

    async def deliver(self, request: Req) -> Resp:
        self.calls += 1
        pending: MockRequest[Req, Resp] = MockRequest(request)
        self.queue.append(pending)
        self.arrivals.unpark_all()
        try:
            await pending._done.wait()
        except BaseException:
            if pending._result is None:
                pending._cancelled.set()
                if pending in self.queue:
                    self.queue.remove(pending)
            raise
        assert pending._result is not None
        return pending._result.unwrap()


class _Once(Generic[Req, Resp]):
    __slots__ = ("_state", "used")

    def __init__(self, state: _State[Req, Resp]) -> None:
        self._state = state
        self.used = False

    async def __call__(self, request: Req) -> Resp:
        if self.used:
            await self._state.wait_ready()
            self._state.take_allowance()
        self.used = True
        return await self._state.deliver(request)


class MockService(Service[Req, Resp]):
    """The service half of :func:`mock_service`. Each call waits for the handle to answer."""

    __slots__ = ("_state",)

    def __init__(self, state: _State[Req, Resp]) -> None:
        self._state = state

    async def __call__(self, request: Req) -> Resp:
        """Wait until allowed, then wait for the test to answer.

        Raises:
            BaseException: whatever the test passed to ``fail``.
        """
        state = self._state
        await state.wait_ready()
        state.take_allowance()
        return await state.deliver(request)

    @asynccontextmanager
    async def _ready(self) -> AsyncIterator[Call[Req, Resp]]:
        state = self._state
        await state.wait_ready()
        with self._reserved() as call:
            yield call

    @contextmanager
    def _ready_nowait(self) -> Iterator[Call[Req, Resp]]:
        if not self._state.is_ready():
            raise trio.WouldBlock
        with self._reserved() as call:
            yield call

    @contextmanager
    def _reserved(self) -> Iterator[Call[Req, Resp]]:
        state = self._state
        state.take_allowance()
        state.reserved += 1
        once = _Once(state)
        try:
            yield once
        finally:
            state.reserved -= 1
            if not once.used:
                state.give_back()

    def ready(self) -> AbstractAsyncContextManager[Call[Req, Resp]]:
        """Wait for allowance and reserve one unit of it; an unused unit is given back."""
        return self._ready()

    def ready_nowait(self) -> AbstractContextManager[Call[Req, Resp]]:
        """Reserve one unit of allowance without waiting.

        Raises:
            trio.WouldBlock: (on entry) the allowance is used up.
        """
        return self._ready_nowait()

    def is_ready(self) -> bool:
        return self._state.is_ready()

    def __repr__(self) -> str:
        return "MockService()"


class MockHandle(Generic[Req, Resp]):
    """The test's half of :func:`mock_service`: take requests, answer them, script readiness."""

    __slots__ = ("_state",)

    def __init__(self, state: _State[Req, Resp]) -> None:
        self._state = state

    async def next_request(self) -> MockRequest[Req, Resp]:
        """Wait for the next call to reach the service and return it, unanswered.

        A call whose caller was cancelled before it was taken is dropped from the queue.
        """
        state = self._state
        await trio.lowlevel.checkpoint()
        while not state.queue:
            await state.arrivals.park()
        return state.queue.popleft()

    def next_request_nowait(self) -> MockRequest[Req, Resp]:
        """The next call if one is waiting.

        Raises:
            trio.WouldBlock: no call is waiting.
        """
        if not self._state.queue:
            raise trio.WouldBlock
        return self._state.queue.popleft()

    def allow(self, calls: int | None) -> None:
        """Let ``calls`` more calls in, then be not ready; None means no limit."""
        if calls is not None and calls < 0:
            raise ValueError(f"allow() takes a count >= 0 or None, got {calls!r}")
        self._state.allowance = calls
        self._state.allowance_changed.unpark_all()

    def hold(self) -> None:
        """Be not ready until the next :meth:`allow`."""
        self.allow(0)

    def statistics(self) -> MockStatistics:
        """Calls, queued calls, reservations held and the allowance."""
        state = self._state
        return MockStatistics(
            calls=state.calls,
            queued=len(state.queue),
            reserved=state.reserved,
            allowance=state.allowance,
        )


def mock_service() -> tuple[MockService[Any, Any], MockHandle[Any, Any]]:
    """A mock Service and the handle that scripts it.

    Returns:
        ``(service, handle)``. The service is always ready until ``handle.allow(n)`` or
        ``handle.hold()`` says otherwise; every call waits for ``respond`` or ``fail``.
    """
    state: _State[Any, Any] = _State()
    return MockService(state), MockHandle(state)
