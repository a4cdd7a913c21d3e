"""Black-box tests of examples/echo_server.py: a real process, real sockets, real signals."""

from __future__ import annotations

import os
import re
import select
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "examples" / "echo_server.py"
LISTENING = re.compile(r"^listening on tcp://127\.0\.0\.1:(\d+)$")


class EchoProcess:
    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(SCRIPT), "--port", "0", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], 30)
        assert ready, "no listening line within 30 s"
        line = self.proc.stdout.readline().strip()
        match = LISTENING.match(line)
        assert match, f"unexpected first line {line!r}"
        self.port = int(match[1])

    def stop(self, sig: int = signal.SIGTERM) -> tuple[int, str]:
        self.proc.send_signal(sig)
        _, err = self.proc.communicate(timeout=30)
        return self.proc.returncode, err


@pytest.fixture
def server() -> Iterator[EchoProcess]:
    p = EchoProcess()
    yield p
    if p.proc.poll() is None:
        p.proc.kill()
        p.proc.communicate()


def test_echoes_and_exits_zero_on_sigint(server: EchoProcess) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"hello echo\n")
        assert sock.recv(100) == b"hello echo\n"
    code, _ = server.stop(signal.SIGINT)
    assert code == 0


# A client keeps at most this many bytes unanswered (sent but not echoed yet). The drain ends
# the server's input, and bytes in flight then are discarded by design (the server answers
# everything it has *read*), so the window bounds what may legitimately be missing. It is
# larger than one server read (64 KiB), so a reply the server read and lost cannot stall the
# client: more echoes follow it, and the gap shows.
WINDOW = 4 * 65536


@attrs.define
class DrainClient:
    """One client of the SIGTERM test: what it sent, what came back and how it ended."""

    index: int
    sent: bytearray = attrs.field(factory=bytearray)
    received: bytearray = attrs.field(factory=bytearray)
    ended: str = "not started"  # "eof", or the failure that ended it

    def run(self, port: int, started: threading.Barrier, loaded: threading.Barrier) -> None:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
                started.wait(timeout=30)
                self.ended = self._stream(sock, loaded)
        except threading.BrokenBarrierError:
            self.ended = "another client failed"
        except ConnectionResetError as exc:
            self.ended = f"reset: {exc!r}"
        except OSError as exc:  # BrokenPipeError, ...
            self.ended = f"socket error: {exc!r}"

    def _stream(self, sock: socket.socket, loaded: threading.Barrier) -> str:
        """Send numbered lines and read echoes at once (no deadlock on full buffers)."""
        sock.setblocking(False)
        line_no = 0
        pending = b""
        reported_load = False
        with selectors.DefaultSelector() as selector:
            selector.register(sock, selectors.EVENT_READ | selectors.EVENT_WRITE)
            while True:
                ready = selector.select(timeout=20)  # a hang guard, not a timing claim
                if not ready:
                    return "no progress for 20 s"
                events = ready[0][1]
                if events & selectors.EVENT_READ:
                    chunk = sock.recv(65536)  # a reset raises here: never taken for an end
                    if not chunk:
                        return "eof"
                    self.received += chunk
                    if not reported_load and self.received.count(b"\n") >= 50:
                        loaded.wait(timeout=30)
                        reported_load = True
                room = len(self.sent) - len(self.received) < WINDOW
                if events & selectors.EVENT_WRITE and (pending or room):
                    if not pending:
                        pending = b"client %d line %d\n" % (self.index, line_no)
                        line_no += 1
                    sent = sock.send(pending)  # a reset here is an error too
                    self.sent += pending[:sent]
                    pending = pending[sent:]
                room = len(self.sent) - len(self.received) < WINDOW
                wanted = selectors.EVENT_WRITE if pending or room else 0
                selector.modify(sock, selectors.EVENT_READ | wanted)


