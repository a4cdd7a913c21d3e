"""The worker supervisor, in-process: start, crash-loop backoff, restart cap, grace then SIGKILL.

The supervisor runs in this test's Trio run; the workers are small real Python processes whose
behaviour each test scripts (they never open a socket: the supervisor only needs their ready
line and their exit). Backoffs are kept to milliseconds; every wait is bounded by fail_after.
"""

from __future__ import annotations

import logging
import signal
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import trio

import runtime
from runtime.net import Supervisor, run_workers

READY = 'print("listening on tcp://127.0.0.1:%s" % sys.argv[1], flush=True)'

# Exits 0 on SIGTERM, like a worker that drained.
GOOD = f"""
import signal, sys, time
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
{READY}
while True:
    time.sleep(1)
"""

# Dies before its ready line.
DIES_EARLY = "import sys; sys.exit(3)"

# Dies before its ready line the first N times (counted in a file), then behaves.
FLAKY = f"""
import signal, sys, time
from pathlib import Path
count = Path(sys.argv[2])
n = int(count.read_text()) if count.exists() else 0
count.write_text(str(n + 1))
if n < int(sys.argv[3]):
    sys.exit(4)
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
{READY}
while True:
    time.sleep(1)
"""

# Ignores SIGTERM: only SIGKILL stops it.
STUBBORN = f"""
import signal, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
{READY}
while True:
    time.sleep(1)
"""


def argv(code: str, *extra: str) -> Callable[[int, int], list[str]]:
    def make(index: int, port: int) -> list[str]:
        return [sys.executable, "-c", code, str(port), *extra]

    return make


def quick(worker_argv: Callable[[int, int], list[str]], **kwargs: object) -> Supervisor:
    options: dict[str, object] = {
        "workers": 2,
        "host": "127.0.0.1",
        "port": 0,
        "grace": 2.0,
        "restart_backoff": 0.01,
        "max_backoff": 0.04,
        "restart_window": 60.0,
        "max_restarts": 3,
        "ready_timeout": 10.0,
    }
    options.update(kwargs)
    return Supervisor(worker_argv, **options)  # type: ignore[arg-type]


async def supervise(supervisor: Supervisor, until: Callable[[], bool]) -> None:
    """Run the supervisor in a runtime until ``until()`` holds, then shut it down."""
    config = runtime.RuntimeConfig(handle_signals=False, shutdown_grace=5.0)
    async with runtime.open_runtime(config) as rt:
        handle = runtime.spawn(supervisor.run)
        with trio.fail_after(20):
            while not until() and not handle.done():
                await supervisor.wait_changed()
        rt.shutdown()
        with trio.fail_after(20):
            await handle


async def test_workers_start_and_stop_cleanly(capsys: pytest.CaptureFixture[str]) -> None:
    supervisor = quick(argv(GOOD))
    await supervise(supervisor, lambda: all(supervisor.pids()))
    out = capsys.readouterr().out
    assert out.count("listening on tcp://127.0.0.1:") == 1
    assert supervisor.port != 0 and f":{supervisor.port}" in out
    assert not supervisor.gave_up
    for worker in supervisor.workers:
        assert worker.process is not None and worker.process.returncode == 0


async def test_a_worker_that_dies_before_ready_is_retried_not_fatal(tmp_path: Path) -> None:
    count = tmp_path / "count"
    supervisor = quick(argv(FLAKY, str(count), "2"), workers=1)
    await supervise(supervisor, lambda: supervisor.restarts() == [2])
    assert not supervisor.gave_up
    assert int(count.read_text()) == 3  # two early deaths, then a worker that stayed up
    worker = supervisor.workers[0]
    assert worker.process is not None and worker.process.returncode == 0


async def test_a_crash_loop_hits_the_restart_cap_and_gives_up(
    caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.INFO, logger="runtime.net.workers")
    supervisor = quick(argv(DIES_EARLY), workers=1, max_restarts=3)
    await supervise(supervisor, lambda: supervisor.gave_up)
    assert supervisor.gave_up
    assert supervisor.restarts() == [3]
    assert "listening on" not in capsys.readouterr().out  # never ready: no line
    assert any("giving up" in r.getMessage() for r in caplog.records)


async def test_the_backoff_doubles_between_quick_crashes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="runtime.net.workers")
    supervisor = quick(
        argv(DIES_EARLY), workers=1, max_restarts=4, restart_backoff=0.01, max_backoff=0.04
    )
    await supervise(supervisor, lambda: supervisor.gave_up)
    pauses = [r.args[1] for r in caplog.records if r.getMessage().startswith("restarting")]
    assert pauses == [0.01, 0.02, 0.04, 0.04]  # type: ignore[comparison-overlap]


async def test_a_crash_after_ready_restarts_that_worker_only() -> None:
    supervisor = quick(argv(GOOD))
    first: list[int | None] = []

    def crashed_and_back() -> bool:
        pids = supervisor.pids()
        if not first and all(pids):
            first.extend(pids)
            process = supervisor.workers[0].process
            assert process is not None
            process.send_signal(signal.SIGKILL)
        return bool(first) and supervisor.restarts() == [1, 0] and all(supervisor.pids())

    await supervise(supervisor, crashed_and_back)
    assert supervisor.pids()[0] != first[0]
    assert supervisor.pids()[1] == first[1]
    assert not supervisor.gave_up


async def test_a_worker_that_ignores_sigterm_is_killed_after_the_grace(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="runtime.net.workers")
    supervisor = quick(argv(STUBBORN), workers=1, grace=0.2)
    await supervise(supervisor, lambda: all(supervisor.pids()))
    worker = supervisor.workers[0]
    assert worker.process is not None and worker.process.returncode == -signal.SIGKILL
    assert any("killing" in r.getMessage() for r in caplog.records)


def test_run_workers_returns_1_when_the_supervisor_gives_up() -> None:
    code = run_workers(
        argv(DIES_EARLY), workers=1, host="127.0.0.1", port=0, grace=0.5, max_restarts=1
    )
    assert code == 1
