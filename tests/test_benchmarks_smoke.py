"""Every benchmark script still runs, in its shortest mode; the native echo client is correct.

The smoke runs assert an exit status of 0 and that a ratio line was printed, never a number:
the figures of a run this short mean nothing. The echo client's tests run it against small
threaded servers that misbehave on purpose (byte-at-a-time echoes, a server that reads a
whole large message before answering, resets, wrong echoes, nothing listening).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"

# script, arguments for its shortest mode, a regex for its ratio line
# (echo.py has its own, closer test below.)
SMOKE_RUNS = [
    ("spawn.py", ["--tasks", "200", "--rounds", "1"], r"ratio vs start_soon\+Event = \d+\.\d+"),
    (
        "channels.py",
        ["--items", "2000", "--rounds", "1", "--fanout-items", "100", "--subscribers", "4"],
        r"broadcast .*\n.*\d+\.\d+x",
    ),
    (
        "timers.py",
        ["--timers", "1000", "--rounds", "1", "--spread", "0.1", "--ops", "2000"],
        r"ratio \d+\.\d+",
    ),
    ("service.py", ["--calls", "64", "--rounds", "1"], r"stack = \d+\.\d+"),
]


def run_script(script: str, args: list[str], timeout: float = 100) -> str:
    proc = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert proc.returncode == 0, f"{script} exited {proc.returncode}:\n{proc.stdout}{proc.stderr}"
    return proc.stdout


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    ("script", "args", "ratio_line"), SMOKE_RUNS, ids=[r[0] for r in SMOKE_RUNS]
)
def test_benchmark_runs_in_smoke_mode(script: str, args: list[str], ratio_line: str) -> None:
    out = run_script(script, args)
    assert re.search(ratio_line, out), out


def test_every_benchmark_script_has_a_smoke_run() -> None:
    scripts = {p.name for p in BENCHMARKS.glob("*.py") if not p.name.startswith("_")}
    closer = {"echo.py", "http.py", "ws.py", "metrics.py", "proxy.py"}  # own tests below
    closer.add("redis.py")  # tests/test_redis_benchmark_smoke.py
    closer.add("sim.py")  # tests/sim/test_sim_bench_smoke.py
    closer.add("asgi.py")  # tests/asgi/test_asgi_bench_smoke.py
    closer.add("plot.py")  # not a benchmark: tests/test_benchmarks_page.py runs it
    assert scripts == closer | {script for script, _, _ in SMOKE_RUNS}


@pytest.mark.timeout(120)
def test_echo_smoke_exercises_every_path() -> None:
    if not shutil.which("cc"):
        pytest.skip("no C compiler: the native client cannot be built")
    out = run_script("echo.py", ["--smoke"])
    assert re.search(r"ratio runtime/trio \d+\.\d+x", out)
    assert "client: native C client" in out
    for impl in ["runtime", "trio", "asyncio"]:
        assert re.search(rf"^\s+\d+\s+\d+\s+{impl} ", out, re.MULTILINE), impl
    assert "paired runs" in out
    assert re.search(r"ratio runtime/trio .* both clients together used", out)
    assert re.search(r"runtime: \d+ KB -> accepted \d+ KB -> used \d+ KB", out)
    assert "top 5 by tottime" in out
    assert "SMOKE RUN" in out
    assert re.search(r"(PASS|MISS)  runtime Server RSS per idle connection \(used\)", out)


@pytest.mark.timeout(120)
def test_echo_fallback_client_says_so() -> None:
    out = run_script(
        "echo.py",
        ["--smoke", "--client", "python", "--impls", "runtime,trio", "--no-paired"],
    )
    assert "client: PYTHON FALLBACK" in out
    assert "NOT comparable" in out
    assert re.search(r"ratio runtime/trio \d+\.\d+x", out)


@pytest.mark.timeout(120)
def test_http_smoke_runs_every_server_and_prints_ratios() -> None:
    if shutil.which("wrk") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("wrk is missing; the CI image must have it (apt-get install -y wrk)")
        pytest.skip("wrk is missing: apt-get install -y wrk")
    out = run_script("http.py", ["--smoke"])
    assert re.search(r"ours/h11 vs trio-h11 @8: \d+\.\d+x  \(target >= 1\.2x: (PASS|MISS)", out)
    assert re.search(r"^\s+8  ours \(h11\)\s+\d+ ", out, re.MULTILINE), out
    assert re.search(r"ours \(h11\)\s+\d+ KB -> \s*\d+ KB: -?\d+\.\d+ KB per connection", out)
    assert re.search(r"(PASS|MISS)  ours RSS per idle connection", out)
    assert "SMOKE RUN" in out


@pytest.mark.timeout(120)
def test_proxy_smoke_measures_ours_against_the_direct_baseline() -> None:
    for tool, package in [("wrk", "wrk"), ("h2load", "nghttp2-client")]:
        if shutil.which(tool) is None:
            if os.environ.get("CI") == "true":
                pytest.fail(
                    f"{tool} is missing; the CI image must have it (apt-get install -y {package})"
                )
            pytest.skip(f"{tool} is missing: apt-get install -y {package}")
    out = run_script("proxy.py", ["--smoke", "--proxies", "ours"])
    assert "how the three processes share the two cores" in out or "unpinned" in out, out
    assert "access_log = false" in out
    for target in ["direct", "ours"]:
        # one row in each table: the latency one, then the throughput one
        rows = re.findall(rf"^{target}\s+\d+\.\d+\s+\d+\.\d+\s", out, re.MULTILINE)
        assert len(rows) == 1, (target, out)
        assert re.search(rf"^{target}\s+\d+\s+\d+\.\d+\s+\d+\.\d+\s+\d+%", out, re.MULTILINE)
    # ours' latency row has the added p50/p99, and every request got a 2xx
    assert re.search(r"^ours(\s+-?\d+\.\d+){5}\s+\d+\s+0\s", out, re.MULTILINE), out
    assert re.search(r"(PASS|MISS)  ours added p50 @ fixed rate: -?\d+\.\d+ ms", out)
    assert re.search(r"(PASS|MISS)  ours added p99 @ fixed rate: -?\d+\.\d+ ms", out)
    assert "SKIP  ours/mitmproxy throughput" in out  # not asked for
    assert "exited with status" not in out, out  # the proxy drained and exited 0
    assert "SMOKE RUN" in out


@pytest.mark.timeout(120)
def test_metrics_smoke_compares_on_and_off_with_every_scrape_checked() -> None:
    need_cc()
    if shutil.which("wrk") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("wrk is missing; the CI image must have it (apt-get install -y wrk)")
        pytest.skip("wrk is missing: apt-get install -y wrk")
    out = run_script("metrics.py", ["--smoke"])
    assert "echo client: native C client" in out
    for case, unit in [("echo", "msgs/s"), ("http", "req/s")]:
        assert re.search(rf"^{case}: .*\n\s+{unit} ", out, re.MULTILINE), (case, out)
        for label in ["metrics off", "metrics on \\+ scraped"]:
            row = rf"^  {label}\s+\d+\s+\d+\s+\d+\s+\d+%\s+\d+%\s+0  \d+$"
            assert re.search(row, out, re.MULTILINE), (case, label, out)
        ratio_line = rf"^metrics on vs off, {case}: \d+\.\d+x \(rounds: \d+\.\d+\)$"
        assert re.search(ratio_line, out, re.MULTILINE), (case, out)
        assert re.search(rf"paired, metrics on vs off, {case}: \d+\.\d+x \(rounds: ", out)
        for how in ["interleaved", "paired"]:
            verdict = rf"^  (PASS|MISS)  metrics on vs off, {case} @8 conns, {how}: \d+\.\d+x"
            assert re.search(verdict, out, re.MULTILINE), (case, how, out)
    scrapers = re.findall(r"scraper: (\d+) scrapes over 1 run\(s\) \(\d+\), (\d+) answered", out)
    assert len(scrapers) == 4, out  # echo and http, interleaved and paired
    assert all(int(total) >= 2 and total == ok for total, ok in scrapers), scrapers
    assert "failed; slowest" in out and "SCRAPES FAILED" not in out
    # the server recorded every request wrk completed (and the last scrape saw them all)
    recorded = re.search(r"\(\+1 check\), per round: (\d+\.\d+)", out)
    assert recorded is not None, out
    assert float(recorded.group(1)) >= 1.0, out
    assert "exited with status" not in out, out  # every server drained and exited 0
    assert "SMOKE RUN" in out


# -- the native client -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def echo_bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("echo_benchmark", BENCHMARKS / "echo.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def client(echo_bench: ModuleType) -> Path:
    binary, note = echo_bench.build_native_client()
    if binary is None:
        pytest.skip(f"native client not built: {note}")
    assert isinstance(binary, Path)
    return binary


def test_a_server_that_fails_to_start_is_reported_with_its_stderr(
    echo_bench: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    crash = "import sys; sys.stderr.write('boom: no listening line'); sys.exit(1)"
    monkeypatch.setattr(echo_bench, "server_argv", lambda impl, cap: [sys.executable, "-c", crash])
    setup = echo_bench.Setup([], [], None, 0.0)
    with pytest.raises(RuntimeError, match="boom: no listening line"):
        echo_bench.Server(setup, "runtime")


def run_client(client: Path, port: int, *args: str) -> tuple[int, dict[str, Any]]:
    proc = subprocess.run(
        [str(client), "--port", str(port), "--warmup", "0", *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return proc.returncode, json.loads(proc.stdout)


Handler = Callable[[socket.socket], None]


@contextmanager
def threaded_server(handler: Handler) -> Iterator[int]:
    """A listening socket; each connection is handled by ``handler`` in its own thread."""
    listener = socket.create_server(("127.0.0.1", 0))
    threads: list[threading.Thread] = []

    def accept_loop() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            conn.settimeout(20)
            thread = threading.Thread(target=serve_one, args=(conn,), daemon=True)
            threads.append(thread)
            thread.start()

    def serve_one(conn: socket.socket) -> None:
        with conn:
            try:
                handler(conn)
            except OSError:
                pass

    acceptor = threading.Thread(target=accept_loop, daemon=True)
    acceptor.start()
    try:
        yield listener.getsockname()[1]
    finally:
        listener.shutdown(socket.SHUT_RDWR)
        listener.close()
        acceptor.join(10)
        for thread in threads:
            thread.join(10)


def byte_at_a_time(conn: socket.socket) -> None:
    while data := conn.recv(1):
        conn.sendall(data)


def test_client_reassembles_an_echo_that_comes_back_a_byte_at_a_time(client: Path) -> None:
    with threaded_server(byte_at_a_time) as port:
        status, out = run_client(client, port, "--conns", "2", "--size", "16", "--duration", "0.3")
    assert status == 0
    assert out["errors"] == 0
    assert out["messages"] > 0
    assert out["total_messages"] >= out["messages"]


def test_client_finishes_a_write_that_the_kernel_takes_in_parts(client: Path) -> None:
    size = 16 << 20  # more than tcp_wmem's maximum (4 MiB by default): send() returns short

    def read_all_then_echo(conn: socket.socket) -> None:
        while True:
            message = bytearray()
            while len(message) < size:
                chunk = conn.recv(size - len(message))
                if not chunk:
                    return
                message += chunk
            conn.sendall(message)

    with threaded_server(read_all_then_echo) as port:
        status, out = run_client(
            client, port, "--conns", "1", "--size", str(size), "--duration", "0.3"
        )
    assert status == 0
    assert out["errors"] == 0
    assert out["total_messages"] > 0


def test_client_counts_a_reset_as_an_error_and_reports(client: Path) -> None:
    def reset_after_first_message(conn: socket.socket) -> None:
        conn.recv(64)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    with threaded_server(reset_after_first_message) as port:
        status, out = run_client(client, port, "--conns", "3", "--duration", "10")
    assert status == 0  # every connection died, but they had connected: a result, not a crash
    assert out["errors"] == 3
    assert out["connect_errors"] == 0
    assert out["messages"] == 0
    assert out["last_error"] == "Connection reset by peer"


def test_client_counts_a_wrong_echo_as_an_error(client: Path) -> None:
    def wrong_echo(conn: socket.socket) -> None:
        while data := conn.recv(64):
            conn.sendall(b"z" * len(data))

    with threaded_server(wrong_echo) as port:
        status, out = run_client(client, port, "--conns", "2", "--duration", "10")
    assert status == 0
    assert out["errors"] == 2
    assert out["messages"] == 0


def test_client_gives_up_connecting_after_its_timeout(client: Path) -> None:
    with socket.socket() as unused:  # a port that nobody listens on
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
        status, out = run_client(client, port, "--conns", "4", "--connect-timeout", "0.1")
    assert status == 2
    assert out["connect_errors"] == 4
    assert out["errors"] == 4
    assert out["last_error"] == "Connection refused"


def test_client_rejects_bad_arguments(client: Path) -> None:
    proc = subprocess.run(
        [str(client), "--conns", "4"], capture_output=True, text=True, timeout=10, check=False
    )
    assert proc.returncode == 2
    assert "usage" in proc.stderr


# -- the WebSocket benchmark and its native client -------------------------------------------


def need_cc() -> None:
    if shutil.which("cc") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("no C compiler; the CI image must have one (apt-get install -y gcc)")
        pytest.skip("no C compiler: apt-get install -y gcc")


@pytest.mark.timeout(120)
def test_ws_smoke_runs_every_server_and_prints_ratios() -> None:
    need_cc()
    out = run_script("ws.py", ["--smoke"])
    assert "client: native C client" in out
    for impl in ["ours", "trio-websocket"]:
        for size in [64, 16384]:
            row = rf"^\s+8\s+{size}\s+{impl}\s+\d+\s+\d+\s+\d+\s+\d+%\s+\d+%\s+0$"
            assert re.search(row, out, re.MULTILINE), (impl, size, out)
    assert re.search(
        r"ours vs trio-websocket @64B: \d+\.\d+x  \(target >= 1\.5x: (PASS|MISS)", out
    )
    assert re.search(r"ours vs trio-websocket @16KiB \(8 conns\): \d+\.\d+x", out)
    if importlib.util.find_spec("websockets") is None:
        assert "SKIPPED websockets" in out
    else:
        assert re.search(
            r"ours vs websockets @64B: \d+\.\d+x  \(stretch >= 1\.0x: (PASS|MISS)", out
        )
    assert "SMOKE RUN" in out


@pytest.fixture(scope="module")
def ws_client() -> Path:
    need_cc()
    spec = importlib.util.spec_from_file_location("ws_benchmark", BENCHMARKS / "ws.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    binary, note = module.build_client()
    assert binary is not None, note
    assert isinstance(binary, Path)
    return binary


WS_ACCEPT = b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="  # for the client's fixed RFC 6455 sample key


def ws_handshake(conn: socket.socket, answer: bytes | None = None) -> None:
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        byte = conn.recv(1)
        if not byte:
            raise OSError("EOF in the handshake")
        head += byte
    assert b"upgrade: websocket" in head.lower()
    conn.sendall(
        answer
        or b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: "
        + WS_ACCEPT
        + b"\r\n\r\n"
    )


def recv_exactly(conn: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            raise OSError("EOF")
        data += chunk
    return data


def read_ws_message(conn: socket.socket) -> bytes | None:
    """One masked client frame's payload, unmasked (the client never fragments); None when
    it is the client's closing frame."""
    b0, b1 = recv_exactly(conn, 2)
    assert b0 in (0x82, 0x88)  # FIN + binary, or FIN + close
    assert b1 & 0x80  # masked
    length = b1 & 0x7F
    if length == 126:
        (length,) = struct.unpack("!H", recv_exactly(conn, 2))
    elif length == 127:
        (length,) = struct.unpack("!Q", recv_exactly(conn, 8))
    key = recv_exactly(conn, 4)
    masked = recv_exactly(conn, length)
    if b0 == 0x88:
        assert masked == bytes(b ^ key[i % 4] for i, b in enumerate(struct.pack("!H", 1000)))
        return None
    return bytes(b ^ key[i % 4] for i, b in enumerate(masked))


