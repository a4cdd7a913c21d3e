"""Run a background loop for the length of an ``async with`` block, with plain exceptions.

``open_buffer`` and ``open_balance`` own a task (workers, discovery) for as long as their block
runs. A nursery around the block would wrap anything the block raises in an ExceptionGroup;
here a group holding a single exception is unwrapped, so ``except ValueError`` around the
block still works.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import trio


def _single(group: BaseExceptionGroup[BaseException]) -> BaseException:
    exc: BaseException = group
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


@asynccontextmanager
async def running(serve: Callable[..., Awaitable[Any]], *args: Any) -> AsyncIterator[None]:
    """Start ``serve(*args, task_status=...)`` with ``nursery.start``; cancel it on exit.

    Cancellation:
        Leaving the block, by any route, cancels ``serve`` and waits for it to end.
    """
    error: BaseException | None = None
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(serve, *args)
            try:
                yield
            finally:
                nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        error = _single(group)
        if error is group:
            raise
    if error is not None:
        raise error
