"""What every channel endpoint shares: ``with`` closes it, and so (late, with a warning) does GC.

Dropping an endpoint is not closing it. An endpoint that is garbage-collected while still open
(a ``Sender`` nobody closed, a permit nobody released) emits a ``ResourceWarning``, like an
unclosed file, and is then closed *on the Trio run's own thread*, through
``TrioToken.run_sync_soon``. It is never closed from inside the finalizer: a finalizer runs at
any allocation, possibly in the middle of this very channel's bookkeeping, or in another
thread, and waking parked tasks (``trio.lowlevel.reschedule``) is only safe from the run. If
the finalizer runs where there is no Trio run (another thread, or after the run ended) the
endpoint is only reported, not closed. Garbage collection is also late (a reference cycle
delays it to the next collection) and is no part of the program's logic: close endpoints
explicitly, or use ``with``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING

import trio

if TYPE_CHECKING:
    from typing import Self


def close_dropped(endpoint: object, close: Callable[[], object]) -> None:
    """Report an endpoint garbage-collected while open, and close it from the run if there is one.

    Called from the ``__del__`` of the endpoint; ``close`` is what closing it takes.
    """
    try:
        warnings.warn(
            f"{endpoint!r} was garbage-collected without being closed; close it (or use "
            "`with`) when done, so that the other side learns at once",
            ResourceWarning,
            stacklevel=2,
            source=endpoint,
        )
        token = trio.lowlevel.current_trio_token()
    except Exception:  # no run in this thread, or the interpreter is shutting down
        return
    try:
        token.run_sync_soon(close)
    except trio.RunFinishedError:
        pass


class Closeable:
    """Mixin for an endpoint with a synchronous, idempotent ``close()``.

    ``with endpoint:`` and ``async with endpoint:`` both close it at the end of the block,
    whichever way the block ends. ``async with`` is there for code that treats channels like
    Trio's, whose endpoints are async resources; closing never blocks here.

    An endpoint garbage-collected while :meth:`_open_when_dropped` says closing it still
    matters gets a ``ResourceWarning`` and is closed from the Trio run (see the module notes).
    """

    __slots__ = ()

    def close(self) -> None:
        raise NotImplementedError

    def _open_when_dropped(self) -> bool:
        """Whether closing this endpoint would still change anything for the other side."""
        return False

    def __del__(self) -> None:
        try:
            if not self._open_when_dropped():
                return
        except Exception:  # half-built, or the interpreter is shutting down
            return
        close_dropped(self, self.close)

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
