"""benchmarks/sim.py still runs, in its shortest mode (its figures mean nothing this short)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

BENCHMARK = Path(__file__).resolve().parents[2] / "benchmarks" / "sim.py"


def test_the_simulator_benchmark_runs_and_prints_its_ratio() -> None:
    result = subprocess.run(
        [sys.executable, str(BENCHMARK), "--requests", "40", "--rounds", "1"],
        capture_output=True,
        text=True,
        timeout=50,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert re.search(r"ratio sim / loopback = \d+\.\d+", result.stdout), result.stdout
    assert re.search(r"sim\+faults covered \d+\.\d+ s of simulated time", result.stdout)
