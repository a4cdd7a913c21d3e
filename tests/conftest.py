"""Fixtures shared by the whole suite."""

from __future__ import annotations

import inspect
import os
import random
import sys
from collections.abc import AsyncIterator, Generator, Iterator
from pathlib import Path

import hypothesis
import pytest

import runtime
from runtime import RuntimeConfig

sys.path.insert(0, str(Path(__file__).parent))  # the suite's own helpers: _tryit
from _guards import failing_on_leaked_cancel
from _tryit import Examples

# Hypothesis explores fresh examples on every run (no derandomize), from a seed printed in the
# header so a failure found in CI can be replayed: pytest --hypothesis-seed=N. A failure that
# was found gets pinned with @example in its test.
hypothesis.settings.register_profile("ci", print_blob=True)
if os.environ.get("CI"):
    hypothesis.settings.load_profile("ci")


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("hypothesis_seed", None) is None:
        config.option.hypothesis_seed = random.getrandbits(32)


def pytest_report_header(config: pytest.Config) -> str:
    seed = config.getoption("hypothesis_seed")
    reactor = os.environ.get("TRIO_RUNTIME_REACTOR") or "epoll"
    return f"hypothesis seed: {seed} (replay: --hypothesis-seed={seed}); reactor: {reactor}"


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    """Make a trio.Cancelled that leaks out of an async test fail it.

    pytest-trio runs each test inside a nursery whose cancel scope it cancels on the way
    out, and that scope swallows a Cancelled the test let escape, so a cancel scope that
    leaked its own cancellation (a context manager's ``__exit__`` returning the wrong value)
    made the test pass whatever its assertions said. This wrapper runs before pytest-trio's
    (``tryfirst``) and guards the test function it is about to wrap.
    """
    fn = getattr(item, "obj", None)
    if (
        item.get_closest_marker("trio") is not None
        and inspect.iscoroutinefunction(fn)
        and not hasattr(fn, "hypothesis")
    ):
        item.obj = failing_on_leaked_cancel(fn)  # type: ignore[attr-defined]
    yield


@pytest.fixture
async def rt() -> AsyncIterator[runtime.Runtime]:
    """A runtime for one test, without signal handling (the test runner owns the signals)."""
    async with runtime.open_runtime(RuntimeConfig(handle_signals=False, shutdown_grace=1.0)) as r:
        yield r


@pytest.fixture
def examples() -> Iterator[Examples]:
    """Example servers started as processes (``examples.start(script, *args)``), killed at
    the end of the test."""
    started = Examples()
    yield started
    started.stop_all()
