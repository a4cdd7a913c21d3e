"""Differential tests: our HTTP server and client against implementations we did not write.

* Our server against httpx (its ``AsyncClient``, which runs on Trio through anyio), over a
  real loopback TCP listener: keep-alive, chunked bodies both ways (in lockstep, so they
  prove the bytes stream rather than buffer), limits, HEAD, the Router's 404/405, JSON and
  the headers every response carries.
* Our server against raw sockets, parsed with h11 as a client: ``Expect: 100-continue``,
  HTTP/1.0 and pipelining.
* Our client against the standard library's ``http.server`` in a thread.
* Our client against our server over TCP.

Every server test runs once per request parser (the autouse fixture of ``conftest.py``). Each
test body is bounded by ``trio.fail_after`` so a hang fails where it hangs.
"""

from __future__ import annotations

import email.utils
import http.server
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import h11
import httpx
import pytest
import trio

from runtime.http import (
    Client,
    Headers,
    HttpConfig,
    HttpServer,
    RemoteProtocolError,
    Request,
    Response,
    ResponseTooLarge,
    Router,
    serve,
)
from runtime.net import TcpListener

LIMIT = 1 << 20  # HttpConfig's default max_body_bytes
BOUND = 10  # seconds any one test may take before it fails as a hang

# -- our server, and the app it serves ------------------------------------------------------


def make_app(peers: list[int]) -> Router:
    """The app of the server tests; each request appends its client's port to ``peers``."""
    router = Router()

    def seen(request: Request) -> None:
        assert isinstance(request.peer_address, tuple)
        peers.append(request.peer_address[1])

    @router.get("/hello")
    async def hello(request: Request) -> Response:
        seen(request)
        return Response.text("hello", headers=[("X-Mixed-Case", "Kept")])

    @router.get("/peer")
    async def peer(request: Request) -> Response:
        seen(request)
        return Response.text(str(peers[-1]))

    @router.get("/headers")
    async def headers(request: Request) -> Response:
        seen(request)
        got = {
            "lower": request.headers.get("x-client-thing"),
            "upper": request.headers.get("X-CLIENT-THING"),
            "names": sorted(request.headers),
        }
        return Response.json(got)

    @router.post("/echo")
    async def echo(request: Request) -> Response:
        seen(request)
        chunks = [chunk async for chunk in request.body]
        framing = request.headers.get("transfer-encoding") or "length"
        extra = [("x-chunks", str(len(chunks))), ("x-framing", framing)]
        return Response.bytes(b"".join(chunks), headers=extra)

    @router.get("/stream")
    async def stream(request: Request) -> Response:
        seen(request)

        async def parts() -> AsyncIterator[bytes]:
            for i in range(5):
                yield b"part%d;" % i

        return Response(200, body=parts())

    @router.post("/json")
    async def echo_json(request: Request) -> Response:
        seen(request)
        try:
            value = await request.json()
        except ValueError as exc:
            return Response.json({"error": type(exc).__name__}, 400)
        return Response.json({"got": value, "type": request.headers["content-type"]}, 201)

    @router.route(["GET", "POST"], "/items")
    async def items(request: Request) -> Response:
        seen(request)
        return Response.json([])

    return router


@asynccontextmanager
async def running(
    handler: Any, config: HttpConfig | None = None
) -> AsyncIterator[tuple[HttpServer, str]]:
    """Our server on a loopback TCP port, stopped on exit: ``(server, base_url)``.

    An error in the block comes out as itself, not wrapped in the nursery's ExceptionGroup.
    """
    listener = TcpListener.bind("127.0.0.1", 0)
    try:
        async with trio.open_nursery() as nursery:
            server = await nursery.start(partial(serve, handler, [listener], config=config))
            yield server, f"http://127.0.0.1:{listener.port}"
            nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        if len(group.exceptions) == 1:
            raise group.exceptions[0] from None
        raise


