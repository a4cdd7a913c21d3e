"""Fixtures shared by the whole suite."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

import runtime
from runtime import RuntimeConfig


@pytest.fixture
async def rt() -> AsyncIterator[runtime.Runtime]:
    """A runtime for one test, without signal handling (the test runner owns the signals)."""
    async with runtime.open_runtime(RuntimeConfig(handle_signals=False, shutdown_grace=1.0)) as r:
        yield r
