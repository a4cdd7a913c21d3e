"""docs/tutorial/tls.md, run as written: every command of its console blocks, every line shown.

The page's commands run in order in a temporary directory that stands for the checkout's root
(``examples`` there is a link to the real one), as a learner would type them. Only three
things may differ from what the page shows: the port (the page says 7000, the test asks for a
free one), the checkout's path (``/home/you/trio-runtime`` on the page) and the client's
timings. The server is the one long-running command: it runs in the background while the
rest of the page runs, and at the end it gets SIGTERM, by its pid, and must exit 0.
"""

from __future__ import annotations

import re
import select
import shlex
import signal
import socket
import ssl
import subprocess
import sys
from pathlib import Path

import attrs
import pytest
import trustme

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "tutorial" / "tls.md"
EXAMPLES = ROOT / "examples"
CONSOLE = re.compile(r"^```console\n(.*?)^```", re.MULTILINE | re.DOTALL)
PAGE_PORT = "7000"
PAGE_ROOT = "/home/you/trio-runtime"
TIMINGS = re.compile(r" in [\d.]+s: \d+ msgs/s, p50 \d+ us, p99 \d+ us$")


@attrs.define
class Command:
    """One ``$`` line of the page and the lines shown under it."""

    line: str
    shown: list[str]


def page_commands(text: str) -> list[Command]:
    commands: list[Command] = []
    for block in CONSOLE.findall(text):
        for line in block.splitlines():
            if line.startswith("$ "):
                commands.append(Command(line[2:], []))
            else:
                assert commands, f"output before any command: {line!r}"
                commands[-1].shown.append(line)
    return commands


def normalized(lines: list[str], *, port: int | None, root: Path) -> list[str]:
    """The lines with the page's port and root replaced by this run's, and timings blanked."""
    out = []
    for line in lines:
        if port is not None:
            line = line.replace(f":{PAGE_PORT}", f":{port}")
        line = line.replace(PAGE_ROOT, str(root))
        out.append(TIMINGS.sub(" in Ts: N msgs/s, p50 N us, p99 N us", line))
    return out


def with_port(argv: list[str], port: int) -> list[str]:
    argv = list(argv)
    i = argv.index("--port")
    assert argv[i + 1] == PAGE_PORT, "the page's commands use port 7000"
    argv[i + 1] = str(port)
    return argv


