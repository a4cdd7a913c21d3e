"""Guards the suite puts around its own tests (see ``conftest.pytest_runtest_call``)."""

from __future__ import annotations

import functools
import math
from collections.abc import Awaitable, Callable
from typing import Any

import trio


def failing_on_leaked_cancel(fn: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    """``fn`` (an async test), failing with AssertionError if a trio.Cancelled (or a group of
    nothing but) escapes it while no cancel scope around it is cancelled: some scope inside
    let its own cancellation out. A cancellation from outside (a crashed fixture) goes on."""

    @functools.wraps(fn)
    async def guarded(**kwargs: Any) -> Any:
        try:
            return await fn(**kwargs)
        except BaseException as exc:
            leaked = isinstance(exc, trio.Cancelled) or (
                isinstance(exc, BaseExceptionGroup) and exc.split(trio.Cancelled)[1] is None
            )
            if leaked and trio.current_effective_deadline() != -math.inf:
                raise AssertionError(
                    "a trio.Cancelled escaped the test although no scope around it was "
                    "cancelled: some cancel scope inside let its own cancellation out"
                ) from exc
            raise

    return guarded
