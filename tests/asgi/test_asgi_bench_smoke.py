"""benchmarks/asgi.py still runs, in its shortest mode, and prints its table and ratios.

It asserts the exit status, a row per server and app, and the ratio lines with a verdict,
never a number: the figures of a one-second run mean nothing.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARK = Path(__file__).resolve().parents[2] / "benchmarks" / "asgi.py"


@pytest.mark.timeout(120)
def test_the_asgi_benchmark_runs_in_smoke_mode_and_prints_ratios() -> None:
    if shutil.which("wrk") is None:
        if os.environ.get("CI"):
            pytest.fail("needs wrk: apt-get install -y wrk")
        pytest.skip("needs wrk: apt-get install -y wrk")
    proc = subprocess.run(
        [
            sys.executable,
            str(BENCHMARK),
            "--smoke",
            "--servers",
            "ours,hypercorn-trio,uvicorn-h11",
        ],
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr
    for label in ("ours raw", "hypercorn-trio raw", "uvicorn-h11 raw", "ours starlette"):
        assert re.search(rf"^\s+8  {re.escape(label)}\s+\d+ ", out, re.MULTILINE), (label, out)
    assert re.search(r"(PASS|MISS)  raw: ours vs hypercorn-trio @8: \d+\.\d+x \(>= 3x", out)
    assert re.search(r"(PASS|MISS)  raw: ours vs uvicorn-h11 @8: \d+\.\d+x \(>= 1x", out)
    assert re.search(r"----  starlette: ours vs uvicorn-h11 @8: \d+\.\d+x \(no target", out)
    assert "SMOKE RUN" in out
    assert "WARNING: ours" not in out  # ours drained and exited 0 after every run
