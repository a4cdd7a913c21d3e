"""examples/middleware_stack.py runs and prints what the tutorial says it prints."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

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
