"""The HTTP examples: json_api.py, http_hello.py and http_client.py.

Black-box first (a real process, real sockets, real signals, and the stdlib's http.client as
a client we did not write), then the JSON API's handlers in-process through its Router, with
no sockets, for the validation rules.
"""

from __future__ import annotations

import http.client
import importlib.util
import json
import re
import select
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from runtime.http import Body, Request, Response

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
LISTENING = re.compile(r"^listening on http://127\.0\.0\.1:(\d+)$")
HANG_GUARD = 30.0  # seconds; a hang guard for slow machines, not a performance claim


class ServerProcess:
    """An example server started with ``--port 0``; ``port`` once it printed its line."""

    def __init__(self, script: str, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(EXAMPLES / script), "--port", "0", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], HANG_GUARD)
        assert ready, f"{script} printed no listening line within {HANG_GUARD} s"
        line = self.proc.stdout.readline().rstrip("\n")
        match = LISTENING.match(line)
        assert match, f"{script}: unexpected first line {line!r}; stderr: {self._stderr()}"
        self.port = int(match[1])
        self.url = f"http://127.0.0.1:{self.port}"

    def _stderr(self) -> str:
        if self.proc.poll() is None:
            return "(still running)"
        assert self.proc.stderr is not None
        return self.proc.stderr.read()

    def connect(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=HANG_GUARD)

    def stop(self, sig: int = signal.SIGTERM) -> tuple[int, str]:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        _, err = self.proc.communicate(timeout=HANG_GUARD)
        return self.proc.returncode, err

    def wait(self) -> tuple[int, str]:
        """Wait for the exit after a signal the test sent itself.

        Not :meth:`stop`: a second SIGTERM that lands after the drain, once the runtime has
        given the default handler back, kills the process (-15) instead of letting it exit 0.
        """
        _, err = self.proc.communicate(timeout=HANG_GUARD)
        return self.proc.returncode, err

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()


@pytest.fixture
def api() -> Iterator[ServerProcess]:
    server = ServerProcess("json_api.py")
    yield server
    server.kill()


@pytest.fixture
def hello() -> Iterator[ServerProcess]:
    server = ServerProcess("http_hello.py")
    yield server
    server.kill()


def call(
    conn: http.client.HTTPConnection,
    method: str,
    path: str,
    body: bytes | object = None,
) -> tuple[int, http.client.HTTPResponse, Any]:
    """Send a request; ``(status, response, body)``: the body parsed if it is JSON, None if
    empty, else the bytes."""
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    headers = {"content-type": "application/json"} if data is not None else {}
    conn.request(method, path, body=data, headers=headers)
    response = conn.getresponse()
    raw = response.read()
    if response.getheader("content-type") == "application/json":
        return response.status, response, json.loads(raw)
    return response.status, response, raw or None


# -- json_api.py ---------------------------------------------------------------------------


def test_json_api_crud_roundtrip_over_one_keep_alive_connection(api: ServerProcess) -> None:
    conn = api.connect()
    try:
        status, _, listed = call(conn, "GET", "/items")
        assert (status, listed) == (200, {"items": []})

        status, response, tea = call(conn, "POST", "/items", {"name": "tea", "price": 3.5})
        assert status == 201
        assert response.getheader("location") == "/items/1"
        assert response.getheader("content-type") == "application/json"
        assert tea == {"id": 1, "name": "tea", "price": 3.5, "tags": []}
        status, response, _ = call(conn, "POST", "/items", {"name": "cake", "price": 2})
        assert (status, response.getheader("location")) == (201, "/items/2")

        assert call(conn, "GET", "/items/1")[::2] == (200, tea)
        status, _, listed = call(conn, "GET", "/items")
        assert [item["name"] for item in listed["items"]] == ["tea", "cake"]

        replaced = {"name": "green tea", "price": 4, "tags": ["hot"]}
        status, _, body = call(conn, "PUT", "/items/1", replaced)
        assert (status, body) == (200, {"id": 1, **replaced})
        assert call(conn, "GET", "/items/1")[::2] == (200, {"id": 1, **replaced})

        status, response, body = call(conn, "DELETE", "/items/1")
        assert (status, body) == (204, None)
        assert response.getheader("content-length") is None  # 204 carries no body at all
        assert call(conn, "GET", "/items/1")[::2] == (404, {"error": "no item 1"})
        assert call(conn, "DELETE", "/items/1")[::2] == (404, {"error": "no item 1"})
        assert call(conn, "PUT", "/items/1", replaced)[::2] == (404, {"error": "no item 1"})
        status, _, listed = call(conn, "GET", "/items")
        assert [item["id"] for item in listed["items"]] == [2]
    finally:
        conn.close()
    code, err = api.stop()
    assert code == 0
    assert "Traceback" not in err


