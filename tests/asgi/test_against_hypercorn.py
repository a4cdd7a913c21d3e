"""What the adapter adds over hypercorn, checked: the same ASGI app behind hypercorn's Trio
worker and behind ``python -m runtime serve``, sent the same hostile requests.

hypercorn parses with h11, which accepts Content-Length together with Transfer-Encoding (the
request smuggling vector) and checks its header-size limit only while a head is incomplete
(h11#182). The docs (docs/how-to/run-asgi.md) say so; if a hypercorn release fixes either,
this test fails, and the page must change with it.
"""

from __future__ import annotations

import importlib.util
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
APP = "benchmarks._http_servers:app"  # the raw hello app the benchmarks serve

SMUGGLE = (
    b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 44\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"0\r\n\r\nGET /admin HTTP/1.1\r\nHost: a\r\n\r\n"
)
BIG_HEAD = b"GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + b"v" * 60_000 + b"\r\n\r\n"


def ask(port: int, data: bytes) -> list[str]:
    """The status lines the server answers ``data`` with, read until it closes (or 2 s)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data + b"GET /after HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        received = b""
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except (TimeoutError, ConnectionResetError):
            pass
    return re.findall(r"HTTP/1\.1 \d{3}", received.decode("latin-1"))  # bodies have no CRLF


def start(argv: list[str], pattern: str, stream: str) -> tuple[subprocess.Popen[str], int]:
    process = subprocess.Popen(
        argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    pipe = process.stdout if stream == "stdout" else process.stderr
    assert pipe is not None
    for _ in range(50):
        line = pipe.readline()
        match = re.search(pattern, line)
        if match:
            return process, int(match[1])
        if not line:
            break
    process.kill()
    pytest.fail(f"{argv[2]} did not start: {process.communicate()}")


@pytest.fixture
def servers() -> Iterator[dict[str, int]]:
    if importlib.util.find_spec("hypercorn") is None:  # the test extra installs it
        if os.environ.get("CI"):
            pytest.fail("needs hypercorn: pip install -e '.[test]'")
        pytest.skip("needs hypercorn: pip install -e '.[test]'")
    hypercorn, hport = start(
        [sys.executable, "-m", "hypercorn", "--worker-class", "trio", "--workers", "0",
         "--bind", "127.0.0.1:0", APP],
        r"Running on http://127\.0\.0\.1:(\d+)",
        "stderr",
    )  # fmt: skip
    ours, oport = start(
        [sys.executable, "-m", "runtime", "serve", APP, "--port", "0", "--log-level", "error"],
        r"listening on http://127\.0\.0\.1:(\d+)",
        "stdout",
    )
    try:
        yield {"hypercorn": hport, "ours": oport}
    finally:
        for process in (hypercorn, ours):
            process.send_signal(signal.SIGTERM)  # by pid: the processes this test started
            try:
                process.communicate(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.communicate()


def test_content_length_with_transfer_encoding(servers: dict[str, int]) -> None:
    # hypercorn frames the body as chunked, so the bytes after it are a second request that
    # a front proxy reading Content-Length never saw: it answers both, and the next one.
    assert ask(servers["hypercorn"], SMUGGLE) == ["HTTP/1.1 200"] * 3
    assert ask(servers["ours"], SMUGGLE) == ["HTTP/1.1 400"]  # refused, connection closed


def test_a_60_kb_head_in_one_read(servers: dict[str, int]) -> None:
    assert ask(servers["hypercorn"], BIG_HEAD)[0] == "HTTP/1.1 200"  # h11#182: no limit
    assert ask(servers["ours"], BIG_HEAD) == ["HTTP/1.1 431"]