def httpx_client(base_url: str) -> httpx.AsyncClient:
    # trust_env=False: no proxy from the environment, the traffic stays on loopback.
    return httpx.AsyncClient(base_url=base_url, trust_env=False, timeout=BOUND)


def accepted(server: HttpServer) -> int:
    return server.server.statistics().accepted


# -- raw sockets, parsed with h11 as a client -------------------------------------------------


class RawClient:
    """A TCP stream whose requests are written by hand and whose responses h11 parses."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.h11 = h11.Connection(h11.CLIENT)
        self.raw = bytearray()  # every byte received, for checks of the exact wire format

    @property
    def local_port(self) -> int:
        return int(self.stream.socket.getsockname()[1])

    async def send(self, data: bytes) -> None:
        await self.stream.send_all(data)

    def expect(self, method: str = "GET", headers: list[tuple[str, str]] | None = None) -> None:
        """Tell h11 a request was sent (its bytes went by hand), so it parses the answer."""
        pairs = [("host", "x"), *(headers or [])]
        self.h11.send(h11.Request(method=method, target="/", headers=pairs))

    async def next_event(self) -> Any:
        while True:
            event = self.h11.next_event()
            if event is not h11.NEED_DATA:
                return event
            data = await self.stream.receive_some(65536)
            self.raw += data
            self.h11.receive_data(data)

    async def read_response(self, method: str = "GET") -> tuple[h11.Response, bytes]:
        """The next whole response (after a request of ``method`` that went by hand)."""
        if self.h11.our_state is h11.IDLE:
            self.expect(method)
        if self.h11.our_state is h11.SEND_BODY:
            self.h11.send(h11.EndOfMessage())
        head = await self.next_event()
        assert isinstance(head, h11.Response), head
        body = bytearray()
        while True:
            event = await self.next_event()
            if isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                break
            else:
                raise AssertionError(f"unexpected {event!r} in a response body")
        if self.h11.their_state is h11.DONE:
            self.h11.start_next_cycle()
        return head, bytes(body)

    async def read_to_eof(self) -> bytes:
        data = bytearray()
        while chunk := await self.stream.receive_some(65536):
            data += chunk
        return bytes(data)


@asynccontextmanager
async def raw_connection(base_url: str) -> AsyncIterator[RawClient]:
    port = int(base_url.rsplit(":", 1)[1])
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        yield RawClient(stream)


def header(head: h11.Response, name: bytes) -> list[bytes]:
    return [value for key, value in head.headers if key == name]


def split_response(data: bytes) -> tuple[str, dict[str, str], bytes]:
    """A whole HTTP/1.x response read to EOF, parsed by hand: status line, headers, body."""
    head, sep, body = data.partition(b"\r\n\r\n")
    assert sep, data
    status, *lines = head.decode("latin-1").split("\r\n")
    fields = {}
    for line in lines:
        name, _, value = line.partition(":")
        fields[name.strip().lower()] = value.strip()
    return status, fields, body


# -- 1. httpx against our server ---------------------------------------------------------------


async def test_httpx_keep_alive_serves_every_request_on_one_connection() -> None:
    peers: list[int] = []
    with trio.fail_after(BOUND):
        async with running(make_app(peers)) as (server, url), httpx_client(url) as client:
            assert (await client.get("/hello")).text == "hello"
            assert (await client.post("/echo", content=b"abc")).content == b"abc"
            assert (await client.get("/stream")).content == b"part0;part1;part2;part3;part4;"
            head = await client.head("/hello")
            assert (head.status_code, head.content) == (200, b"")
            assert (await client.get("/peer")).text == str(peers[0])
            assert accepted(server) == 1
    assert len(peers) == 5 and len(set(peers)) == 1


async def test_httpx_chunked_upload_reaches_the_handler_as_it_streams() -> None:
    # Lockstep: the client sends part i+1 only after the handler has read part i. A server
    # that buffered the whole body before calling the handler would hang here.
    parts = [b"a" * 1000, b"b" * 20000, b"c" * 3]
    ends = [sum(map(len, parts[: i + 1])) for i in range(len(parts))]
    read_so_far = [trio.Event() for _ in parts]
    seen: dict[str, Any] = {}

    async def handler(request: Request) -> Response:
        seen["te"] = request.headers.get("transfer-encoding")
        seen["cl"] = request.headers.get("content-length")
        seen["length"] = request.body.length
        total = 0
        async for chunk in request.body:
            total += len(chunk)
            for event, end in zip(read_so_far, ends, strict=True):
                if total >= end:
                    event.set()
        return Response.text(str(total))

    async def body() -> AsyncIterator[bytes]:
        for part, event in zip(parts, read_so_far, strict=True):
            yield part
            await event.wait()

    with trio.fail_after(BOUND):
        async with running(handler) as (_, url), httpx_client(url) as client:
            response = await client.post("/up", content=body())
    assert (response.status_code, response.text) == (200, str(ends[-1]))
    assert seen == {"te": "chunked", "cl": None, "length": None}


async def test_httpx_reads_a_chunked_download_as_the_handler_writes_it() -> None:
    # Lockstep the other way: the handler writes part i+1 only after httpx has read part i.
    parts = [b"first;", b"second;" * 1000, b"third"]
    ends = [sum(map(len, parts[: i + 1])) for i in range(len(parts))]
    received = [trio.Event() for _ in parts]

    async def handler(request: Request) -> Response:
        async def chunks() -> AsyncIterator[bytes]:
            for part, event in zip(parts, received, strict=True):
                yield part
                await event.wait()

        return Response(200, Headers([("content-type", "text/plain")]), chunks())

    got = bytearray()
    with trio.fail_after(BOUND):
        async with (
            running(handler) as (_, url),
            httpx_client(url) as client,
            client.stream("GET", "/live") as response,
        ):
            assert response.headers["transfer-encoding"] == "chunked"
            assert "content-length" not in response.headers
            async for chunk in response.aiter_bytes():
                got += chunk
                for event, end in zip(received, ends, strict=True):
                    if len(got) >= end:
                        event.set()
    assert bytes(got) == b"".join(parts)


async def test_httpx_uploads_exactly_max_body_bytes_and_gets_it_echoed() -> None:
    data = bytes(range(256)) * (LIMIT // 256)
    assert len(data) == LIMIT

    async def chunked() -> AsyncIterator[bytes]:
        for start in range(0, LIMIT, 65536):
            yield data[start : start + 65536]

    with trio.fail_after(BOUND):
        async with running(make_app([])) as (server, url), httpx_client(url) as client:
            sized = await client.post("/echo", content=data)
            streamed = await client.post("/echo", content=chunked())
            assert accepted(server) == 1
    assert (sized.status_code, sized.headers["x-framing"]) == (200, "length")
    assert sized.content == data
    assert int(sized.headers["x-chunks"]) > 1  # the handler read it in pieces, as it came
    assert (streamed.status_code, streamed.headers["x-framing"]) == (200, "chunked")
    assert streamed.content == data


async def test_httpx_gets_413_for_a_body_over_max_body_bytes() -> None:
    async def too_long() -> AsyncIterator[bytes]:
        for _ in range(LIMIT // 65536 + 1):
            yield b"z" * 65536

    peers: list[int] = []
    with trio.fail_after(BOUND):
        async with running(make_app(peers)) as (server, url), httpx_client(url) as client:
            # a Content-Length over the limit is refused before the handler runs
            sized = await client.post("/echo", content=b"y" * (LIMIT + 1))
            # a chunked body is counted as it streams: the handler's read fails at the limit
            streamed = await client.post("/echo", content=too_long())
            after = await client.get("/hello")
            connections = accepted(server)
    for response in (sized, streamed):
        assert response.status_code == 413
        assert response.headers["connection"] == "close"
        assert "max_body_bytes" in response.text
    assert len(peers) == 2  # the chunked POST reached the handler, the sized one did not
    assert after.text == "hello"
    assert connections == 3  # each 413 closed its connection


async def test_httpx_head_gets_the_headers_and_no_body() -> None:
    with trio.fail_after(BOUND):
        async with running(make_app([])) as (server, url), httpx_client(url) as client:
            head = await client.head("/hello")
            streamed = await client.head("/stream")
            # a body sent by mistake would be read as the start of this response
            get = await client.get("/hello")
            assert accepted(server) == 1
    assert (head.status_code, head.content) == (200, b"")
    assert head.headers["content-length"] == "5"
    assert (streamed.status_code, streamed.content) == (200, b"")
    assert get.text == "hello"


async def test_httpx_sees_the_routers_404_and_405_with_allow() -> None:
    with trio.fail_after(BOUND):
        async with running(make_app([])) as (server, url), httpx_client(url) as client:
            missing = await client.get("/nowhere")
            delete = await client.delete("/items")
            post = await client.post("/hello", content=b"x")
            listed = await client.get("/items")
            assert accepted(server) == 1  # 404 and 405 keep the connection alive
    assert missing.status_code == 404
    assert "allow" not in missing.headers
    assert delete.status_code == 405
    assert delete.headers["allow"] == "GET, HEAD, POST"
    assert post.status_code == 405
    assert post.headers["allow"] == "GET, HEAD"
    assert (listed.status_code, listed.json()) == (200, [])


async def test_httpx_json_round_trip() -> None:
    value = {"name": "büro ☕", "list": [1, 2.5, None, True], "nested": {"k": "v" * 100}}
    with trio.fail_after(BOUND):
        async with running(make_app([])) as (_, url), httpx_client(url) as client:
            ok = await client.post("/json", json=value)
            bad = await client.post(
                "/json", content=b"{not json", headers={"content-type": "application/json"}
            )
    assert ok.status_code == 201
    assert ok.headers["content-type"] == "application/json"
    assert ok.json() == {"got": value, "type": "application/json"}
    assert int(ok.headers["content-length"]) == len(ok.content)
    assert json.loads(ok.content.decode("utf-8")) == ok.json()
    assert (bad.status_code, bad.json()) == (400, {"error": "JSONDecodeError"})


async def test_httpx_headers_are_case_insensitive_and_date_and_server_are_sent() -> None:
    with trio.fail_after(BOUND):
        async with running(make_app([])) as (_, url), httpx_client(url) as client:
            hello = await client.get("/hello")
            echoed = await client.get("/headers", headers={"X-Client-Thing": "One"})
    # the handler's mixed-case name, under any case
    assert hello.headers["x-mixed-case"] == hello.headers["X-MIXED-CASE"] == "Kept"
    assert hello.headers.get_list("date") == [hello.headers["Date"]]
    assert hello.headers.get_list("server") == ["trio-runtime"]
    sent = email.utils.parsedate_to_datetime(hello.headers["date"])
    offset = sent.utcoffset()
    assert offset is not None and offset.total_seconds() == 0
    assert abs(sent.timestamp() - time.time()) < 60
    assert hello.headers["date"].endswith(" GMT")
    # the request's names arrive lowercased and are found under any case
    got = echoed.json()
    assert got["lower"] == got["upper"] == "One"
    assert "x-client-thing" in got["names"]
    assert all(name == name.lower() for name in got["names"])


# -- raw sockets against our server: 100-continue, HTTP/1.0, pipelining ---------------------


async def test_expect_100_continue_is_answered_before_the_body_is_sent() -> None:
    body = b"q" * 5000
    with trio.fail_after(BOUND):
        async with running(make_app([])) as (_, url), raw_connection(url) as raw:
            await raw.send(
                b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n"
                b"Expect: 100-continue\r\n\r\n" % len(body)
            )
            raw.expect("POST", [("content-length", str(len(body))), ("expect", "100-continue")])
            interim = await raw.next_event()
            assert isinstance(interim, h11.InformationalResponse)
            assert interim.status_code == 100
            assert bytes(raw.raw).startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
            await raw.send(body)
            raw.h11.send(h11.Data(data=body))
            head, echoed = await raw.read_response("POST")
            assert (head.status_code, echoed) == (200, body)
            assert header(head, b"connection") == []  # kept alive
            await raw.send(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
            after, text = await raw.read_response()
    assert (after.status_code, text) == (200, b"hello")


async def test_expect_100_continue_over_the_limit_gets_413_and_no_100() -> None:
    with trio.fail_after(BOUND):
        async with running(make_app([])) as (_, url), raw_connection(url) as raw:
            await raw.send(
                b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n"
                b"Expect: 100-continue\r\n\r\n" % (LIMIT + 1)
            )
            data = await raw.read_to_eof()
    status, fields, _ = split_response(data)
    assert status.startswith("HTTP/1.1 413 ")
    assert fields["connection"] == "close"
    assert b"100 Continue" not in data


async def test_http_1_0_request_is_answered_and_the_connection_closed() -> None:
    with trio.fail_after(BOUND):
        async with running(make_app([])) as (_, url), raw_connection(url) as raw:
            await raw.send(b"GET /hello HTTP/1.0\r\n\r\n")  # no Host: HTTP/1.0 needs none
            data = await raw.read_to_eof()
    status, fields, body = split_response(data)
    assert status == "HTTP/1.1 200 OK"
    assert (fields["content-length"], body) == ("5", b"hello")
    assert fields["connection"] == "close"


async def test_http_1_0_streamed_body_is_framed_by_the_close_not_chunked() -> None:
    with trio.fail_after(BOUND):
        async with running(make_app([])) as (_, url), raw_connection(url) as raw:
            await raw.send(b"GET /stream HTTP/1.0\r\nHost: x\r\n\r\n")
            data = await raw.read_to_eof()
    status, fields, body = split_response(data)
    assert status == "HTTP/1.1 200 OK"
    assert "transfer-encoding" not in fields and "content-length" not in fields
    assert body == b"part0;part1;part2;part3;part4;"


async def test_http_1_0_keep_alive_serves_two_requests_on_one_connection() -> None:
    with trio.fail_after(BOUND):
        async with running(make_app([])) as (server, url), raw_connection(url) as raw:
            for path in (b"/hello", b"/peer"):
                await raw.send(b"GET %s HTTP/1.0\r\nConnection: keep-alive\r\n\r\n" % path)
                head, body = await raw.read_response()
                assert head.status_code == 200
                assert header(head, b"connection") == [b"keep-alive"]
            assert body == str(raw.local_port).encode()
            assert accepted(server) == 1


async def test_three_pipelined_requests_in_one_write_get_three_responses_in_order() -> None:
    requests = (
        b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\nhello world"
        b"GET /peer HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    peers: list[int] = []
    with trio.fail_after(BOUND):
        async with running(make_app(peers)) as (server, url), raw_connection(url) as raw:
            port = raw.local_port
            await raw.send(requests)
            first = await raw.read_response("GET")
            second = await raw.read_response("POST")
            third = await raw.read_response("GET")
            # exactly three: nothing more came, and the connection still serves
            assert raw.h11.trailing_data == (b"", False)
            await raw.send(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
            fourth = await raw.read_response("GET")
            assert accepted(server) == 1
    assert [head.status_code for head, _ in (first, second, third, fourth)] == [200] * 4
    assert first[1] == b"hello"
    assert second[1] == b"hello world"
    assert header(second[0], b"x-framing") == [b"length"]
    assert third[1] == str(port).encode()
    assert fourth[1] == b"hello"
    assert peers == [port] * 4


# -- 3. our client against the standard library's http.server ------------------------------


class _StdlibHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _StdlibServer

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _reply(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            parts = []
            while size := int(self.rfile.readline().split(b";")[0], 16):
                parts.append(self.rfile.read(size))
                self.rfile.readline()
            self.rfile.readline()  # the empty line after the last chunk (no trailers)
            return b"".join(parts)
        return self.rfile.read(int(self.headers.get("Content-Length", "0")))

    def _route(self) -> None:
        body = self._body()
        self.server.log.append((self.command, self.path, self.client_address[1]))
        if self.path == "/hello":
            self._reply(200, b"hello from stdlib", {"X-Served-By": "http.server"})
        elif self.path == "/echo":
            framing = "chunked" if "Transfer-Encoding" in self.headers else "length"
            self._reply(200, body, {"X-Method": self.command, "X-Framing": framing})
        elif self.path == "/chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for chunk in (b"alpha ", b"beta " * 3000, b"gamma"):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            self.wfile.write(b"0\r\n\r\n")
        elif self.path == "/close":
            self._reply(200, b"last one", {"Connection": "close"})
            self.close_connection = True
        elif self.path == "/drop":
            # Looks reusable (no Connection: close), then the connection is closed: a server
            # whose keep-alive timeout passes while the client holds the connection idle.
            self._reply(200, b"dropping")
            self.close_connection = True
        elif self.path == "/redirect":
            self._reply(302, b"", {"Location": "/hello"})
        elif self.path == "/see-other":
            self._reply(303, b"", {"Location": "/echo"})
        else:
            self._reply(404, b"no such page")

    do_GET = do_HEAD = do_POST = _route


class _StdlibServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _StdlibHandler)
        self.log: list[tuple[str, str, int]] = []

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a client that closed a kept-alive connection is normal here

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def ports(self) -> list[int]:
        return [port for _, _, port in self.log]


@pytest.fixture
def stdlib_server() -> Iterator[_StdlibServer]:
    server = _StdlibServer()
    # poll every 20 ms for the shutdown flag (the default 0.5 s would slow every teardown)
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


async def test_client_get_from_http_server(stdlib_server: _StdlibServer) -> None:
    with trio.fail_after(BOUND):
        async with Client() as client:
            response = await client.get(stdlib_server.url + "/hello")
    assert (response.status, response.reason, response.body) == (200, "OK", b"hello from stdlib")
    assert response.headers["x-served-by"] == "http.server"
    assert response.headers["content-length"] == "17"
    assert response.headers["server"].startswith("BaseHTTP/")


async def test_client_post_body_is_echoed_by_http_server(stdlib_server: _StdlibServer) -> None:
    async def parts() -> AsyncIterator[bytes]:
        for part in (b"one;", b"two;" * 10000, b"three"):
            yield part

    with trio.fail_after(BOUND):
        async with Client() as client:
            sized = await client.post(stdlib_server.url + "/echo", body=b"ping" * 100000)
            streamed = await client.post(stdlib_server.url + "/echo", body=parts())
    assert sized.body == b"ping" * 100000
    assert (sized.headers["x-method"], sized.headers["x-framing"]) == ("POST", "length")
    assert streamed.body == b"one;" + b"two;" * 10000 + b"three"
    assert streamed.headers["x-framing"] == "chunked"


async def test_client_reads_a_hand_written_chunked_response(
    stdlib_server: _StdlibServer,
) -> None:
    with trio.fail_after(BOUND):
        async with Client() as client:
            response = await client.get(stdlib_server.url + "/chunked")
            assert client.idle_connections() == 1  # read to its end: pooled
    assert response.headers["transfer-encoding"] == "chunked"
    assert response.body == b"alpha " + b"beta " * 3000 + b"gamma"


async def test_client_keep_alive_uses_one_connection_to_http_server(
    stdlib_server: _StdlibServer,
) -> None:
    with trio.fail_after(BOUND):
        async with Client() as client:
            for path in ("/hello", "/chunked", "/nope", "/hello"):
                await client.get(stdlib_server.url + path)
            await client.post(stdlib_server.url + "/echo", body=b"x")
            stats = client.statistics()
    assert (stats.connections_opened, stats.connections_reused) == (1, 4)
    assert len(set(stdlib_server.ports())) == 1 and len(stdlib_server.log) == 5


async def test_client_gets_http_servers_404(stdlib_server: _StdlibServer) -> None:
    with trio.fail_after(BOUND):
        async with Client() as client:
            response = await client.get(stdlib_server.url + "/missing")
            assert client.idle_connections() == 1  # a 404 is a response like any other
    assert (response.status, response.reason, response.body) == (404, "Not Found", b"no such page")


async def test_client_does_not_reuse_a_connection_close_response(
    stdlib_server: _StdlibServer,
) -> None:
    with trio.fail_after(BOUND):
        async with Client() as client:
            last = await client.get(stdlib_server.url + "/close")
            assert client.idle_connections() == 0
            after = await client.get(stdlib_server.url + "/hello")
            stats = client.statistics()
    assert (last.body, last.headers["connection"]) == (b"last one", "close")
    assert after.body == b"hello from stdlib"
    assert (stats.connections_opened, stats.connections_reused, stats.stale_retries) == (2, 0, 0)
    first_port, second_port = stdlib_server.ports()
    assert first_port != second_port


async def test_client_redirects_are_not_followed_by_default(
    stdlib_server: _StdlibServer,
) -> None:
    with trio.fail_after(BOUND):
        async with Client() as client:
            response = await client.get(stdlib_server.url + "/redirect")
    assert (response.status, response.headers["location"], response.body) == (302, "/hello", b"")
    assert [path for _, path, _ in stdlib_server.log] == ["/redirect"]


async def test_client_follows_redirects_when_enabled(stdlib_server: _StdlibServer) -> None:
    with trio.fail_after(BOUND):
        async with Client(follow_redirects=True) as client:
            found = await client.get(stdlib_server.url + "/redirect")
            other = await client.post(stdlib_server.url + "/see-other", body=b"dropped")
            stats = client.statistics()
    assert (found.status, found.body) == (200, b"hello from stdlib")
    # 303 turns a POST into a GET without its body
    assert (other.status, other.headers["x-method"], other.body) == (200, "GET", b"")
    assert [(m, p) for m, p, _ in stdlib_server.log] == [
        ("GET", "/redirect"),
        ("GET", "/hello"),
        ("POST", "/see-other"),
        ("GET", "/echo"),
    ]
    assert stats.connections_reused >= 1  # the last response (a 200) left its connection pooled
    assert stats.idle_connections == 1


async def test_client_retries_a_get_once_when_http_server_closed_the_pooled_connection(
    stdlib_server: _StdlibServer,
) -> None:
    with trio.fail_after(BOUND):
        async with Client() as client:
            assert (await client.get(stdlib_server.url + "/drop")).body == b"dropping"
            assert client.idle_connections() == 1  # it looked reusable
            response = await client.get(stdlib_server.url + "/hello")
            stats = client.statistics()
    assert response.body == b"hello from stdlib"
    assert (stats.stale_retries, stats.connections_opened) == (1, 2)
    assert [path for _, path, _ in stdlib_server.log] == ["/drop", "/hello"]
    first_port, second_port = stdlib_server.ports()
    assert first_port != second_port


async def test_client_does_not_retry_a_post_on_a_closed_pooled_connection(
    stdlib_server: _StdlibServer,
) -> None:
    with trio.fail_after(BOUND):
        async with Client() as client:
            await client.get(stdlib_server.url + "/drop")
            with pytest.raises(RemoteProtocolError, match="not retried"):
                await client.post(stdlib_server.url + "/echo", body=b"once only")
            stats = client.statistics()
    assert (stats.stale_retries, stats.connections_opened) == (0, 1)
    assert [path for _, path, _ in stdlib_server.log] == ["/drop"]


# -- 4. our client against our server ---------------------------------------------------------


async def test_client_and_server_keep_alive_get_and_post() -> None:
    peers: list[int] = []
    with trio.fail_after(BOUND):
        async with running(make_app(peers)) as (server, url), Client(base_url=url) as client:
            hello = await client.get("/hello")
            posted = await client.post("/echo", body=b"payload" * 10000)
            streamed = await client.get("/stream")
            head = await client.request("HEAD", "/hello")
            stats = client.statistics()
            assert accepted(server) == 1
    assert (hello.status, hello.body, hello.headers["x-mixed-case"]) == (200, b"hello", "Kept")
    assert posted.body == b"payload" * 10000
    assert streamed.headers["transfer-encoding"] == "chunked"
    assert streamed.body == b"part0;part1;part2;part3;part4;"
    assert (head.status, head.body, head.headers["content-length"]) == (200, b"", "5")
    assert (stats.connections_opened, stats.connections_reused) == (1, 3)
    assert len(set(peers)) == 1


async def test_client_streams_an_upload_the_server_reads_as_it_arrives() -> None:
    parts = [b"u" * 100, b"v" * 300000, b"w"]
    ends = [sum(map(len, parts[: i + 1])) for i in range(len(parts))]
    read_so_far = [trio.Event() for _ in parts]

    async def handler(request: Request) -> Response:
        total = 0
        async for chunk in request.body:
            total += len(chunk)
            for event, end in zip(read_so_far, ends, strict=True):
                if total >= end:
                    event.set()
        return Response.text(f"{request.headers.get('transfer-encoding')} {total}")

    async def body() -> AsyncIterator[bytes]:
        for part, event in zip(parts, read_so_far, strict=True):
            yield part
            await event.wait()

    with trio.fail_after(BOUND):
        async with running(handler) as (_, url), Client(base_url=url) as client:
            response = await client.post("/up", body=body())
    assert (response.status, response.body) == (200, f"chunked {ends[-1]}".encode())


async def test_client_streams_a_download_as_the_server_writes_it() -> None:
    parts = [b"A", b"B" * 200000, b"C"]
    ends = [sum(map(len, parts[: i + 1])) for i in range(len(parts))]
    received = [trio.Event() for _ in parts]

    async def handler(request: Request) -> Response:
        async def chunks() -> AsyncIterator[bytes]:
            for part, event in zip(parts, received, strict=True):
                yield part
                await event.wait()

        return Response(200, body=chunks())

    got = bytearray()
    with trio.fail_after(BOUND):
        async with running(handler) as (_, url), Client(base_url=url) as client:
            async with client.stream("GET", "/live") as response:
                assert response.headers["transfer-encoding"] == "chunked"
                assert response.body.length is None  # type: ignore[union-attr]
                async for chunk in response.body:  # type: ignore[union-attr]
                    got += chunk
                    for event, end in zip(received, ends, strict=True):
                        if len(got) >= end:
                            event.set()
            assert client.idle_connections() == 1  # read to its end: pooled
    assert bytes(got) == b"".join(parts)


async def test_client_refuses_a_response_over_max_response_bytes() -> None:
    async def handler(request: Request) -> Response:
        if request.path == "/sized":
            return Response.bytes(b"s" * 65536)
        if request.path == "/chunked":

            async def chunks() -> AsyncIterator[bytes]:
                for _ in range(64):
                    yield b"c" * 1024

            return Response(200, body=chunks())
        return Response.text("small")

    with trio.fail_after(BOUND):
        async with running(handler) as (server, url):
            async with Client(base_url=url, max_response_bytes=4096) as client:
                with pytest.raises(ResponseTooLarge, match="max_response_bytes"):
                    await client.get("/sized")  # refused from its Content-Length
                with pytest.raises(ResponseTooLarge, match="max_response_bytes"):
                    await client.get("/chunked")  # cut as it streams
                assert client.idle_connections() == 0  # neither went back half-read
                small = await client.get("/small")
                stats = client.statistics()
            assert accepted(server) == 3
    assert small.body == b"small"
    assert stats.connections_opened == 3
