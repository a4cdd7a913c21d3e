"""Helpers for the runtime.sync tests."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
import trio

from runtime.rt import _coop


@pytest.fixture
def set_budget() -> Iterator[Callable[[int], object]]:
    """Set the cooperative budget for one test; the previous one comes back afterwards."""
    previous = _coop.budget()
    yield _coop.set_budget
    _coop.set_budget(previous)


async def raises_cancelled(operation: Callable[[], Awaitable[Any]]) -> None:
    """Run ``operation`` inside an already-cancelled scope and check it raised Cancelled."""
    with trio.CancelScope() as scope:
        scope.cancel()
        await operation()
        raise AssertionError("the operation completed inside a cancelled scope")
    assert scope.cancelled_caught
