"""What a program on the runtime exits with: real processes, real signals."""

from __future__ import annotations

import signal
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


SLEEPER = """
import sys
import trio
import runtime

async def main() -> None:
    print("ready", flush=True)
    await trio.sleep_forever()

runtime.run(main, config=runtime.RuntimeConfig(shutdown_grace=600))
"""

DRAINER = """
import sys
import trio
import runtime

async def main() -> None:
    rt = runtime.current()
    print("ready", flush=True)
    await rt.shutdown_requested()
    await trio.sleep(0.01)  # finish in-flight work
    print("drained", flush=True)

runtime.run(main, config=runtime.RuntimeConfig(shutdown_grace=600))
"""


def interrupt(source: str, sig: int = signal.SIGINT) -> tuple[int, str, str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(source)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == "ready\n"
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=20)  # far below the 600 s grace
    finally:
        proc.kill()
    return proc.returncode, out, err


def test_ctrl_c_stops_a_script_that_drains_nothing_at_once_with_keyboard_interrupt() -> None:
    code, _, err = interrupt(SLEEPER)
    assert code in (-signal.SIGINT, 128 + signal.SIGINT), err
    assert "KeyboardInterrupt" in err


def test_sigterm_stops_a_script_that_drains_nothing_with_shutdown_error() -> None:
    code, _, err = interrupt(SLEEPER, signal.SIGTERM)
    assert code == 1, err
    assert "ShutdownError" in err


def test_ctrl_c_lets_a_draining_main_return_and_exit_zero() -> None:
    code, out, err = interrupt(DRAINER)
    assert code == 0, err
    assert out == "drained\n"