def test_json_api_errors_are_json_and_keep_the_connection(api: ServerProcess) -> None:
    conn = api.connect()
    try:
        status, _, body = call(conn, "POST", "/items", {"name": "", "price": -1, "id": 7})
        assert status == 422
        assert body == {
            "error": "invalid item",
            "fields": {
                "id": "is read-only",
                "name": "must be a string of 1-100 characters",
                "price": "must be a number >= 0",
            },
        }
        status, _, body = call(conn, "POST", "/items", b'{"name": "tea", ')
        assert status == 400
        assert body["error"].startswith("body is not valid JSON")
        status, _, body = call(conn, "POST", "/items", b"\xff\xfe{}")  # not UTF-8 either
        assert status == 400
        status, _, body = call(conn, "POST", "/items", b'"x' + b"y" * 70_000 + b'"')
        assert (status, body) == (413, {"error": "body exceeds 65536 bytes"})
        # The same connection still works after each of them: nothing was left unread.
        status, _, body = call(conn, "POST", "/items", {"name": "ok", "price": 0})
        assert (status, body["id"]) == (201, 1)
        status, response, _ = call(conn, "PATCH", "/items/1", {"price": 1})
        assert (status, response.getheader("allow")) == (405, "DELETE, GET, HEAD, PUT")
        assert call(conn, "GET", "/items/abc")[::2] == (404, b"Not Found\n")  # no route
    finally:
        conn.close()
    code, _ = api.stop(signal.SIGINT)
    assert code == 0


def test_json_api_sigterm_exits_zero_with_a_keep_alive_connection_open(
    api: ServerProcess,
) -> None:
    with socket.create_connection(("127.0.0.1", api.port), timeout=HANG_GUARD) as sock:
        sock.sendall(b"GET /items HTTP/1.1\r\nhost: api\r\n\r\n")
        reply = b""
        while not reply.endswith(b'{"items":[]}'):
            chunk = sock.recv(65536)
            assert chunk, f"closed before the whole response: {reply!r}"
            reply += chunk
        assert reply.startswith(b"HTTP/1.1 200 OK\r\n")
        api.proc.send_signal(signal.SIGTERM)
        assert sock.recv(1) == b""  # the idle keep-alive connection is closed at the drain
    code, err = api.wait()
    assert code == 0
    assert "Traceback" not in err


# -- http_hello.py -------------------------------------------------------------------------


