"""ConcurrencyLimit: at most N calls in flight, per service or shared by many.

The limit is a :class:`runtime.sync.Semaphore` (fair, on the cooperative budget). The plain
call holds a permit for the whole call; a reservation (``ready()``) holds it from entry to
exit, and every call made on the reservation runs under that one permit. The permit is taken
before the inner service is asked for readiness, as Tower does, so callers queue here (in FIFO
order) rather than inside the service.

Two forms: :class:`ConcurrencyLimitLayer` gives every service it wraps its own limit;
:class:`GlobalConcurrencyLimitLayer` makes one semaphore that all of them share. A semaphore
you create yourself (``runtime.sync.Semaphore(n)``) can also be passed to
:class:`ConcurrencyLimit` directly.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, AbstractContextManager, asynccontextmanager
from types import TracebackType
from typing import Generic, TypeVar

import attrs

from runtime.sync import Semaphore, SemaphorePermit

from ._service import Call, Service
from ._validate import at_least_one

Req = TypeVar("Req")
Resp = TypeVar("Resp")

__all__ = [
    "ConcurrencyLimit",
    "ConcurrencyLimitLayer",
    "ConcurrencyLimitStatistics",
    "GlobalConcurrencyLimitLayer",
]


def _make_semaphore(limit: int) -> Semaphore:
    if limit < 1:
        raise ValueError(f"concurrency limit must be >= 1, got {limit!r}")
    return Semaphore(limit)


class _PermitNowait(Generic[Req, Resp]):
    """``ready_nowait()``: a permit and the inner reservation, taken together or not at all.

    A class rather than a generator: LoadShed and Balance take this path on every call.
    """

    __slots__ = ("_inner", "_limit", "_permit")

    def __init__(self, limit: ConcurrencyLimit[Req, Resp]) -> None:
        self._limit = limit
        self._inner: AbstractContextManager[Call[Req, Resp]] | None = None
        self._permit: SemaphorePermit | None = None

    def __enter__(self) -> Call[Req, Resp]:
        limit = self._limit
        permit = limit.semaphore.try_acquire()
        try:
            inner = limit.inner.ready_nowait()
            call = inner.__enter__()
        except BaseException:
            permit.release()
            raise
        self._inner = inner
        self._permit = permit
        return call

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        inner, self._inner = self._inner, None
        permit, self._permit = self._permit, None
        assert inner is not None and permit is not None, (
            "ready_nowait() exited without being entered"
        )
        try:
            return inner.__exit__(exc_type, exc, tb)
        finally:
            permit.release()


@attrs.frozen
class ConcurrencyLimitStatistics:
    """A limit at one moment.

    Attributes:
        available: Permits free now.
        waiting: Tasks waiting for a permit.
    """

    available: int
    waiting: int


@attrs.define(eq=False, init=False)
class ConcurrencyLimit(Service[Req, Resp]):
    """Let at most ``limit`` calls into the inner service at once; the rest wait their turn.

    Args:
        inner: The wrapped service.
        limit: Calls in flight at most, or a :class:`runtime.sync.Semaphore` to share one
            limit among several services.

    Cancellation:
        A caller cancelled while waiting for a permit holds none; one cancelled during the
        call gives its permit back as the call unwinds.
    """

    inner: Service[Req, Resp]
    semaphore: Semaphore

    def __init__(self, inner: Service[Req, Resp], limit: int | Semaphore) -> None:
        self.inner = inner
        self.semaphore = _make_semaphore(limit) if isinstance(limit, int) else limit

    async def __call__(self, request: Req) -> Resp:
        """Wait for a permit, then call the inner service while holding it."""
        permit = await self.semaphore.acquire()
        try:
            return await self.inner(request)
        finally:
            permit.release()

    @asynccontextmanager
    async def _ready(self) -> AsyncIterator[Call[Req, Resp]]:
        with await self.semaphore.acquire():
            async with self.inner.ready() as call:
                yield call

    def ready(self) -> AbstractAsyncContextManager[Call[Req, Resp]]:
        """Wait for a permit and for the inner service; hold both until the block ends."""
        return self._ready()

    def ready_nowait(self) -> AbstractContextManager[Call[Req, Resp]]:
        """Take a permit and reserve the inner service without waiting.

        Raises:
            trio.WouldBlock: (on entry) no permit is free, or the inner service is not ready.
        """
        return _PermitNowait(self)

    def is_ready(self) -> bool:
        return self.semaphore.available_permits() > 0 and self.inner.is_ready()

    def statistics(self) -> ConcurrencyLimitStatistics:
        """Free permits and waiting tasks."""
        stats = self.semaphore.statistics()
        return ConcurrencyLimitStatistics(available=stats.available, waiting=stats.tasks_waiting)


@attrs.frozen
class ConcurrencyLimitLayer:
    """Wraps each service in its own :class:`ConcurrencyLimit` of ``limit``.

    Attributes:
        limit: Calls in flight at most, per wrapped service.
    """

    limit: int = attrs.field(validator=at_least_one)

    def layer(self, inner: Service[Req, Resp]) -> ConcurrencyLimit[Req, Resp]:
        return ConcurrencyLimit(inner, self.limit)


@attrs.frozen
class GlobalConcurrencyLimitLayer:
    """Wraps services in :class:`ConcurrencyLimit` s that share one semaphore.

    Every service this layer wraps counts against the same ``limit``: useful to cap the total
    load a process puts on a backend reached through several routes.

    Attributes:
        limit: Calls in flight at most, across every wrapped service.
    """

    limit: int = attrs.field(validator=at_least_one)
    semaphore: Semaphore = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "semaphore", _make_semaphore(self.limit))

    def layer(self, inner: Service[Req, Resp]) -> ConcurrencyLimit[Req, Resp]:
        return ConcurrencyLimit(inner, self.semaphore)