def frame(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    first = (0x80 if fin else 0) | opcode
    n = len(payload)
    if n < 126:
        return bytes([first, n]) + payload
    if n < 65536:
        return bytes([first, 126]) + struct.pack("!H", n) + payload
    return bytes([first, 127]) + struct.pack("!Q", n) + payload


def run_ws_client(client: Path, port: int, *args: str) -> tuple[int, dict[str, Any]]:
    return run_client(client, port, "--connect-timeout", "5", *args)


def test_ws_client_reassembles_a_fragmented_echo_sent_a_byte_at_a_time(ws_client: Path) -> None:
    def fragmenting_echo(conn: socket.socket) -> None:
        ws_handshake(conn)
        while (message := read_ws_message(conn)) is not None:
            half = len(message) // 2
            wire = frame(0x9, b"ping")  # a control frame between the fragments is allowed
            wire = frame(0x2, message[:half], fin=False) + wire + frame(0x0, message[half:])
            for i in range(len(wire)):
                conn.sendall(wire[i : i + 1])

    with threaded_server(fragmenting_echo) as port:
        status, out = run_ws_client(
            ws_client, port, "--conns", "2", "--size", "300", "--duration", "0.3"
        )
    assert status == 0
    assert out["errors"] == 0, out
    assert out["messages"] > 0


def test_ws_client_echoes_a_message_with_a_64_bit_length(ws_client: Path) -> None:
    size = 70_000  # above 65,535: the 8-byte length form both ways

    def echo(conn: socket.socket) -> None:
        ws_handshake(conn)
        while (message := read_ws_message(conn)) is not None:
            conn.sendall(frame(0x2, message))

    with threaded_server(echo) as port:
        status, out = run_ws_client(
            ws_client, port, "--conns", "1", "--size", str(size), "--duration", "0.3"
        )
    assert status == 0
    assert out["errors"] == 0, out
    assert out["total_messages"] > 0


@pytest.mark.parametrize(
    "reply",
    [
        pytest.param(lambda m: frame(0x2, b"z" * len(m)), id="wrong-bytes"),
        pytest.param(lambda m: frame(0x2, m[:-1]), id="short"),
        pytest.param(lambda m: frame(0x1, m), id="text-not-binary"),
        pytest.param(lambda m: frame(0x8, struct.pack("!H", 1011)), id="close-frame"),
    ],
)
def test_ws_client_counts_a_bad_echo_as_an_error(
    ws_client: Path, reply: Callable[[bytes], bytes]
) -> None:
    def bad_echo(conn: socket.socket) -> None:
        ws_handshake(conn)
        message = read_ws_message(conn)
        assert message is not None
        conn.sendall(reply(message))
        while conn.recv(4096):  # until the client gives up on this connection
            pass

    with threaded_server(bad_echo) as port:
        status, out = run_ws_client(ws_client, port, "--conns", "2", "--duration", "10")
    assert status == 0
    assert out["errors"] == 2
    assert out["connect_errors"] == 0
    assert out["messages"] == 0


def test_ws_client_rejects_a_refused_upgrade(ws_client: Path) -> None:
    def refuse(conn: socket.socket) -> None:
        ws_handshake(conn, b"HTTP/1.1 426 Upgrade Required\r\ncontent-length: 0\r\n\r\n")

    with threaded_server(refuse) as port:
        status, out = run_ws_client(ws_client, port, "--conns", "3")
    assert status == 2
    assert out["connect_errors"] == 3
    assert out["last_error"] == "Protocol error"
