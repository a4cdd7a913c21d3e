"""Timeout: one deadline over readiness and the call together.

Tower's ``Timeout`` starts its clock in ``call``, so time spent waiting in ``poll_ready`` (for
a limit, a buffer slot, a balancer with no ready endpoint) is not covered (tower#648, #677).
Here the deadline is one cancel scope around everything the request waits for: the plain call
waits for readiness inside it, and a reservation opens the scope on entry and closes it on
exit, so waiting for the reservation and the call under it share the same deadline.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import (
    AbstractAsyncContextManager,
    AbstractContextManager,
    asynccontextmanager,
)
from types import TracebackType
from typing import Generic, TypeVar

import attrs

from runtime.time import Elapsed, TimeoutScope, move_on_after

from ._service import Call, Service
from ._validate import positive

Req = TypeVar("Req")
Resp = TypeVar("Resp")

__all__ = ["Elapsed", "Timeout", "TimeoutLayer"]


@attrs.define(eq=False)
class Timeout(Service[Req, Resp]):
    """Fail a request with :class:`~runtime.time.Elapsed` if it takes longer than ``duration``.

    The deadline covers waiting for the inner service to be ready and the call itself.

    Attributes:
        inner: The wrapped service.
        duration: Seconds allowed for readiness plus the call.

    Cancellation:
        When the deadline passes, the inner call is cancelled (it keeps nothing reserved) and
        ``Elapsed`` is raised in its place. A cancellation from outside passes through as
        ``trio.Cancelled``.
    """

    inner: Service[Req, Resp]
    duration: float = attrs.field(validator=positive)

    async def __call__(self, request: Req) -> Resp:
        """Call the inner service under the deadline.

        Raises:
            Elapsed: the deadline passed first.
        """
        with move_on_after(self.duration):
            return await self.inner(request)
        raise self._elapsed()

    @asynccontextmanager
    async def _ready(self) -> AsyncIterator[Call[Req, Resp]]:
        with move_on_after(self.duration) as scope:
            async with self.inner.ready() as call:
                yield call
        if scope.cancelled_caught:
            raise self._elapsed()

    def ready(self) -> AbstractAsyncContextManager[Call[Req, Resp]]:
        """Reserve the inner service; the deadline runs from entry until the block ends.

        Raises:
            Elapsed: (on entry or on exit) the deadline passed inside the block.
        """
        return self._ready()

    def ready_nowait(self) -> AbstractContextManager[Call[Req, Resp]]:
        """Reserve the inner service without waiting; the deadline bounds the block.

        Raises:
            trio.WouldBlock: (on entry) the inner service is not ready.
            Elapsed: (on exit) the deadline passed inside the block.
        """
        return _NowaitDeadline(self)

    def is_ready(self) -> bool:
        return self.inner.is_ready()

    def _elapsed(self) -> Elapsed:
        return Elapsed(
            f"no response within {self.duration} s (Timeout covers waiting for readiness and "
            "the call); raise the timeout or find out what is slow"
        )


class _NowaitDeadline(Generic[Req, Resp]):
    """``Timeout.ready_nowait()``: the deadline scope and the inner reservation on entry,
    both closed on exit (a class, not a generator context manager: it runs once per request
    on the proxy's path)."""

    __slots__ = ("_inner", "_scope", "_timeout")

    def __init__(self, timeout: Timeout[Req, Resp]) -> None:
        self._timeout = timeout
        self._scope: TimeoutScope | None = None
        self._inner: AbstractContextManager[Call[Req, Resp]] | None = None

    def __enter__(self) -> Call[Req, Resp]:
        scope = move_on_after(self._timeout.duration)
        scope.__enter__()
        inner = self._timeout.inner.ready_nowait()
        try:
            call = inner.__enter__()
        except BaseException as exc:  # trio.WouldBlock: nothing reserved, the scope closes
            scope.__exit__(type(exc), exc, exc.__traceback__)
            raise
        self._scope, self._inner = scope, inner
        return call

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        scope, inner = self._scope, self._inner
        assert scope is not None and inner is not None, "exited without entering"
        try:
            suppressed = inner.__exit__(exc_type, exc, tb)
        except BaseException as raised:
            scope.__exit__(type(raised), raised, raised.__traceback__)
            if scope.cancelled_caught:
                raise self._timeout._elapsed() from None  # the deadline's own cancellation
            raise
        if suppressed:
            exc_type, exc, tb = None, None, None
        scope.__exit__(exc_type, exc, tb)  # what it does not catch goes on, as the caller
        if scope.cancelled_caught:
            raise self._timeout._elapsed() from None  # the deadline's own cancellation
        return suppressed


@attrs.frozen
class TimeoutLayer:
    """Wraps services in :class:`Timeout`.

    Attributes:
        duration: Seconds allowed for readiness plus the call.
    """

    duration: float = attrs.field(validator=positive)

    def layer(self, inner: Service[Req, Resp]) -> Timeout[Req, Resp]:
        return Timeout(inner, self.duration)
