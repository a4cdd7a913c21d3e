"""Import examples/mini_redis as the package ``mini_redis`` (the examples are not installed),
and run its server as a subprocess for the external clients (redis-py, redis-cli)."""

from __future__ import annotations

import importlib.util
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "mini_redis"

if "mini_redis" not in sys.modules:
    _spec = importlib.util.spec_from_file_location(
        "mini_redis", EXAMPLE / "__init__.py", submodule_search_locations=[str(EXAMPLE)]
    )
    assert _spec is not None and _spec.loader is not None
    _module = importlib.util.module_from_spec(_spec)
    sys.modules["mini_redis"] = _module
    _spec.loader.exec_module(_module)


# -- the server as a subprocess, for the external clients ---------------------------------------

SERVER = EXAMPLE / "server.py"
START_TIMEOUT = 30.0


class LineReader:
    """Lines from a pipe, each read with a deadline (select + os.read, nothing buffered
    out of sight)."""

    def __init__(self, pipe: object) -> None:
        self.fd = pipe.fileno()  # type: ignore[attr-defined]
        self.buffer = b""

    def line(self, timeout: float = 10.0) -> str:
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.fd], [], [], left)[0]:
                raise TimeoutError(f"no line within {timeout} s (so far: {self.buffer!r})")
            chunk = os.read(self.fd, 65536)
            if not chunk:
                raise EOFError(f"the pipe closed (so far: {self.buffer!r})")
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line.decode().rstrip("\r")


class ServerProcess:
    """examples/mini_redis/server.py in a subprocess, on a free port."""

    def __init__(self, *args: str) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 (closed in stop())
        self.proc = subprocess.Popen(
            [sys.executable, str(SERVER), "--port", "0", *args],
            stdout=subprocess.PIPE,
            stderr=self.log,
            env=env,
        )
        line = LineReader(self.proc.stdout).line(START_TIMEOUT)
        match = re.fullmatch(r"listening on tcp://127\.0\.0\.1:(\d+)", line)
        assert match, line
        self.port = int(match.group(1))

    def stop(self) -> tuple[int, str]:
        """SIGTERM, then the exit status and everything it wrote to stderr."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        assert self.proc.stdout is not None
        self.proc.stdout.close()
        self.log.seek(0)
        err = self.log.read().decode(errors="replace")
        self.log.close()
        return self.proc.returncode, err


@pytest.fixture
def mini_redis_server() -> Iterator[ServerProcess]:
    server = ServerProcess()
    try:
        yield server
    finally:
        status, err = server.stop()
        assert status == 0, err
        assert "Traceback" not in err, err


def need_tool(name: str, package: str) -> str:
    """The tool's path; skips with the apt-get line, or fails under CI."""
    path = shutil.which(name)
    if path is None:
        message = f"needs {name}: apt-get install {package}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path