def test_sigterm_during_load_loses_no_read_message_and_resets_nothing(
    server: EchoProcess,
) -> None:
    """Clients stream numbered lines; mid-stream the server gets SIGTERM.

    Each client checks what it sent against what came back: the echo is exactly a prefix of
    what was sent (nothing skipped, reordered or garbled, so a lost reply followed by later
    ones shows as a gap), at most the unanswered window is missing (the bytes in flight when
    the drain ended the input), and the connection ended with a clean EOF, with no reset or
    error on any send or receive.

    What no client can see: a reply lost at the very end, after the server's last read,
    looks the same as bytes that were still in flight when the input ended.
    """
    clients = [DrainClient(i) for i in range(8)]
    started = threading.Barrier(len(clients) + 1)
    loaded = threading.Barrier(len(clients) + 1)  # every client has had 50 lines echoed
    threads = [
        threading.Thread(target=c.run, args=(server.port, started, loaded)) for c in clients
    ]
    for t in threads:
        t.start()
    started.wait(timeout=30)
    loaded.wait(timeout=30)  # the signal lands while every client is mid-stream
    code, err = server.stop(signal.SIGTERM)
    for t in threads:
        t.join(30)
        assert not t.is_alive(), "a client hung"
    assert code == 0
    assert "draining" in err
    assert "Traceback" not in err
    for c in clients:
        assert c.ended == "eof", f"client {c.index} ended with {c.ended}"
        echoed = len(c.received)
        assert c.received.count(b"\n") >= 50, f"client {c.index} got too little back"
        assert c.received == c.sent[:echoed], f"client {c.index}: the echo is not what it sent"
        missing = len(c.sent) - echoed
        assert missing <= WINDOW + 32, f"client {c.index}: {missing} bytes never came back"


def _banner_pid(port: int) -> int:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        data = b""
        while not data.endswith(b"\n"):
            data += sock.recv(100)
    return int(data.split()[-1])


def test_two_workers_serve_from_two_pids_and_a_killed_worker_restarts() -> None:
    server = EchoProcess("--workers", "2", "--banner")
    try:
        pids: set[int] = set()
        for _ in range(200):
            pids.add(_banner_pid(server.port))
            if len(pids) == 2:
                break
        assert len(pids) == 2, "connections were not spread over two worker processes"
        assert server.proc.pid not in pids
        victim = min(pids)
        os.kill(victim, signal.SIGKILL)  # a worker we started (through the supervisor)
        replacement: set[int] = set()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not (replacement - pids):
            try:
                replacement.add(_banner_pid(server.port))
            except OSError:
                continue
        new = replacement - pids
        assert new, "the killed worker was not replaced"
        code, err = server.stop(signal.SIGTERM)
        assert code == 0
        assert f"(pid {victim}) exited" in err
        assert "restarting" in err
    finally:
        if server.proc.poll() is None:
            server.proc.kill()
            server.proc.communicate()


def test_echo_client_load_generator(server: EchoProcess) -> None:
    client = Path(__file__).resolve().parent.parent / "examples" / "echo_client.py"
    out = subprocess.run(
        [
            sys.executable,
            str(client),
            "--port",
            str(server.port),
            "--conns",
            "4",
            "--count",
            "50",
            "--size",
            "100",
            "--duration",
            "20",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    match = re.match(
        r"^200 messages over 4 connections in [\d.]+s: (\d+) msgs/s, p50 (\d+) us", out
    )
    assert match, out
    assert int(match[1]) > 0
    assert server.stop()[0] == 0


def test_echo_client_sends_a_message_bigger_than_the_socket_buffers(server: EchoProcess) -> None:
    """20 MB each way: sent by one task while another reads the echo (no deadlock)."""
    client = Path(__file__).resolve().parent.parent / "examples" / "echo_client.py"
    out = subprocess.run(
        [sys.executable, str(client), "--port", str(server.port), "--size", "20000000"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert out.startswith("1 messages over 1 connections in "), out
    assert server.stop()[0] == 0


def test_echo_client_duration_stops_a_run_with_a_message_in_flight() -> None:
    """A server that never echoes: --duration still ends the client, with 0 messages."""
    client = Path(__file__).resolve().parent.parent / "examples" / "echo_client.py"
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts (backlog), never reads
        port = silent.getsockname()[1]
        out = subprocess.run(
            [sys.executable, str(client), "--port", str(port), "--duration", "0.5"],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
    assert out.startswith("0 messages over 1 connections in "), out


def test_the_tutorials_shown_run_is_one_its_command_can_print() -> None:
    """echo-server.md shows one run: its message count is what its command asks for."""
    doc = Path(__file__).resolve().parent.parent / "docs" / "tutorial" / "echo-server.md"
    text = doc.read_text()
    command = re.search(r"\$ python examples/echo_client.py (.*)\n(.*)\n", text)
    assert command, "the shown run is missing"
    args = command[1].split()
    conns = int(args[args.index("--conns") + 1])
    count = int(args[args.index("--count") + 1])
    shown = re.match(r"(\d+) messages over (\d+) connections in ([\d.]+)s", command[2])
    assert shown, command[2]
    duration = float(args[args.index("--duration") + 1])
    assert (int(shown[1]), int(shown[2])) == (conns * count, conns)
    assert float(shown[3]) < duration  # finished by count, before the duration
