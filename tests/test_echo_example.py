"""Black-box tests of examples/echo_server.py: a real process, real sockets, real signals."""

from __future__ import annotations

import os
import re
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

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


def test_sigterm_during_load_loses_no_acknowledged_message(server: EchoProcess) -> None:
    """Clients stream numbered lines; mid-stream the server gets SIGTERM.

    Every line a client got back must be complete and in order (nothing half-echoed, nothing
    skipped): the drain ends input, each handler echoes what it read, and the connection is
    half-closed gracefully, never reset.
    """
    clients = 8
    results: dict[int, tuple[list[bytes], bytes]] = {}
    started = threading.Barrier(clients + 1)
    loaded = threading.Barrier(clients + 1)  # every client has had 50 lines echoed

    def client(index: int) -> None:
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=20)
        received = b""
        sent = 0
        started.wait()
        try:
            while sent < 100_000:
                line = b"client %d line %d\n" % (index, sent)
                try:
                    sock.sendall(line)
                except OSError:
                    break
                sent += 1
                if sent == 50:
                    loaded.wait()
                chunk = sock.recv(65536)
                if not chunk:
                    break
                received += chunk
            while chunk := sock.recv(65536):
                received += chunk
        except ConnectionResetError as exc:
            raise AssertionError(f"client {index} was reset: replies may be lost") from exc
        finally:
            sock.close()
        lines = received.split(b"\n")
        results[index] = (lines[:-1], lines[-1])

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    started.wait()
    loaded.wait(timeout=30)  # the signal lands while every client is mid-stream
    code, err = server.stop(signal.SIGTERM)
    for t in threads:
        t.join(30)
    assert code == 0
    assert "draining" in err
    assert len(results) == clients
    for index, (lines, partial) in results.items():
        assert lines, f"client {index} got nothing back"
        expected = [b"client %d line %d" % (index, n) for n in range(len(lines))]
        assert lines == expected, f"client {index}: echoed lines out of order or missing"
        # a trailing partial line can only be the prefix of the next line (never garbage)
        assert (b"client %d line %d" % (index, len(lines))).startswith(partial)


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