class Session:
    """A learner's shell: a working directory, and the server running in the background."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.cwd = root
        self.server: subprocess.Popen[str] | None = None
        self.port: int | None = None
        self.ran: list[str] = []

    def run(self, command: Command) -> None:
        argv = shlex.split(command.line)
        self.ran.append(argv[0] if argv[0] != "python" else " ".join(argv[1:3]))
        if argv[0] == "mkdir" and len(argv) == 2:
            (self.cwd / argv[1]).mkdir()
            assert command.shown == []
        elif argv[0] == "cd" and len(argv) == 2:
            self.cwd = (self.cwd / argv[1]).resolve()
            assert command.shown == []
        elif argv[0] == "python" and argv[1].endswith("examples/echo_server.py"):
            self.start_server([sys.executable, *with_port(argv[1:], 0)], command.shown)
        elif argv[0] == "python":
            if "--port" in argv:
                assert self.port is not None, "a client command before the server started"
                argv = with_port(argv, self.port)
            self.check_output([sys.executable, *argv[1:]], command.shown)
        else:
            pytest.fail(f"the test does not know how to run {command.line!r}")

    def check_output(self, argv: list[str], shown: list[str]) -> None:
        done = subprocess.run(
            argv,
            cwd=self.cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,  # as one terminal shows them
            text=True,
            timeout=60,
        )
        got = normalized(done.stdout.splitlines(), port=self.port, root=self.root)
        assert got == normalized(shown, port=self.port, root=self.root), argv

    def start_server(self, argv: list[str], shown: list[str]) -> None:
        assert self.server is None, "the page starts one server"
        self.server = subprocess.Popen(
            argv, cwd=self.cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        assert self.server.stdout is not None
        ready, _, _ = select.select([self.server.stdout], [], [], 30)
        assert ready, "no listening line within 30 s"
        first = self.server.stdout.readline().rstrip("\n")
        match = re.fullmatch(r"listening on tls://127\.0\.0\.1:(\d+)", first)
        assert match, f"unexpected first line {first!r}"
        self.port = int(match[1])
        assert [first] == normalized(shown, port=self.port, root=self.root)

    def stop_server(self) -> tuple[int, str, str]:
        assert self.server is not None
        self.server.send_signal(signal.SIGTERM)  # by pid: the process this session started
        out, err = self.server.communicate(timeout=30)
        return self.server.returncode, out, err

    def kill_server(self) -> None:
        if self.server is not None and self.server.poll() is None:
            self.server.kill()
            self.server.communicate()


def test_page_has_the_commands_this_test_expects() -> None:
    """A guard: a page whose console blocks this test stopped finding would pass vacuously."""
    commands = page_commands(PAGE.read_text(encoding="utf-8"))
    lines = [c.line for c in commands]
    assert "python -m trustme" in lines
    assert sum("examples/echo_server.py" in line for line in lines) == 1
    assert sum("examples/echo_client.py" in line for line in lines) == 3
    assert all(c.shown for c in commands if "echo_" in c.line)


def test_tls_tutorial_runs_as_written(tmp_path: Path) -> None:
    (tmp_path / "examples").symlink_to(EXAMPLES, target_is_directory=True)
    session = Session(tmp_path)
    try:
        for command in page_commands(PAGE.read_text(encoding="utf-8")):
            session.run(command)
        assert session.server is not None, "the page never started the server"
        code, out, err = session.stop_server()
    finally:
        session.kill_server()
    assert code == 0
    assert out == "", "the server prints only its listening line"
    # "The server printed nothing" at the refused handshakes: they are DEBUG, and the only
    # log lines are those of the shutdown.
    lines = err.splitlines()
    assert lines and all(" INFO " in line for line in lines), err
    assert any("echo: drained" in line for line in lines), err


@pytest.fixture
def ca(tmp_path: Path) -> trustme.CA:
    """A CA, and its certificate for 127.0.0.1 as server.pem and server.key in tmp_path."""
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    (tmp_path / "server.pem").write_bytes(b"".join(pem.bytes() for pem in cert.cert_chain_pems))
    cert.private_key_pem.write_to_path(str(tmp_path / "server.key"))
    return ca


def test_tls_through_two_workers(tmp_path: Path, ca: trustme.CA) -> None:
    """--workers passes the certificate on: both workers serve TLS, and the line says tls."""
    server = subprocess.Popen(
        [
            sys.executable,
            str(EXAMPLES / "echo_server.py"),
            "--port",
            "0",
            "--workers",
            "2",
            "--banner",
            "--ssl-certfile",
            "server.pem",  # relative: the workers get it as an absolute path
            "--ssl-keyfile",
            "server.key",
        ],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        ready, _, _ = select.select([server.stdout], [], [], 30)
        assert ready, "no listening line within 30 s"
        match = re.fullmatch(r"listening on tls://127\.0\.0\.1:(\d+)\n", server.stdout.readline())
        assert match
        context = ssl.create_default_context()
        ca.configure_trust(context)
        pids: set[int] = set()
        for _ in range(200):
            raw = socket.create_connection(("127.0.0.1", int(match[1])), timeout=10)
            with context.wrap_socket(raw, server_hostname="127.0.0.1") as sock:
                banner = b""
                while not banner.endswith(b"\n"):
                    banner += sock.recv(100)
                sock.sendall(b"over tls\n")
                assert sock.recv(100) == b"over tls\n"
            pids.add(int(banner.split()[-1]))
            if len(pids) == 2:
                break
        assert len(pids) == 2, "connections were not spread over two TLS workers"
        server.send_signal(signal.SIGTERM)
        _, err = server.communicate(timeout=30)
        assert server.returncode == 0, err
    finally:
        if server.poll() is None:
            server.kill()
            server.communicate()


def test_a_certificate_that_cannot_be_loaded_is_one_line_and_status_1(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "echo_server.py"), "--ssl-certfile", "missing.pem"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.startswith("error: cannot load the certificate: "), done.stderr
    assert len(done.stderr.splitlines()) == 1


def test_keyfile_without_certfile_is_refused() -> None:
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "echo_server.py"), "--ssl-keyfile", "server.key"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "--ssl-keyfile needs --ssl-certfile" in done.stderr
