"""The Try this of the echo, TLS and chat steps: each stated result, against the page's text."""

from __future__ import annotations

import importlib.util
import re
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
import trustme

ROOT = Path(__file__).resolve().parent.parent
TUTORIAL = ROOT / "docs" / "tutorial"


def _load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SERVER = ROOT / "examples" / "echo_server.py"


class EchoProcess:
    """examples/echo_server.py with ``args``, once it printed its listening line."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(SERVER), "--port", "0", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        match = re.fullmatch(r"listening on (tcp|tls)://127\.0\.0\.1:(\d+)", line)
        assert match, f"unexpected first line {line!r}"
        self.port = int(match[2])

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.communicate(timeout=30)


CLIENT = ROOT / "examples" / "echo_client.py"
CHAT = ROOT / "examples" / "chat_server.py"


def _page(step: str) -> str:
    return " ".join((TUTORIAL / f"{step}.md").read_text().split())  # lines joined


def _client(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(CLIENT), *args], capture_output=True, text=True, timeout=50
    )


@pytest.fixture
def echo() -> Iterator[object]:
    servers: list[object] = []

    def start(*args: str) -> object:
        process = EchoProcess(*args)
        servers.append(process)
        return process

    yield start
    for process in servers:
        if process.proc.poll() is None:  # type: ignore[attr-defined]
            process.proc.kill()  # type: ignore[attr-defined]
            process.proc.communicate()  # type: ignore[attr-defined]


def test_echo_one_20_mb_message_comes_back(echo: object) -> None:
    server = echo()  # type: ignore[operator]
    result = _client("--port", str(server.port), "--size", "20000000")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("1 messages over 1 connections in ")
    assert "--size 20000000`. It prints `1 messages over 1 connections`" in _page("echo-server")


def test_echo_a_silent_connection_is_closed_after_the_idle_timeout(echo: object) -> None:
    server = echo("--idle-timeout", "2")  # type: ignore[operator]
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        assert sock.recv(1) == b""  # closed by the server, well before the 30 s guard
    assert "with `--idle-timeout 2`" in _page("echo-server")
    assert "Two seconds later `nc` exits" in _page("echo-server")


def test_echo_client_without_a_server_says_so_in_one_line(echo: object) -> None:
    server = echo()  # type: ignore[operator]
    port = server.port
    server.stop()
    result = _client("--port", str(port))
    assert result.returncode == 1
    line = result.stderr.strip()
    expected = (
        "error: cannot connect to the server: all attempts to connect to 127.0.0.1:{} failed"
    )
    assert line == expected.format(port)
    assert line.replace(str(port), "7000") in _page("echo-server").replace("` `", "")


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("tls-demo")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert.private_key_pem.write_to_path(str(directory / "server.key"))
    cert.cert_chain_pems[0].write_to_path(str(directory / "server.pem"))
    ca.cert_pem.write_to_path(str(directory / "client.pem"))
    return directory


def test_tls_a_plain_client_is_cut_off_with_a_clear_line(echo: object, tls_files: Path) -> None:
    server = echo(  # type: ignore[operator]
        "--ssl-certfile",
        str(tls_files / "server.pem"),
        "--ssl-keyfile",
        str(tls_files / "server.key"),
    )
    result = _client("--port", str(server.port))
    assert result.returncode == 1
    line = result.stderr.strip()
    assert (
        line == f"error: 127.0.0.1:{server.port} closed the connection before the echo came back"
    )
    assert line.removeprefix("error: ").replace(str(server.port), "7000") in _page("tls")


def test_tls_the_servers_certificate_is_no_ca(echo: object, tls_files: Path) -> None:
    server = echo(  # type: ignore[operator]
        "--ssl-certfile",
        str(tls_files / "server.pem"),
        "--ssl-keyfile",
        str(tls_files / "server.key"),
    )
    result = _client("--port", str(server.port), "--ssl-cafile", str(tls_files / "server.pem"))
    assert result.returncode == 1
    reason = "certificate verify failed: unable to get local issuer certificate"
    assert result.stderr.strip().endswith(reason)
    assert f"`{reason}`" in _page("tls")


chat = _load("chat_server_tryit", CHAT)


def _chat_lines(sock: socket.socket) -> Iterator[str]:
    buffer = b""
    while True:
        while b"\n" not in buffer:
            data = sock.recv(65536)
            if not data:
                return
            buffer += data
        line, buffer = buffer.split(b"\n", 1)
        yield line.decode()


def _drain(lines: Iterator[str]) -> None:
    try:
        for _ in lines:
            pass
    except OSError:  # the test closed the socket: the drain is over
        pass


def _until(lines: Iterator[str], prefix: str) -> str:
    for line in lines:
        if line.startswith(prefix):
            return line
    raise AssertionError(f"no line starting {prefix!r}")


@pytest.fixture
def chat_server() -> Iterator[tuple[subprocess.Popen[str], int]]:
    proc = subprocess.Popen(
        [sys.executable, str(CHAT), "--port", "0", "--backlog", "8"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    port = int(proc.stdout.readline().strip().rsplit(":", 1)[1])
    yield proc, port
    proc.kill()
    proc.communicate()


def test_chat_a_taken_nick_and_an_overlong_line(
    chat_server: tuple[subprocess.Popen[str], int],
) -> None:
    _, port = chat_server
    with socket.create_connection(("127.0.0.1", port), timeout=30) as first:
        one = _chat_lines(first)
        _until(one, "* welcome")  # guest1, before guest2 connects
        second = socket.create_connection(("127.0.0.1", port), timeout=30)
        two = _chat_lines(second)
        _until(two, "* welcome")
        first.sendall(b"/nick bob\n")
        _until(two, "* guest1 is now known as bob")
        second.sendall(b"/nick bob\n")
        taken = _until(two, "* error")
        assert taken == "* error: bob is taken"
        second.sendall(b"x" * 2000 + b"\n")
        overlong = _until(two, "* error")
        assert list(two) == []  # and then disconnected
        assert _until(one, "* guest2 left") == "* guest2 left"  # the room goes on
        second.close()
    page = _page("chat-server")
    assert f"`{taken}`" in page
    assert f"`{overlong}`" in page


def test_chat_backlog_8_drops_the_stuck_client_at_8(
    chat_server: tuple[subprocess.Popen[str], int],
) -> None:
    proc, port = chat_server
    terminals = [socket.create_connection(("127.0.0.1", port), timeout=30) for _ in range(2)]
    readers = [_chat_lines(sock) for sock in terminals]
    for reader in readers:
        _until(reader, "* welcome")
    stuck = socket.socket()  # guest3: connected, and never reads
    stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stuck.connect(("127.0.0.1", port))
    _until(readers[0], "* guest3 joined")
    threading.Thread(target=_drain, args=(readers[1],), daemon=True).start()  # a terminal
    flooder = socket.create_connection(("127.0.0.1", port), timeout=30)
    # as `seq 50000 | nc -N ... > /dev/null`: it reads what the room sends it, into nothing
    threading.Thread(target=_drain, args=(_chat_lines(flooder),), daemon=True).start()
    flooder.sendall(b"".join(b"%d\n" % n for n in range(50000)))
    flooder.shutdown(socket.SHUT_WR)
    _until(readers[0], "* guest3 left")  # dropped: the room said so
    assert proc.stderr is not None
    log = ""
    while "dropping" not in log:
        log = proc.stderr.readline()
        assert log, "the server's log ended"
    assert log.rstrip().endswith("dropping guest3: 8 messages behind")
    assert "the log says `dropping guest3: 8 messages behind`" in _page("chat-server")
    for sock in (*terminals, stuck, flooder):
        sock.close()
