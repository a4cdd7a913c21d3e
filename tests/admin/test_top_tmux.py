"""``python -m runtime top`` in a real terminal (tmux) against the live demo.

The demo runs as a process of its own and prints its admin address; one TCP connection to its
echo port gives it a connection task. ``top`` runs in a tmux session of a tmux server of our
own (``tmux -L``): the test reads the screen with ``capture-pane`` until the tree shows that
connection, moves the cursor onto it, opens its await stack, closes it and quits with ``q``;
the shell in the session writes top's exit status to a file.

Skipped when tmux is missing (``apt-get install -y tmux``), except under CI=true, where that
fails.
"""

from __future__ import annotations

import os
import re
import select
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent
TMUX = shutil.which("tmux")
GUARD = 10.0  # seconds; a hang guard for each wait on the other processes, not a claim
ADMIN = re.compile(r"^admin on http://(127\.0\.0\.1:\d+)$")
ECHO = re.compile(r"^listening on tcp://127\.0\.0\.1:(\d+)$")


def _need(what: str, why: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{what} is missing; the CI run must have it ({why})")
    pytest.skip(f"{what} is missing: {why}")


def demo_lines(fd: int) -> Iterator[str]:
    """The lines a process prints, read unbuffered (a buffered reader would hide lines from
    ``select``), all within the guard."""
    pending = b""
    deadline = time.monotonic() + GUARD
    while True:
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        assert ready, "the demo printed no admin line"
        chunk = os.read(fd, 4096)
        assert chunk, "the demo exited before its admin line"
        pending += chunk
        *complete, pending = pending.split(b"\n")
        for line in complete:
            yield line.decode()


class Demo:
    """The demo as a process: its admin HOST:PORT and echo port; SIGINT must end it with 0."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "runtime",
                "demo",
                "--port",
                "0",
                "--chat-port",
                "0",
                "--http-port",
                "0",
                "--admin-port",
                "0",
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        assert self.proc.stdout is not None
        lines = demo_lines(self.proc.stdout.fileno())
        admin, echo = None, None
        while admin is None:
            line = next(lines)
            if match := ECHO.match(line):
                echo = int(match[1])
            if match := ADMIN.match(line):
                admin = match[1]
        assert echo is not None
        self.admin, self.echo_port = admin, echo

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        assert self.proc.wait(timeout=GUARD) == 0


@pytest.fixture
def demo() -> Iterator[Demo]:
    if TMUX is None:
        _need("tmux", "apt-get install -y tmux")
    d = Demo()
    try:
        yield d
        d.stop()
    finally:
        if d.proc.poll() is None:
            d.proc.kill()
            d.proc.wait()


class Tmux:
    """A tmux server of our own (``-L name``) with one session of 160x48."""

    def __init__(self, command: str) -> None:
        self.name = f"runtime-top-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.env = {**os.environ, "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8"}
        self.env.pop("TMUX", None)  # also when the suite itself runs inside tmux
        self.run("new-session", "-d", "-x", "160", "-y", "48", command)

    def run(self, *args: str) -> str:
        done = subprocess.run(
            [str(TMUX), "-L", self.name, *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=GUARD,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    def screen(self) -> str:
        return self.run("capture-pane", "-p")

    def keys(self, *keys: str) -> None:
        self.run("send-keys", *keys)

    def wait_for(self, what: str, condition: Callable[[str], bool]) -> str:
        """Poll the screen until ``condition`` holds (bounded: the view is another process)."""
        deadline = time.monotonic() + GUARD
        screen = ""
        while time.monotonic() < deadline:
            screen = self.screen()
            if condition(screen):
                return screen
            time.sleep(0.05)
        raise AssertionError(f"the screen never showed {what}:\n{screen}")

    def kill(self) -> None:
        subprocess.run(
            [str(TMUX), "-L", self.name, "kill-server"], env=self.env, capture_output=True
        )


def top_in_tmux(admin: str, status: Path) -> Tmux:
    """``python -m runtime top`` in a tmux session; its exit status goes to ``status``."""
    return Tmux(
        f"cd {shlex.quote(str(ROOT))} && {shlex.quote(sys.executable)} -m runtime top"
        f" --admin {admin} --interval 0.5; echo $? > {shlex.quote(str(status))}"
    )


def exit_status(status: Path) -> str:
    deadline = time.monotonic() + GUARD
    while not status.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return status.read_text().strip()


def test_top_shows_the_demo_s_tree_and_a_connection_s_stack(demo: Demo, tmp_path: Path) -> None:
    status = tmp_path / "status"
    with socket.create_connection(("127.0.0.1", demo.echo_port), timeout=GUARD) as conn:
        conn.sendall(b"ping\n")
        assert conn.recv(16) == b"ping\n"  # served: its connection task exists now
        peer = f"echo: peer 127.0.0.1:{conn.getsockname()[1]}"
        tmux = top_in_tmux(demo.admin, status)
        try:
            screen = tmux.wait_for(
                "the echo connection and the figures", lambda s: peer in s and "requests/s" in s
            )
            lines = screen.splitlines()
            assert "sort: id" in lines[0] and f"http://{demo.admin}" in lines[0]
            assert "runtime" in lines[2] and "root" in lines[2]  # the first row: the root
            assert "Server._accept_loop" in screen and "TimerWheel.serve" in screen
            assert "connections active" in screen
            row = next(i for i, line in enumerate(lines) if peer in line)
            task_id = lines[row].split()[0]
            tmux.keys(*["Down"] * (row - 2))  # rows start on the third line
            tmux.keys("Enter")
            stack = tmux.wait_for("the stack", lambda s: "Escape closes" in s)
            assert f"await stack of task {task_id}: connection" in stack, stack
            assert re.search(r"runtime/net/_server\.py:\d+ in Server\._connection", stack), stack
            tmux.keys("Escape")
            tmux.wait_for("the tree again", lambda s: "Escape closes" not in s and peer in s)
            tmux.keys("q")
            assert exit_status(status) == "0"
        finally:
            tmux.kill()


def test_top_says_when_the_process_is_gone_and_ctrl_c_leaves_it(
    demo: Demo, tmp_path: Path
) -> None:
    status = tmp_path / "status"
    tmux = top_in_tmux(demo.admin, status)
    try:
        tmux.wait_for("the tree", lambda s: "TimerWheel.serve" in s)
        demo.stop()
        screen = tmux.wait_for("the endpoint gone", lambda s: "cannot reach" in s)
        assert "(connection refused)" in screen and "retrying every 0.5 s" in screen
        assert "TimerWheel.serve" in screen  # the last tree stays
        tmux.keys("C-c")
        assert exit_status(status) == "0"
    finally:
        tmux.kill()
