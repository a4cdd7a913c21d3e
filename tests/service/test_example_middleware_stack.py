"""examples/middleware_stack.py runs and prints what the tutorial says it prints."""

from __future__ import annotations

import importlib.util
import random
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import trio
import trio.testing

import runtime
from runtime.service import Elapsed, RetryOn, ServiceBuilder

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "middleware_stack.py"


def test_middleware_stack_example() -> None:
    result = subprocess.run(
        [sys.executable, str(EXAMPLE)], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.splitlines() == [
        "ada is on the pro plan",
        "grace is on the pro plan",
        "linus is on the pro plan",
        "3 answers took 4 backend calls",
        "slow-sam: gave up after 1 s",
        "5 concurrent answers, at most 2 in flight",
    ]
    assert result.stderr == ""


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("example_middleware_stack", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_try_this_swapping_timeout_and_retry_changes_nothing_until_retry_names_elapsed() -> None:
    """The tutorial's Try this: the swapped stack gives up after 1.0 s with one call while
    the policy names only Unavailable, and after 3.1 s with three once it names Elapsed."""
    example = _load()

    def swapped(backend: Any, errors: tuple[type[BaseException], ...]) -> Any:
        return (
            ServiceBuilder()
            .retry(RetryOn(errors, attempts=3), rng=random.Random(1))  # as build() seeds it
            .timeout(1.0)
            .concurrency_limit(2)
            .map_response(lambda profile: profile["user"])
            .service_fn(backend.fetch_profile)
        )

    results: list[str] = []

    async def main() -> None:
        for errors in [(example.Unavailable,), (example.Unavailable, Elapsed)]:
            backend = example.Backend()
            start = trio.current_time()
            with pytest.raises(Elapsed):
                await swapped(backend, errors)("slow-sam")
            results.append(f"{trio.current_time() - start:.1f} s, {backend.calls} calls")

    runtime.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    assert results == ["1.0 s, 1 calls", "3.1 s, 3 calls"]
    tutorial = (EXAMPLE.parents[1] / "docs" / "tutorial" / "middleware.md").read_text()
    assert "It *still* gives up\n  after 1.0 s, with one backend call." in tutorial
    assert "it gives up after 3.1 s" in tutorial and "after three backend calls" in tutorial
