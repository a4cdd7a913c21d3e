"""The console sessions of docs/tutorial/mini-redis.md, run against a real mini-redis.

Every ```console block is a session: ``$ command`` lines and the output each prints. The
server's own line is compared with what the server printed; every other command runs, in the
order the page shows them, against one server (the page's port 6380 replaced by its port),
and its output must be exactly what the page shows. (The page's ```python blocks are run by
tests/test_docs.py.)
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from .conftest import ServerProcess, need_tool

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "tutorial" / "mini-redis.md"
CONSOLE = re.compile(r"^```console\n(.*?)^```", re.MULTILINE | re.DOTALL)
SERVER_COMMAND = "python examples/mini_redis/server.py --port 6380"
DOC_PORT = "6380"


def sessions() -> list[tuple[str, str]]:
    """(command, shown output) for every command of every console block, in page order."""
    found = []
    for block in CONSOLE.findall(PAGE.read_text()):
        for chunk in re.split(r"^\$ ", block, flags=re.MULTILINE)[1:]:
            command, _, output = chunk.partition("\n")
            found.append((command, output))
    return found


def test_the_page_shows_sessions() -> None:
    commands = [command for command, _ in sessions()]
    assert commands[0] == SERVER_COMMAND
    assert len(commands) > 10
    assert any("redis-cli" in command for command in commands)


def test_every_console_session_prints_what_the_page_shows(
    mini_redis_server: ServerProcess,
) -> None:
    need_tool("redis-cli", "redis-tools")
    port = str(mini_redis_server.port)
    for command, shown in sessions():
        if command == SERVER_COMMAND:
            assert shown == f"listening on tcp://127.0.0.1:{DOC_PORT}\n"
            continue
        assert DOC_PORT in command, command
        argv = command.replace(DOC_PORT, port).replace("python ", f"{sys.executable} ", 1)
        proc = subprocess.run(
            ["bash", "-c", argv], cwd=ROOT, capture_output=True, text=True, timeout=30
        )
        assert proc.stdout == shown, (command, proc.stderr)
        # our client exits 1 after an error reply, and redis-cli --pipe after any error
        failed = shown.startswith("(error)") or re.search(r"errors: [1-9]", shown)
        assert proc.returncode == (1 if failed else 0), command
