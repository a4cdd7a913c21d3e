"""Semaphore: a fair, weighted count of permits.

Waiters queue in arrival order with the number of permits they want. Permits are handed out
from the head of the queue only, so a large request is not starved by a stream of small ones,
and a newcomer never overtakes the queue even if enough permits are free ("no barging").
Whoever returns permits grants them to the head waiters directly before rescheduling them, so
a woken waiter already holds its permits, and a cancelled waiter held none.
"""

from __future__ import annotations

from collections import OrderedDict
from functools import partial
from types import TracebackType
from typing import final

import attrs
import trio

from ._errors import WouldBlock, closed_error
from ._lowlevel import (
    WOKEN,
    Abort,
    Error,
    Task,
    checkpoint,
    current_task,
    enable_ki_protection,
    reschedule,
    try_consume_budget,
    wait_task_rescheduled,
)

__all__ = ["Semaphore", "SemaphorePermit", "SemaphoreStatistics"]


@attrs.frozen
class SemaphoreStatistics:
    """A snapshot of a semaphore.

    Attributes:
        available: Permits free now.
        tasks_waiting: Tasks queued in ``acquire``.
        permits_waiting: Permits those tasks want in all.
        closed: Whether the semaphore was closed.
    """

    available: int
    tasks_waiting: int
    permits_waiting: int
    closed: bool


def _check_count(n: int, what: str) -> None:
    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
        raise ValueError(f"{what} must be an int >= 0, got {n!r}")


@final
class Semaphore:
    """A count of permits, handed out first come, first served.

    ``async with sem:`` holds one permit for the block and gives it back on any exit.
    ``permit = await sem.acquire(n)`` holds ``n`` until ``permit.release()`` (or the end of
    ``with permit:``), which suits a permit that outlives the function that acquired it, such
    as one per connection.

    Args:
        permits: Permits available at first, at least 0.

    Raises:
        ValueError: ``permits`` is negative.
    """

    __slots__ = ("__weakref__", "_available", "_closed", "_waiters")

    def __init__(self, permits: int) -> None:
        _check_count(permits, "permits")
        self._available = permits
        self._closed = False
        self._waiters: OrderedDict[Task, int] = OrderedDict()

    @enable_ki_protection
    async def acquire(self, n: int = 1) -> SemaphorePermit:
        """Wait for ``n`` permits and hold them.

        Args:
            n: Permits to take at once (weighted acquire), at least 0.

        Returns:
            A permit for ``n``; release it, or use it as a context manager.

        Raises:
            ValueError: ``n`` is negative.
            trio.ClosedResourceError: The semaphore is closed (before or during the wait).

        Cancellation: a cancelled acquire holds nothing, and leaves its place in the queue.
        """
        _check_count(n, "n")
        can_take = not self._waiters and self._available >= n and not self._closed
        if can_take and try_consume_budget():
            self._available -= n
            return SemaphorePermit(self, n)
        if self._closed or (not self._waiters and self._available >= n):
            await checkpoint()  # cancelled, budget spent, or about to raise
            if self._closed:
                raise closed_error("semaphore")
            if not self._waiters and self._available >= n:
                self._available -= n
                return SemaphorePermit(self, n)
        task = current_task()
        self._waiters[task] = n
        await wait_task_rescheduled(partial(self._abort, task))
        return SemaphorePermit(self, n)

    def _abort(self, task: Task, _: object) -> trio.lowlevel.Abort:
        del self._waiters[task]
        self._grant()  # the head may have left, and the next ones may fit now
        return Abort.SUCCEEDED

    @enable_ki_protection
    def try_acquire(self, n: int = 1) -> SemaphorePermit:
        """Take ``n`` permits if they are free now and nobody is queued before us.

        Args:
            n: Permits to take, at least 0.

        Returns:
            A permit for ``n``.

        Raises:
            ValueError: ``n`` is negative.
            trio.WouldBlock: Not enough permits, or others are waiting.
            trio.ClosedResourceError: The semaphore is closed.
        """
        _check_count(n, "n")
        if self._closed:
            raise closed_error("semaphore")
        if self._waiters or self._available < n:
            raise WouldBlock
        self._available -= n
        return SemaphorePermit(self, n)

    @enable_ki_protection
    def add_permits(self, n: int) -> None:
        """Add ``n`` permits, waking queued tasks they satisfy (in order).

        Args:
            n: Permits to add, at least 0.

        Raises:
            ValueError: ``n`` is negative.
        """
        _check_count(n, "n")
        self._available += n
        if self._waiters:
            self._grant()

    def _grant(self) -> None:
        waiters = self._waiters
        while waiters:
            task, wanted = next(iter(waiters.items()))
            if wanted > self._available:
                return
            self._available -= wanted
            del waiters[task]
            reschedule(task, WOKEN)

    @enable_ki_protection
    def close(self) -> None:
        """Close the semaphore. Idempotent. Queued and future ``acquire`` calls raise
        ``trio.ClosedResourceError``; permits already held stay valid and may be released."""
        if self._closed:
            return
        self._closed = True
        waiters = self._waiters
        while waiters:
            task, _ = waiters.popitem(last=False)
            reschedule(task, Error(closed_error("semaphore")))

    def is_closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    def available_permits(self) -> int:
        """Permits free now (queued tasks may already be waiting for them)."""
        return self._available

    def statistics(self) -> SemaphoreStatistics:
        """A snapshot of the semaphore."""
        return SemaphoreStatistics(
            available=self._available,
            tasks_waiting=len(self._waiters),
            permits_waiting=sum(self._waiters.values()),
            closed=self._closed,
        )

    async def __aenter__(self) -> None:
        await self.acquire()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.add_permits(1)

    def __repr__(self) -> str:
        return (
            f"<Semaphore available={self._available} waiting={len(self._waiters)}"
            f"{' closed' if self._closed else ''}>"
        )


@final
class SemaphorePermit:
    """Permits held from a :class:`Semaphore`. Release once; a context manager releases on exit.

    Attributes:
        permits: How many permits this holds (0 once released or forgotten).
    """

    __slots__ = ("_semaphore", "permits")

    def __init__(self, semaphore: Semaphore, permits: int) -> None:
        self._semaphore = semaphore
        self.permits = permits

    def release(self) -> None:
        """Give the permits back. Idempotent."""
        n = self.permits
        if n:
            self.permits = 0
            self._semaphore.add_permits(n)

    def forget(self) -> None:
        """Keep the permits out of the semaphore for good (shrinks its capacity)."""
        self.permits = 0

    def __enter__(self) -> SemaphorePermit:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

    def __repr__(self) -> str:
        return f"<SemaphorePermit permits={self.permits}>"
