"""What a program on the runtime exits with: real processes, real signals."""

from __future__ import annotations

import subprocess
import sys
import textwrap

EXIT_IN_TASK = """
import sys
import trio
import runtime

async def child() -> None:
    await trio.sleep(0)
    sys.exit(3)

async def main() -> None:
    await runtime.spawn(child)

runtime.run(main)
"""


def run_script(source: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(source)],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_sys_exit_in_a_spawned_task_is_the_process_exit_code() -> None:
    proc = run_script(EXIT_IN_TASK)
    assert proc.returncode == 3, proc.stderr
    assert "JoinError" not in proc.stderr
    assert "ExceptionGroup" not in proc.stderr
