"""Helpers for the runtime.service tests."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
import trio

from runtime.rt import _coop


async def echo(request: Any) -> Any:
    """An inner service body that answers with its request, after a checkpoint."""
    await trio.lowlevel.checkpoint()
    return request


async def cancel_after(
    seconds: float, operation: Callable[[], Awaitable[Any]]
) -> trio.CancelScope:
    """Run ``operation`` and cancel it after ``seconds`` (by Trio's clock); return the scope."""
    with trio.move_on_after(seconds) as scope:
        await operation()
    return scope


@pytest.fixture
def budget_of_one() -> Iterator[None]:
    """Make every budgeted operation a schedule point, as Trio's own, for checkpoint tests."""
    previous = _coop.set_budget(1)
    yield
    _coop.set_budget(previous)
