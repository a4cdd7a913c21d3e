"""What every channel endpoint shares: leaving a ``with`` (or ``async with``) block closes it."""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Self


class Closeable:
    """Mixin for an endpoint with a synchronous, idempotent ``close()``.

    ``with endpoint:`` and ``async with endpoint:`` both close it at the end of the block,
    whichever way the block ends. ``async with`` is there for code that treats channels like
    Trio's, whose endpoints are async resources; closing never blocks here.
    """

    __slots__ = ()

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
