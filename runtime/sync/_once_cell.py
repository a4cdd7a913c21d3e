"""OnceCell: a value set at most once, initialised by the first task that asks for it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar, final, overload

from ._lowlevel import NO_VALUE, checkpoint, try_consume_budget
from ._semaphore import Semaphore

__all__ = ["OnceCell"]

T = TypeVar("T")
D = TypeVar("D")


@final
class OnceCell(Generic[T]):
    """A value that is set once, lazily and concurrency-safely.

    ``await cell.get_or_init(connect)`` runs ``connect`` in the first task that asks; tasks
    that ask meanwhile wait for that result instead of connecting too. If the initialiser
    raises or is cancelled, the cell stays empty and the next waiter (in arrival order) tries.

    Args:
        value: An initial value; omit it for an empty cell.
    """

    __slots__ = ("_lock", "_value")

    @overload
    def __init__(self) -> None: ...

    @overload
    def __init__(self, value: T) -> None: ...

    def __init__(self, value: Any = NO_VALUE) -> None:
        self._value: Any = value
        self._lock = Semaphore(1)

    def initialized(self) -> bool:
        """Whether the cell holds a value."""
        return self._value is not NO_VALUE

    @overload
    def get(self) -> T | None: ...

    @overload
    def get(self, default: D) -> T | D: ...

    def get(self, default: Any = None) -> Any:
        """The value, or ``default`` if the cell is empty."""
        value = self._value
        return default if value is NO_VALUE else value

    def set(self, value: T) -> None:
        """Set the value now.

        Raises:
            RuntimeError: The cell already holds a value (or an initialiser is running).
        """
        if self._value is not NO_VALUE or self._lock.available_permits() == 0:
            raise RuntimeError(
                "OnceCell is already initialised (or being initialised); it can be set once"
            )
        self._value = value

    async def get_or_init(self, init: Callable[[], Awaitable[T]]) -> T:
        """The value, running ``init`` first if the cell is empty.

        Only one ``init`` runs at a time; the others wait for it and then return its value.

        Args:
            init: An async function of no arguments that produces the value.

        Returns:
            The cell's value.

        Raises:
            Exception: Whatever ``init`` raises (the cell stays empty).

        Cancellation: cancelling a waiter leaves the cell as it was; cancelling the task that
        runs ``init`` cancels ``init`` and leaves the cell empty for the next waiter.
        """
        if self._value is not NO_VALUE:
            if not try_consume_budget():
                await checkpoint()
            return self._value  # type: ignore[no-any-return]
        async with self._lock:
            if self._value is NO_VALUE:
                self._value = await init()
            return self._value  # type: ignore[no-any-return]

    def __repr__(self) -> str:
        shown = "<empty>" if self._value is NO_VALUE else repr(self._value)
        return f"<OnceCell {shown}>"
