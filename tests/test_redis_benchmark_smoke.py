"""benchmarks/redis.py still runs, in its shortest mode: both servers, both modes, the ratios.

It asserts an exit status of 0 (mini-redis drained on SIGTERM) and the lines the report is
made of, never a figure: the numbers of a run this short mean nothing.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "redis.py"


@pytest.mark.timeout(120)
def test_redis_benchmark_smoke() -> None:
    for tool in ("redis-benchmark", "redis-server"):
        if shutil.which(tool) is None:
            message = f"needs {tool}: apt-get install redis-tools redis-server"
            if os.environ.get("CI"):
                pytest.fail(message)
            pytest.skip(message)
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--smoke"],
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr
    for test in ("PING_INLINE", "PING_MBULK", "SET", "GET"):
        for server in ("mini-redis", "redis-server"):
            assert re.search(rf"^  {test} +{server} +\d+ ", out, re.MULTILINE), (test, server)
        assert re.search(rf"(PASS|MISS)  mini-redis/redis-server {test} -P 1: \d+\.\d+x", out)
        assert re.search(rf"(PASS|MISS)  mini-redis {test} -P 16 / -P 1: \d+\.\d+x", out)
    assert re.search(r"\d+% +\d+%", out)  # the client's and the server's CPU
    assert "SMOKE RUN" in out
