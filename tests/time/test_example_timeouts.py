"""examples/timeouts.py prints what the tutorial says, with the timing it describes.

It runs in-process under MockClock, so its half-second waits take no real time.
"""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest
import trio
import trio.testing

import runtime

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "timeouts.py"

EXPECTED = [
    "fast: answered after 0.1s",
    "slow: gave up after 0.2s",
    "moved on without slow",
    "careful: said goodbye",
    "try 1: no answer within 0.1s, retrying",
    "try 2: no answer within 0.1s, retrying",
    "try 3: answered after 0.05s",
    "chunk 1 arrived, deadline moved",
    "chunk 2 arrived, deadline moved",
    "chunk 3 arrived, deadline moved",
    "download complete",
]


def test_timeouts_example(capsys: pytest.CaptureFixture[str]) -> None:
    example = runpy.run_path(str(EXAMPLE))  # not as __main__: we run main ourselves
    clock = trio.testing.MockClock(autojump_threshold=0)

    async def timed() -> float:
        await example["main"]()
        return trio.current_time()

    took = runtime.run(timed, clock=clock)
    out = capsys.readouterr()
    assert out.out.splitlines() == EXPECTED
    assert out.err == ""
    # 0.2 (hard limit) + 0.2 (soft) + 0.2 + 0.01 (cleanup) + 0.25 (two tries and an answer)
    # + 0.6 (three chunks), each step at most a tick late.
    assert took == pytest.approx(1.46, abs=0.01)
