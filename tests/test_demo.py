"""Black-box tests of ``python -m runtime demo``: a real process, real sockets, real signals."""

from __future__ import annotations

import http.client
import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest
import trio

from runtime.http import ConnectionClosed, WebSocket, ws_connect

# Hang guards only, not performance claims: a loaded CI machine may start Python slowly.
HANG_GUARD = 30.0
LISTENING = re.compile(r"^listening on tcp://(?P<host>[^:\s]+):(?P<port>\d+)$")
CHAT = re.compile(r"^also serving chat on tcp://(?P<host>[^:\s]+):(?P<port>\d+)$")
HTTP = re.compile(r"^also serving http on http://(?P<host>[^:\s]+):(?P<port>\d+)$")
WS_CHAT = re.compile(r"^also serving ws-chat on http://(?P<host>[^:\s]+):(?P<port>\d+)/chat$")
ADMIN = re.compile(r"^admin on http://(?P<host>[^:\s]+):(?P<port>\d+)$")
TOP = re.compile(
    r"^  watch it live: python -m runtime top --admin (?P<host>[^:\s]+):(?P<port>\d+)$"
)


class Demo:
    def __init__(self, *args: str, check_ready: bool = True) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "runtime", "demo", "--port", "0", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], HANG_GUARD)
        assert ready, f"demo printed no listening line within {HANG_GUARD} s (hung?)"
        line = self.proc.stdout.readline().rstrip("\n")
        match = LISTENING.match(line)
        assert match, f"unexpected first line {line!r}"
        self.address = (match["host"], int(match["port"]))
        line = self.proc.stdout.readline().rstrip("\n")
        chat = CHAT.match(line)
        assert chat, f"unexpected second line {line!r}"
        self.chat_address = (chat["host"], int(chat["port"]))
        line = self.proc.stdout.readline().rstrip("\n")
        web = HTTP.match(line)
        assert web, f"unexpected third line {line!r}"
        self.http_address = (web["host"], int(web["port"]))
        line = self.proc.stdout.readline().rstrip("\n")
        ws_chat = WS_CHAT.match(line)
        assert ws_chat, f"unexpected fourth line {line!r}"
        # The chat is on the HTTP server's port, under /chat.
        assert (ws_chat["host"], int(ws_chat["port"])) == self.http_address
        line = self.proc.stdout.readline().rstrip("\n")
        admin = ADMIN.match(line)
        assert admin, f"unexpected fifth line {line!r}"
        self.admin_address = (admin["host"], int(admin["port"]))
        line = self.proc.stdout.readline().rstrip("\n")
        top = TOP.match(line)
        assert top, f"unexpected sixth line {line!r}"
        assert (top["host"], int(top["port"])) == self.admin_address
        if check_ready:
            # Not needed for the signals (every server registers its drain before the lines
            # go out: test_sigterm_right_after_the_lines_drains pins that), but a test that
            # fails here failed to serve, not at what it tests.
            with self.connect() as sock:
                sock.sendall(b"ready?\n")
                assert recv_line(sock) == b"ready?\n"

    def connect(self) -> socket.socket:
        return socket.create_connection(self.address, timeout=HANG_GUARD)

    def connect_chat(self) -> socket.socket:
        return socket.create_connection(self.chat_address, timeout=HANG_GUARD)

    def connect_http(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(*self.http_address, timeout=HANG_GUARD)

    def wait(self) -> tuple[int, str]:
        """Wait for the exit after a signal the test sent (a second SIGTERM forces the exit)."""
        _, err = self.proc.communicate(timeout=HANG_GUARD)
        return self.proc.returncode, err

    def stop(self, sig: int = signal.SIGTERM, timeout: float = HANG_GUARD) -> tuple[int, str]:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        _, err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, err


@pytest.fixture
def demo() -> Iterator[Demo]:
    d = Demo()
    yield d
    if d.proc.poll() is None:
        d.proc.kill()
        d.proc.communicate()


def recv_line(sock: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"\n"):
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def test_prints_listening_line_and_echoes(demo: Demo) -> None:
    with demo.connect() as sock:
        sock.sendall(b"hello runtime\n")
        assert recv_line(sock) == b"hello runtime\n"
        sock.sendall(b"split ")
        sock.sendall(b"line\nsecond\n")
        got = b""
        while got.count(b"\n") < 2:
            got += sock.recv(1024)
        assert got == b"split line\nsecond\n"
    code, _ = demo.stop()
    assert code == 0


def test_starts_and_stops_without_clients() -> None:
    d = Demo()  # the listening lines came and it serves (checked in Demo), within the hang guard
    code, err = d.stop()
    assert code == 0
    assert "shutdown started (SIGTERM)" in err
    assert "Traceback" not in err


def test_sigterm_right_after_the_lines_drains() -> None:
    """A signal at once after the last line drains all three servers: each registered its
    drain before the lines were printed, so none is missed and nothing is cancelled."""
    d = Demo(check_ready=False)
    code, err = d.stop()
    assert code == 0, err
    for name in ("echo", "chat", "http", "admin"):
        assert f"{name}: drained" in err
    assert "0 tasks cancelled" in err
    assert "Traceback" not in err


def http_call(
    conn: http.client.HTTPConnection, method: str, path: str, body: object = None
) -> tuple[int, http.client.HTTPResponse, bytes]:
    data = None if body is None else json.dumps(body).encode()
    headers = {} if data is None else {"content-type": "application/json"}
    conn.request(method, path, body=data, headers=headers)
    response = conn.getresponse()
    return response.status, response, response.read()


def test_http_hello_and_the_json_api_under_api(demo: Demo) -> None:
    conn = demo.connect_http()
    try:
        status, response, body = http_call(conn, "GET", "/")
        assert (status, body) == (200, b"Hello, world!")
        assert response.getheader("content-type") == "text/plain; charset=utf-8"
        status, response, body = http_call(conn, "POST", "/api/items", {"name": "tea", "price": 2})
        assert status == 201
        assert response.getheader("location") == "/api/items/1"  # the prefix is kept
        assert json.loads(body) == {"id": 1, "name": "tea", "price": 2, "tags": []}
        status, _, body = http_call(conn, "GET", "/api/items/1")
        assert (status, json.loads(body)["name"]) == (200, "tea")
        status, _, body = http_call(conn, "POST", "/api/items", {"price": "free"})
        assert status == 422
        assert json.loads(body)["fields"] == {"name": "required", "price": "must be a number >= 0"}
        status, _, _ = http_call(conn, "GET", "/items")  # the API lives under /api only
        assert status == 404
    finally:
        conn.close()
    code, err = demo.stop()
    assert code == 0
    assert "http: drained" in err
    assert "Traceback" not in err


def test_sigterm_with_http_request_in_flight_answers_it_with_close(demo: Demo) -> None:
    """A request whose handler is running at SIGTERM gets its answer, marked ``Connection:
    close``, and the demo exits 0 once the connection is closed."""
    with socket.create_connection(demo.http_address, timeout=HANG_GUARD) as sock:
        # With Expect: 100-continue the server says "100 Continue" when the handler asks for
        # the body: then the request is in the handler (waiting in request.json()), and the
        # body goes only after the drain has started.
        body = json.dumps({"name": "late", "price": 1}).encode()
        sock.sendall(
            b"POST /api/items HTTP/1.1\r\nhost: demo\r\ncontent-type: application/json\r\n"
            b"expect: 100-continue\r\ncontent-length: %d\r\n\r\n" % len(body)
        )
        interim = b""
        while not interim.endswith(b"\r\n\r\n"):
            chunk = sock.recv(1)
            assert chunk, f"closed before 100 Continue: {interim!r}"
            interim += chunk
        assert interim.startswith(b"HTTP/1.1 100 "), interim
        demo.proc.send_signal(signal.SIGTERM)
        wait_for_stderr(demo, "http: draining, 1 connections active")
        sock.sendall(body)
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 201 Created\r\n"), reply
    assert b"\r\nconnection: close\r\n" in reply.lower()
    assert reply.endswith(b'"name":"late","price":1,"tags":[]}')
    code, err = demo.wait()
    assert code == 0
    assert "0 tasks cancelled" in err


def wait_for_stderr(demo: Demo, text: str) -> None:
    """Read the demo's stderr until it holds ``text`` (hang-guarded).

    Raw reads of the pipe, not readline(): the text wrapper would buffer lines that select()
    then no longer sees. What is read here is gone from the ``stop()`` output.
    """
    assert demo.proc.stderr is not None
    fd = demo.proc.stderr.fileno()
    seen = b""
    while text.encode() not in seen:
        ready, _, _ = select.select([fd], [], [], HANG_GUARD)
        assert ready, f"no {text!r} on stderr within {HANG_GUARD} s; saw {seen!r}"
        chunk = os.read(fd, 65536)
        assert chunk, f"stderr ended before {text!r}; saw {seen!r}"
        seen += chunk


def test_sigterm_with_client_connected_drains_and_exits_zero(demo: Demo) -> None:
    with demo.connect() as sock:
        sock.sendall(b"before shutdown\n")
        assert recv_line(sock) == b"before shutdown\n"
        demo.proc.send_signal(signal.SIGTERM)
        assert sock.recv(1024) == b""  # the server half-closed our connection: drained
    code, err = demo.wait()  # we closed our side; it exits without the grace
    assert code == 0
    assert "shutdown started (SIGTERM)" in err
    assert "echo: draining, 1 connections active" in err
    assert "echo: drained" in err
    assert "0 tasks cancelled" in err  # it drained within the grace: nothing was cut off


def test_sigint_exits_zero(demo: Demo) -> None:
    code, err = demo.stop(signal.SIGINT)
    assert code == 0
    assert "shutdown started (SIGINT)" in err


def test_oversize_chat_line_gets_a_clear_error_and_others_are_unaffected(demo: Demo) -> None:
    with demo.connect() as echo, demo.connect_chat() as bad:
        assert recv_line(bad).startswith(b"* guest1 joined")
        bad.sendall(b"x" * 5000 + b"\n")
        replies = b""
        while chunk := bad.recv(65536):
            replies += chunk
        assert b"* error: line exceeds 1024 bytes" in replies  # then the chat closed it
        echo.sendall(b"still here\n")
        assert recv_line(echo) == b"still here\n"
    assert demo.stop()[0] == 0


def recv_until(sock: socket.socket, marker: bytes) -> bytes:
    data = b""
    while marker not in data:
        chunk = sock.recv(4096)
        assert chunk, f"connection closed before {marker!r}; got {data!r}"
        data += chunk
    return data


def test_chat_between_two_clients(demo: Demo) -> None:
    with demo.connect_chat() as a, demo.connect_chat() as b:
        recv_until(a, b"welcome")
        recv_until(b, b"welcome")  # both are in the room now
        a.sendall(b"/nick ann\n")
        recv_until(b, b"is now known as ann")
        a.sendall(b"hi bob\n")
        assert b"<ann> hi bob" in recv_until(b, b"<ann> hi bob")
    assert demo.stop()[0] == 0


def test_reset_connection_stays_on_that_connection(demo: Demo) -> None:
    rude = demo.connect()
    rude.sendall(b"partial line without newline")
    rude.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    rude.close()  # RST
    with demo.connect() as sock:
        sock.sendall(b"ok\n")
        assert recv_line(sock) == b"ok\n"
    code, err = demo.stop()
    assert code == 0
    assert "Traceback" not in err


def test_bad_port_fails_cleanly() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        proc = subprocess.run(
            [sys.executable, "-m", "runtime", "demo", "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=30,
            env={**os.environ},
        )
    assert proc.returncode == 1
    assert "cannot serve" in proc.stderr


async def next_event(ws: WebSocket) -> dict[str, object]:
    message = await ws.receive()
    assert isinstance(message, str), message
    event = json.loads(message)
    assert isinstance(event, dict)
    return event


async def test_ws_chat_on_the_http_port_under_chat(demo: Demo) -> None:
    host, port = demo.http_address
    url = f"ws://{host}:{port}/chat/ws"
    with trio.fail_after(HANG_GUARD):
        async with ws_connect(url) as a, ws_connect(url) as b:
            assert await next_event(a) == {"type": "notice", "text": "guest1 joined"}
            assert await next_event(a) == {"type": "notice", "text": "guest2 joined"}
            assert await next_event(b) == {"type": "notice", "text": "guest2 joined"}
            await b.send("hello from b")
            said = {"type": "message", "from": "guest2", "text": "hello from b"}
            assert await next_event(a) == said
            assert await next_event(b) == said
            # The page is served on the same port, next to the WebSocket.
            conn = demo.connect_http()
            try:
                status, response, body = http_call(conn, "GET", "/chat")
            finally:
                conn.close()
            assert status == 200
            assert response.getheader("content-type") == "text/html; charset=utf-8"
            assert b"new WebSocket(" in body
            # A drain closes the WebSockets with 1001 and the demo still exits 0.
            demo.proc.send_signal(signal.SIGTERM)
            for ws in (a, b):
                with pytest.raises(ConnectionClosed) as info:
                    while True:  # a "left" notice may come before the close
                        await ws.receive()
                assert info.value.code == 1001
    code, err = demo.wait()
    assert code == 0, err
    assert "http: drained" in err
    assert "0 tasks cancelled" in err
    assert "Traceback" not in err


def admin_get(demo: Demo, path: str) -> tuple[int, str, bytes]:
    conn = http.client.HTTPConnection(*demo.admin_address, timeout=HANG_GUARD)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.getheader("content-type") or "", response.read()
    finally:
        conn.close()


async def test_the_admin_port_shows_servers_connections_and_a_joinset(demo: Demo) -> None:
    """/tasks of the live demo: the echo server's task with the echo connections under it,
    and the ws-chat connection with its JoinSet member (the writer) under it."""
    host, port = demo.http_address
    with demo.connect() as one, demo.connect() as two, trio.fail_after(HANG_GUARD):
        for sock in (one, two):
            sock.sendall(b"hi\n")
            assert recv_line(sock) == b"hi\n"
        async with ws_connect(f"ws://{host}:{port}/chat/ws") as ws:
            assert await next_event(ws) == {"type": "notice", "text": "guest1 joined"}
            status, content_type, body = admin_get(demo, "/tasks")
            assert (status, content_type) == (200, "application/json")
            nodes = json.loads(body)["tasks"]
            by_id = {n["id"]: n for n in nodes}
            assert len(by_id) == len(nodes)
            seen: set[int] = set()
            for node in nodes:  # ids unique, every parent listed before its children
                assert node["parent"] is None or node["parent"] in seen, node
                seen.add(node["id"])
            echo = [n for n in nodes if (n["detail"] or "").startswith("echo: peer")]
            assert len(echo) == 2 and all(n["kind"] == "connection" for n in echo)
            (echo_server,) = {n["parent"] for n in echo}
            assert by_id[echo_server]["name"] == "runtime.net._server.serve"
            (writer,) = [n for n in nodes if n["name"] == "ws-chat writer"]
            assert writer["kind"] == "joinset"
            owner = by_id[writer["parent"]]
            assert owner["kind"] == "connection" and owner["detail"].startswith("http: peer")
            status, _, body = admin_get(demo, f"/tasks/{writer['id']}/stack")
            assert status == 200
            assert "ChatRoom._write" in [f["function"] for f in json.loads(body)["frames"]]
    assert admin_get(demo, "/ready")[::2] == (200, b"ready\n")
    status, _, metrics = admin_get(demo, "/metrics")
    assert status == 200
    assert b'runtime_server_connections_total{outcome="accepted",server="echo"} 3.0' in metrics
    code, err = demo.stop()
    assert code == 0, err
    assert "admin: drained" in err


def test_the_admin_metrics_have_every_family_after_a_scripted_load(demo: Demo) -> None:
    """prometheus-client's own parser reads /metrics of the live demo after some traffic on
    every server; each family of the admin issue is there, with values that fit the load."""
    from prometheus_client.parser import text_string_to_metric_families

    with demo.connect() as sock:
        for n in range(3):
            sock.sendall(f"line {n}\n".encode())
            assert recv_line(sock) == f"line {n}\n".encode()
    with demo.connect_chat() as sock:
        sock.sendall(b"hello room\n")
        assert b"joined" in recv_line(sock)
    conn = demo.connect_http()
    try:
        for _ in range(4):
            assert http_call(conn, "GET", "/")[0] == 200
        assert http_call(conn, "POST", "/api/items", {"name": "pen", "price": 2})[0] == 201
        assert http_call(conn, "GET", "/api/items/1")[0] == 200
        assert http_call(conn, "GET", "/no/such/page")[0] == 404
    finally:
        conn.close()
    status, content_type, body = admin_get(demo, "/metrics")
    assert status == 200 and content_type.startswith("text/plain")
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    families = set()
    for family in text_string_to_metric_families(body.decode()):
        families.add(family.name)
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value

    def at(name: str, **labels: str) -> float:
        return samples[(name, tuple(sorted(labels.items())))]

    assert {
        "runtime_tasks_alive",
        "runtime_tasks_spawned",
        "runtime_tasks_ended",
        "runtime_timers_pending",
        "runtime_timers_fired",
        "runtime_timer_lag_seconds",
        "runtime_reactor_registered_fds",
        "runtime_reactor_wakeups",
        "runtime_reactor_events_per_wakeup",
        "runtime_channel_buffered",
        "runtime_channel_capacity",
        "runtime_server_connections_active",
        "runtime_server_connections",
        "runtime_http_requests",
        "runtime_http_request_duration_seconds",
        "runtime_service_requests",
        "runtime_service_request_duration_seconds",
    } <= families
    # ready? (1) + the three lines' connection = 2 accepted by echo, none active now or soon
    assert at("runtime_server_connections_total", server="echo", outcome="accepted") == 2
    assert at("runtime_server_connections_total", server="echo", outcome="errored") == 0
    assert at("runtime_channel_capacity", channel="chat", kind="broadcast") > 0
    assert at("runtime_channel_capacity", channel="ws-chat", kind="broadcast") > 0
    get_root = {"server": "http", "route": "/", "method": "GET", "status": "200"}
    assert at("runtime_http_requests_total", **get_root) == 4
    item = {"server": "http", "route": "/api/items/{id:int}", "method": "GET", "status": "200"}
    assert at("runtime_http_requests_total", **item) == 1
    missing = {"server": "http", "route": "<unmatched>", "method": "GET", "status": "404"}
    assert at("runtime_http_requests_total", **missing) == 1
    assert at("runtime_http_request_duration_seconds_count", server="http", route="/") == 4
    assert at("runtime_service_requests_total", service="hello") == 4
    assert at("runtime_service_errors_total", service="hello") == 0
    assert at("runtime_reactor_registered_fds") >= 1  # this scrape's own connection
    assert at("runtime_timer_lag_seconds") >= 0
    assert at("runtime_tasks_ended_total", state="failed") == 0
    code, err = demo.stop()
    assert code == 0, err
