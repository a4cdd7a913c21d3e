"""RwLock: many readers or one writer, fair and write-preferring.

Built on the fair :class:`~runtime.sync.Semaphore` the way Tokio builds its own: the lock has
``max_readers`` permits, a reader takes one, a writer takes them all. Because the semaphore
serves its queue strictly in order, a queued writer blocks every reader that comes after it
(write-preferring: a stream of readers cannot starve a writer), and readers queued after a
writer are all let in together when it releases (fair: nobody is overtaken).
"""

from __future__ import annotations

from collections.abc import Generator
from types import TracebackType
from typing import Any, Generic, TypeVar, final

import attrs

from ._semaphore import Semaphore, SemaphorePermit

__all__ = ["ReadGuard", "RwLock", "RwLockStatistics", "WriteGuard"]

T = TypeVar("T")
G = TypeVar("G", bound="ReadGuard[Any]")

_MAX_READERS = 1 << 30


@attrs.frozen
class RwLockStatistics:
    """A snapshot of an RwLock.

    Attributes:
        readers: Read guards held now.
        writer: Whether a write guard is held.
        tasks_waiting: Tasks queued for a read or write guard.
    """

    readers: int
    writer: bool
    tasks_waiting: int


@final
class RwLock(Generic[T]):
    """A value guarded for many readers or one writer.

    ``async with lock.read() as guard:`` reads ``guard.value``; ``async with lock.write() as
    guard:`` may also assign ``guard.value``. Guards can also be awaited (``guard = await
    lock.write()``) and released with ``guard.release()``.

    Args:
        value: The guarded value.
        max_readers: Readers allowed at once. Default ``2**30``, in effect unlimited.

    Raises:
        ValueError: ``max_readers`` is below 1.
    """

    __slots__ = ("_max_readers", "_readers", "_semaphore", "_value", "_writer")

    def __init__(self, value: T, *, max_readers: int = _MAX_READERS) -> None:
        if not isinstance(max_readers, int) or max_readers < 1:
            raise ValueError(f"max_readers must be an int >= 1, got {max_readers!r}")
        self._value = value
        self._max_readers = max_readers
        self._semaphore = Semaphore(max_readers)
        self._readers = 0
        self._writer = False

    def read(self) -> _Acquire[ReadGuard[T]]:
        """Wait for shared access.

        Returns:
            An awaitable async context manager giving a :class:`ReadGuard`.

        Cancellation: a cancelled wait holds nothing and leaves the queue.
        """
        return _Acquire(self, 1, ReadGuard)

    def write(self) -> _Acquire[WriteGuard[T]]:
        """Wait for exclusive access.

        Returns:
            An awaitable async context manager giving a :class:`WriteGuard`.

        Cancellation: a cancelled wait holds nothing and leaves the queue (readers queued
        behind it may then go ahead).
        """
        return _Acquire(self, self._max_readers, WriteGuard)

    def try_read(self) -> ReadGuard[T]:
        """Shared access if it is free now and no writer is queued.

        Raises:
            trio.WouldBlock: A writer holds or waits for the lock.
        """
        return ReadGuard(self, self._semaphore.try_acquire(1))

    def try_write(self) -> WriteGuard[T]:
        """Exclusive access if the lock is free now and nobody is queued.

        Raises:
            trio.WouldBlock: The lock is held or others are queued.
        """
        return WriteGuard(self, self._semaphore.try_acquire(self._max_readers))

    def statistics(self) -> RwLockStatistics:
        """A snapshot."""
        return RwLockStatistics(
            readers=self._readers,
            writer=self._writer,
            tasks_waiting=self._semaphore.statistics().tasks_waiting,
        )

    def __repr__(self) -> str:
        stats = self.statistics()
        return f"<RwLock readers={stats.readers} writer={stats.writer}>"


class ReadGuard(Generic[T]):
    """Shared access to an RwLock's value. Release once; a context manager releases on exit."""

    __slots__ = ("_lock", "_permit")

    def __init__(self, lock: RwLock[T], permit: SemaphorePermit) -> None:
        self._lock = lock
        self._permit = permit
        lock._readers += 1

    @property
    def value(self) -> T:
        """The guarded value."""
        self._check()
        return self._lock._value

    def _check(self) -> None:
        if not self._permit.permits:
            raise RuntimeError("this guard was released; acquire the lock again to use it")

    def release(self) -> None:
        """Give the access back. Idempotent."""
        if self._permit.permits:
            self._lock._readers -= 1
            self._permit.release()

    def __enter__(self) -> ReadGuard[T]:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


@final
class WriteGuard(ReadGuard[T]):
    """Exclusive access to an RwLock's value: ``guard.value`` can be assigned."""

    __slots__ = ()

    def __init__(self, lock: RwLock[T], permit: SemaphorePermit) -> None:
        self._lock = lock
        self._permit = permit
        lock._writer = True

    def release(self) -> None:
        """Give the access back. Idempotent."""
        if self._permit.permits:
            self._lock._writer = False
            self._permit.release()

    @property
    def value(self) -> T:
        """The guarded value; assign to replace it."""
        self._check()
        return self._lock._value

    @value.setter
    def value(self, value: T) -> None:
        self._check()
        self._lock._value = value

    def __enter__(self) -> WriteGuard[T]:
        return self


@final
class _Acquire(Generic[G]):
    """Awaitable, and an async context manager that releases the guard on exit."""

    __slots__ = ("_guard", "_kind", "_lock", "_n")

    def __init__(self, lock: RwLock[Any], n: int, kind: type[G]) -> None:
        self._lock = lock
        self._n = n
        self._kind = kind
        self._guard: G | None = None

    async def _acquire(self) -> G:
        permit = await self._lock._semaphore.acquire(self._n)
        return self._kind(self._lock, permit)

    def __await__(self) -> Generator[Any, None, G]:
        return self._acquire().__await__()

    async def __aenter__(self) -> G:
        self._guard = await self._acquire()
        return self._guard

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._guard is not None:
            self._guard.release()
