"""The tutorial's example programs run and print what the tutorial says."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run_example(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )


def test_first_program() -> None:
    out = run_example("first_program.py").stdout.splitlines()
    assert out == [
        "spawned load-config",
        "got config after 0.02s",
        "finished: orders after 0.01s",
        "finished: stock after 0.02s",
        "finished: users after 0.03s",
    ]
