"""docs/tutorial/asgi.md as a learner runs it: every command of its console blocks, in order,
with the output the page shows (the port replaced by the one the server picked)."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "tutorial" / "asgi.md"
CONSOLE = re.compile(r"^```console\n(.*?)^```", re.MULTILINE | re.DOTALL)
PAGE_PORT = "8000"


def page_commands() -> list[tuple[str, list[str]]]:
    commands: list[tuple[str, list[str]]] = []
    for block in CONSOLE.findall(PAGE.read_text(encoding="utf-8")):
        for line in block.splitlines():
            if line.startswith("$ "):
                commands.append((line[2:], []))
            else:
                commands[-1][1].append(line)
    return commands


def test_the_page_runs_as_written() -> None:
    if shutil.which("curl") is None:
        if os.environ.get("CI"):
            pytest.fail("needs curl: apt-get install -y curl")
        pytest.skip("needs curl: apt-get install -y curl")
    server: subprocess.Popen[str] | None = None
    port = ""
    logs: list[str] = []

    def stop() -> None:
        assert server is not None
        server.send_signal(signal.SIGTERM)
        _, err = server.communicate(timeout=30)
        assert server.returncode == 0, err
        logs.append(err)

    commands = page_commands()
    assert [c.split()[0] for c, _ in commands] == [
        "python",
        "curl",
        "curl",
        "curl",
        "python",
        "curl",
    ]
    try:
        for line, shown in commands:
            argv = shlex.split(line)
            if argv[0] == "python":
                if server is not None:
                    stop()
                i = argv.index("--port")
                argv[i + 1] = "0"
                server = subprocess.Popen(
                    [sys.executable, *argv[1:]],
                    cwd=ROOT,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                )
                assert server.stdout is not None
                first = server.stdout.readline().rstrip("\n")
                port = first.rsplit(":", 1)[1]
                assert [first.replace(f":{port}", f":{PAGE_PORT}")] == shown
            else:
                argv = [a.replace(f":{PAGE_PORT}/", f":{port}/") for a in argv]
                done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=30)
                assert done.stdout.splitlines() == shown, line
        stop()
    finally:
        if server is not None and server.poll() is None:
            server.kill()
            server.communicate()
    first_run, try_this = logs
    assert '"PUT /notes/tea HTTP/1.1" 201' in first_run  # the access log the page mentions
    assert "/notes/big" not in try_this  # the 413: Starlette was never called