def test_hello_get_and_head(hello: ServerProcess) -> None:
    conn = hello.connect()
    try:
        conn.request("GET", "/")
        response = conn.getresponse()
        assert (response.status, response.read()) == (200, b"Hello, world!")
        assert response.getheader("content-length") == "13"
    finally:
        conn.close()
    # HEAD then GET pipelined on one connection: the GET's status line must follow the HEAD's
    # head at once. A body after the HEAD's head would show up right there.
    with socket.create_connection(("127.0.0.1", hello.port), timeout=HANG_GUARD) as sock:
        head_request = b"HEAD / HTTP/1.1\r\nhost: h\r\n\r\n"
        sock.sendall(head_request + b"GET / HTTP/1.1\r\nhost: h\r\nconnection: close\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"\r\ncontent-length: 13" in head  # HEAD says how long the GET's body would be
    assert rest.startswith(b"HTTP/1.1 200 OK\r\n"), rest[:40]
    assert rest.endswith(b"\r\n\r\nHello, world!")
    assert hello.stop()[0] == 0


def test_hello_two_workers_serve_and_exit_zero_on_sigterm() -> None:
    server = ServerProcess("http_hello.py", "--workers", "2")
    try:
        for _ in range(20):  # fresh connections, spread over the workers by SO_REUSEPORT
            conn = server.connect()
            conn.request("GET", "/", headers={"connection": "close"})
            response = conn.getresponse()
            assert (response.status, response.read()) == (200, b"Hello, world!")
            conn.close()
        code, err = server.stop()
        assert code == 0, err
        assert "Traceback" not in err
    finally:
        server.kill()


# -- http_client.py ------------------------------------------------------------------------


def run_client(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(EXAMPLES / "http_client.py"), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_client_one_request_prints_status_headers_body_and_time(hello: ServerProcess) -> None:
    result = run_client(hello.url + "/")
    assert result.returncode == 0, result.stderr
    head, _, rest = result.stdout.partition("\n\n")
    lines = head.splitlines()
    assert lines[0] == "200 OK"
    assert "content-length: 13" in lines
    assert "server: trio-runtime" in lines
    body, time_line = rest.rstrip("\n").rsplit("\n", 1)
    assert body == "Hello, world!"
    assert re.fullmatch(r"time: \d+\.\d{3} ms", time_line)
    assert hello.stop()[0] == 0


def test_client_posts_json_with_headers(api: ServerProcess) -> None:
    result = run_client(api.url + "/items", "-d", '{"name": "tea", "price": 1}', "-H", "X-A: b")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("201 Created\n")
    assert "location: /items/1\n" in result.stdout
    assert '{"id":1,"name":"tea","price":1,"tags":[]}\n' in result.stdout
    result = run_client(api.url + "/items/1", "-X", "DELETE")
    assert result.stdout.startswith("204 No Content\n")
    assert api.stop()[0] == 0


def test_client_load_reports_requests_latency_and_zero_errors(hello: ServerProcess) -> None:
    result = run_client(hello.url + "/", "--conns", "4", "--requests", "50")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert re.fullmatch(
        r"requests: 50 in \d+\.\d{3} s over 4 connections: \d+ requests/s", lines[0]
    ), lines[0]
    latency = re.fullmatch(
        r"latency: p50 ([\d.]+) ms, p90 ([\d.]+) ms, p99 ([\d.]+) ms, max ([\d.]+) ms", lines[1]
    )
    assert latency, lines[1]
    p50, p90, p99, top = map(float, latency.groups())
    assert 0 < p50 <= p90 <= p99 <= top
    assert lines[2:] == ["status codes: 200 x50", "non-2xx: 0", "errors: 0"]
    assert hello.stop()[0] == 0


def test_client_load_counts_non_2xx_and_errors() -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]  # bound, never listening: connects are refused
        result = run_client(f"http://127.0.0.1:{port}/", "--conns", "2", "--requests", "6")
    assert result.returncode == 1
    assert result.stdout.splitlines()[-1] == "errors: 6 (ConnectError x6)"
    single = run_client(f"http://127.0.0.1:{port}/")
    assert single.returncode == 1
    assert single.stderr.startswith("error: ConnectError: ")


def test_client_load_non_2xx_are_counted_not_errors(api: ServerProcess) -> None:
    result = run_client(api.url + "/items/9", "--conns", "2", "--requests", "10")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[2:] == ["status codes: 404 x10", "non-2xx: 10", "errors: 0"]
    assert api.stop()[0] == 0


def test_client_percentile_is_nearest_rank() -> None:
    client = load_example("http_client.py")
    values = [float(v) for v in range(1, 101)]
    assert [client.percentile(values, p) for p in (50, 90, 99, 100)] == [50, 90, 99, 100]
    assert client.percentile([7.0], 99) == 7.0
    assert client.percentile([], 50) == 0.0


# -- json_api.py in-process ----------------------------------------------------------------


def load_example(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"example_{Path(name).stem}", EXAMPLES / name)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


json_api = load_example("json_api.py")


async def send(app: Any, method: str, path: str, body: bytes | object = b"") -> Response:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return await app(Request(method, path, body=Body(data)))  # type: ignore[no-any-return]


def body_of(response: Response) -> Any:
    assert isinstance(response.body, bytes)
    return json.loads(response.body)


VALID = {"name": "tea", "price": 1.5, "tags": ["hot", "green"]}


@pytest.mark.parametrize(
    ("item", "problems"),
    [
        ({}, {"name": "required", "price": "required"}),
        ({"name": "  ", "price": 1}, {"name": "must be a string of 1-100 characters"}),
        ({"name": "x" * 101, "price": 1}, {"name": "must be a string of 1-100 characters"}),
        ({"name": 5, "price": 1}, {"name": "must be a string of 1-100 characters"}),
        ({"name": "a", "price": True}, {"price": "must be a number >= 0"}),
        ({"name": "a", "price": "1"}, {"price": "must be a number >= 0"}),
        ({"name": "a", "price": -0.01}, {"price": "must be a number >= 0"}),
        (
            {"name": "a", "price": 1, "tags": ["x"] * 21},
            {"tags": "must be a list of at most 20 strings of 1-32 characters"},
        ),
        (
            {"name": "a", "price": 1, "tags": [""]},
            {"tags": "must be a list of at most 20 strings of 1-32 characters"},
        ),
        (
            {"name": "a", "price": 1, "tags": "hot"},
            {"tags": "must be a list of at most 20 strings of 1-32 characters"},
        ),
        ({**VALID, "id": 3, "colour": "red"}, {"id": "is read-only", "colour": "unknown field"}),
        ([VALID], {"(body)": "must be a JSON object"}),
        (None, {"(body)": "must be a JSON object"}),
    ],
)
async def test_api_validation_names_every_problem(item: object, problems: dict[str, str]) -> None:
    app = json_api.make_app()
    response = await send(app, "POST", "/items", item)
    assert response.status == 422
    assert body_of(response) == {"error": "invalid item", "fields": problems}
    assert body_of(await send(app, "GET", "/items")) == {"items": []}  # nothing was stored


@pytest.mark.parametrize("text", [b"NaN", b'{"name": "a", "price": Infinity}'])
async def test_api_refuses_what_json_cannot_say(text: bytes) -> None:
    # json.loads takes NaN and Infinity; the API must not store them (Response.json would
    # then fail on every GET of the list).
    response = await send(json_api.make_app(), "POST", "/items", text)
    assert response.status == 422


async def test_api_create_trims_the_name_and_keeps_a_mounted_path_in_location() -> None:
    store = json_api.ItemStore()
    app = json_api.make_app(store)
    response = await send(app, "POST", "/items", {"name": " tea ", "price": 0})
    assert response.status == 201
    assert response.headers["location"] == "/items/1"
    assert store.items == {1: {"id": 1, "name": "tea", "price": 0, "tags": []}}
    from runtime.http import Router

    root = Router()
    root.mount("/api", app)
    response = await send(root, "POST", "/api/items", VALID)
    assert response.headers["location"] == "/api/items/2"
    assert body_of(await send(root, "GET", "/api/items/2")) == {"id": 2, **VALID}


async def test_api_store_is_bounded() -> None:
    app = json_api.make_app(json_api.ItemStore(max_items=2))
    for _ in range(2):
        assert (await send(app, "POST", "/items", VALID)).status == 201
    response = await send(app, "POST", "/items", VALID)
    assert response.status == 507
    assert body_of(response) == {"error": "the store is full (2 items); delete some"}
    assert (await send(app, "DELETE", "/items/1")).status == 204
    assert (await send(app, "POST", "/items", VALID)).status == 201


async def test_api_put_of_an_unknown_id_is_404_even_with_a_bad_body() -> None:
    response = await send(json_api.make_app(), "PUT", "/items/5", b"{not json")
    assert (response.status, body_of(response)) == (404, {"error": "no item 5"})


async def test_api_body_limit_is_checked_before_parsing() -> None:
    big = b"[" + b"1," * json_api.MAX_BODY_BYTES + b"1]"
    response = await send(json_api.make_app(), "POST", "/items", big)
    assert (response.status, body_of(response)) == (413, {"error": "body exceeds 65536 bytes"})
