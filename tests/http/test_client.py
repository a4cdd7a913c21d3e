"""runtime.http.Client against the standard library's http.server (a server we did not write).

The server runs in a thread started outside the Trio run (a module fixture). Its handler
records which client connection (the peer port) served each request, so pooling and
reuse are checked from the server's side.
"""

from __future__ import annotations

import http.server
import socket
import ssl
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from urllib.parse import parse_qs, urlsplit

import h11
import pytest
import trio
import trio.testing
import trustme

from runtime.http import Body, HttpConfig, Request, Response
from runtime.http._client import (
    Client,
    ClientTimeout,
    ConnectError,
    ConnectTimeout,
    PoolTimeout,
    ReadTimeout,
    RemoteProtocolError,
    ResponseTooLarge,
    TooManyRedirects,
    WriteTimeout,
)
from runtime.http._server import HttpServer
from runtime.net.abc import Connection
from runtime.service import RetryOn, ServiceBuilder
from runtime.testing import MemoryConnection, MemoryListener, memory_connection_pair


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            parts = []
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if size == 0:
                    self.rfile.readline()
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length", "0")))

    def _chunked(self, chunks: list[bytes]) -> None:
        self.send_response(200)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for chunk in chunks:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        self.wfile.write(b"0\r\n\r\n")

    def _handle(self) -> None:
        url = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        body = self._read_body()
        self.server.log.append((self.command, url.path, self.client_address[1]))
        n = int(query.get("n", "0"))
        if url.path == "/hello":
            self._send(200, b"hello")
        elif url.path == "/echo":
            framing = "chunked" if "Transfer-Encoding" in self.headers else "length"
            extra = {
                "X-Method": self.command,
                "X-Host": self.headers["Host"],
                "X-Framing": framing,
            }
            self._send(200, body, extra)
        elif url.path == "/chunked":
            self._chunked([b"one ", b"two ", b"three"])
        elif url.path == "/big":
            self._send(200, b"x" * n)
        elif url.path == "/bigchunked":
            self._chunked([b"y" * 1000] * (n // 1000))
        elif url.path == "/close":
            self._send(200, b"bye", {"Connection": "close"})
            self.close_connection = True
        elif url.path == "/then-close":
            # Looks reusable (no Connection: close), then the server drops the connection, as
            # a server does when its keep-alive timeout passes while the client holds it idle.
            self._send(200, b"ok")
            self.close_connection = True
        elif url.path == "/until-eof":
            self.send_response(200)
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(b"framed by the close")
            self.close_connection = True
        elif url.path == "/redirect":
            target = f"/redirect?n={n - 1}" if n > 0 else "/hello"
            self._send(int(query.get("status", "302")), b"", {"Location": target})
        elif url.path == "/see-other":
            self._send(303, b"", {"Location": "/echo"})
        elif url.path == "/slow":
            self.server.release.wait(10)
            self._send(200, b"late")
        elif url.path == "/garbage":
            self.wfile.write(b"HTTP/1.1 abc Nope\r\n\r\n")
            self.close_connection = True
        else:
            self._send(404, b"not found")

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = _handle


_POLL = 0.02
"""How often serve_forever looks at its shutdown flag (its default, 0.5 s, slows teardown)."""


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.log: list[tuple[str, str, int]] = []
        self.release = threading.Event()

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a client that went away (the timeout tests) is expected here

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def ports(self) -> set[int]:
        return {port for _, _, port in self.log}


@pytest.fixture
def server() -> Iterator[_Server]:
    srv = _Server()
    thread = threading.Thread(target=srv.serve_forever, args=(_POLL,), daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.release.set()
        srv.shutdown()
        srv.server_close()
        thread.join(5)


@pytest.fixture
async def client() -> AsyncIterator[Client]:
    async with Client() as c:
        yield c


# -- priority 1: one request, bodies, HEAD, keep-alive -----------------------------------------


async def test_get_reads_a_content_length_body(server: _Server, client: Client) -> None:
    response = await client.get(server.url + "/hello")
    assert (response.status, response.reason, response.body) == (200, "OK", b"hello")
    assert response.headers["content-length"] == "5"


async def test_get_reads_a_chunked_body(server: _Server, client: Client) -> None:
    response = await client.get(server.url + "/chunked")
    assert response.body == b"one two three"
    assert client.idle_connections() == 1


async def test_keep_alive_reuses_one_connection(server: _Server, client: Client) -> None:
    for path in ("/hello", "/chunked", "/big?n=70000", "/hello"):
        assert (await client.get(server.url + path)).status == 200
    assert len(server.log) == 4
    assert len(server.ports()) == 1
    assert client.idle_connections() == 1
    stats = client.statistics()
    assert (stats.connections_opened, stats.connections_reused) == (1, 3)


async def test_head_has_no_body_and_keeps_the_connection(server: _Server, client: Client) -> None:
    head = await client.request("HEAD", server.url + "/big?n=5000")
    assert (head.status, head.body, head.headers["content-length"]) == (200, b"", "5000")
    assert (await client.get(server.url + "/hello")).body == b"hello"
    assert len(server.ports()) == 1


async def test_post_sends_a_bytes_body_and_the_host_header(
    server: _Server, client: Client
) -> None:
    response = await client.post(server.url + "/echo", body=b"ping" * 1000)
    assert response.body == b"ping" * 1000
    assert response.headers["x-method"] == "POST"
    assert response.headers["x-host"] == f"127.0.0.1:{server.server_address[1]}"


async def test_post_streams_an_async_iterable_body_chunked(
    server: _Server, client: Client
) -> None:
    async def parts() -> AsyncIterator[bytes]:
        for part in (b"a" * 10, b"", b"b" * 70000):
            yield part

    response = await client.post(server.url + "/echo", body=parts())
    assert response.body == b"a" * 10 + b"b" * 70000
    assert response.headers["x-framing"] == "chunked"


async def test_a_body_framed_by_eof_is_read_and_not_pooled(
    server: _Server, client: Client
) -> None:
    assert (await client.get(server.url + "/until-eof")).body == b"framed by the close"
    assert client.idle_connections() == 0


async def test_connection_close_response_is_not_pooled(server: _Server, client: Client) -> None:
    assert (await client.get(server.url + "/close")).body == b"bye"
    assert client.idle_connections() == 0
    assert (await client.get(server.url + "/hello")).body == b"hello"
    assert len(server.ports()) == 2


async def test_response_over_max_response_bytes_is_refused_from_content_length(
    server: _Server,
) -> None:
    async with Client(max_response_bytes=1000) as client:
        with pytest.raises(ResponseTooLarge, match="max_response_bytes"):
            await client.get(server.url + "/big?n=1001")
        assert client.idle_connections() == 0
        assert (await client.get(server.url + "/big?n=1000")).body == b"x" * 1000


async def test_chunked_response_over_max_response_bytes_is_cut_as_it_streams(
    server: _Server,
) -> None:
    async with Client(max_response_bytes=2500) as client:
        with pytest.raises(ResponseTooLarge):
            await client.get(server.url + "/bigchunked?n=5000")
        assert client.idle_connections() == 0


async def test_stream_reads_a_big_body_in_pieces_then_pools_it(
    server: _Server, client: Client
) -> None:
    total = 0
    async with client.stream("GET", server.url + "/bigchunked?n=2000000") as response:
        assert response.status == 200
        async for chunk in response.body:  # type: ignore[union-attr]
            total += len(chunk)
    assert total == 2_000_000  # past max_response_bytes: streaming leaves the limit to us
    assert client.idle_connections() == 1


async def test_stream_left_early_closes_its_connection(server: _Server, client: Client) -> None:
    async with client.stream("GET", server.url + "/bigchunked?n=200000") as response:
        async for _ in response.body:  # type: ignore[union-attr]
            break
    assert client.idle_connections() == 0
    assert (await client.get(server.url + "/hello")).body == b"hello"
    assert len(server.ports()) == 2


async def test_cancelled_request_does_not_pool_its_connection(server: _Server) -> None:
    # One connection allowed: a permit kept by the cancelled request would stop the next one.
    async with Client(max_connections_per_origin=1, pool_timeout=1) as client:
        with trio.move_on_after(0.2):
            await client.get(server.url + "/slow")
        assert client.idle_connections() == 0
        assert client.statistics().requests_in_flight == 0
        server.release.set()
        assert (await client.get(server.url + "/hello")).body == b"hello"


# -- priority 2: pools ---------------------------------------------------------------------


async def test_stale_pooled_connection_is_retried_for_get(server: _Server, client: Client) -> None:
    await client.get(server.url + "/then-close")
    assert client.idle_connections() == 1  # it looked reusable
    assert (await client.get(server.url + "/hello")).body == b"hello"
    assert len(server.ports()) == 2
    stats = client.statistics()
    assert (stats.connections_opened, stats.connections_reused, stats.stale_retries) == (2, 1, 1)
    assert (stats.requests_in_flight, stats.idle_connections, stats.origins) == (0, 1, 1)


async def test_stale_pooled_connection_is_not_retried_for_post(
    server: _Server, client: Client
) -> None:
    await client.get(server.url + "/then-close")
    with pytest.raises(RemoteProtocolError, match="not retried"):
        await client.post(server.url + "/echo", body=b"once")
    assert [entry[:2] for entry in server.log] == [("GET", "/then-close")]


async def test_pool_timeout_when_every_connection_is_busy(server: _Server) -> None:
    client = Client(max_connections_per_origin=1, pool_timeout=0.1)
    async with client, client.stream("GET", server.url + "/hello"):
        with pytest.raises(PoolTimeout, match="max_connections_per_origin") as info:
            await client.get(server.url + "/hello")
        assert isinstance(info.value, TimeoutError)


async def test_a_waiter_gets_the_connection_that_comes_back(server: _Server) -> None:
    bodies = []
    async with Client(max_connections_per_origin=1) as client:

        async def second() -> None:
            bodies.append((await client.get(server.url + "/chunked")).body)

        first_stream = client.stream("GET", server.url + "/hello")
        async with trio.open_nursery() as nursery, first_stream as first:
            nursery.start_soon(second)
            await trio.testing.wait_all_tasks_blocked()
            assert bodies == []
            assert await first.body.read() == b"hello"  # type: ignore[union-attr]
    assert bodies == [b"one two three"]
    assert len(server.ports()) == 1


async def test_concurrent_requests_open_up_to_the_limit(server: _Server) -> None:
    async with Client(max_connections_per_origin=3) as client:
        async with trio.open_nursery() as nursery:
            for _ in range(9):
                nursery.start_soon(client.get, server.url + "/hello")
        assert client.idle_connections() <= 3
    assert len(server.log) == 9
    assert len(server.ports()) <= 3


async def test_an_idle_connection_past_keep_alive_timeout_is_not_reused(
    server: _Server, mock_clock: trio.testing.MockClock
) -> None:
    async with Client(keep_alive_timeout=10) as client:
        await client.get(server.url + "/hello")
        mock_clock.jump(9)
        await client.get(server.url + "/hello")
        assert len(server.ports()) == 1
        mock_clock.jump(11)
        await client.get(server.url + "/hello")
        assert len(server.ports()) == 2
        assert client.idle_connections() == 1


# -- priority 3: timeouts and errors ---------------------------------------------------------


async def test_read_timeout(server: _Server) -> None:
    async with Client(read_timeout=0.1) as client:
        with pytest.raises(ReadTimeout, match="read_timeout") as info:
            await client.get(server.url + "/slow")
        assert isinstance(info.value, ClientTimeout)
        assert isinstance(info.value, TimeoutError)


async def test_a_read_timeout_on_a_reused_connection_is_not_retried(server: _Server) -> None:
    # A timeout is an OSError too; it must not pass for a stale connection and be re-sent.
    async with Client(read_timeout=0.1) as client:
        await client.get(server.url + "/hello")
        with pytest.raises(ReadTimeout):
            await client.get(server.url + "/slow")
    assert [path for _, path, _ in server.log] == ["/hello", "/slow"]


async def test_write_timeout_when_the_server_stops_reading() -> None:
    with socket.socket() as listener:  # listens, never accepts, never reads
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/"
        async with Client(write_timeout=0.1) as client:
            with pytest.raises(WriteTimeout, match="write_timeout"):
                await client.post(url, body=b"z" * (64 << 20))


class _PairConnector:
    """A Connector over in-memory pairs; ``serve`` runs the server end of each one."""

    def __init__(
        self,
        nursery: trio.Nursery,
        serve: Callable[[MemoryConnection], Awaitable[None]],
    ) -> None:
        self.nursery = nursery
        self.serve = serve

    async def connect(self, host: str, port: int) -> Connection:
        client_end, server_end = memory_connection_pair(buffer=64 * 1024)
        self.nursery.start_soon(self.serve, server_end)
        await trio.lowlevel.checkpoint()
        return client_end


async def _slow_reader(conn: MemoryConnection) -> None:
    """Reads at most 64 KiB a second, then answers with the number of body bytes it read."""
    parser = h11.Connection(h11.SERVER)
    size = 0
    while True:
        event = parser.next_event()
        if event is h11.NEED_DATA:
            await trio.sleep(1)
            parser.receive_data(await conn.receive_some(64 * 1024))
        elif isinstance(event, h11.Data):
            size += len(event.data)
        elif isinstance(event, h11.EndOfMessage):
            break
    body = str(size).encode()
    headers = [("content-length", str(len(body)))]
    await conn.send_all(parser.send(h11.Response(status_code=200, headers=headers)))
    await conn.send_all(parser.send(h11.Data(data=body)) + parser.send(h11.EndOfMessage()))


async def test_a_long_upload_that_makes_progress_is_not_cut(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # 1 MiB at 64 KiB/s takes 16 s: well past write_timeout, yet no write stalls for 5 s.
    async with trio.open_nursery() as nursery:
        connector = _PairConnector(nursery, _slow_reader)
        async with Client(connector=connector, write_timeout=5) as client:
            start = trio.current_time()
            response = await client.post("http://pair/", body=b"u" * (1 << 20))
            assert trio.current_time() - start > 10
    assert response.body == str(1 << 20).encode()


async def test_a_long_response_head_in_one_read_is_refused(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # h11 alone would take it: its limit is checked only while the head is incomplete.
    async def long_head(conn: MemoryConnection) -> None:
        await conn.receive_some(65536)
        filler = b"x" * 20_000
        await conn.send_all(
            b"HTTP/1.1 200 OK\r\nX-Fill: " + filler + b"\r\nContent-Length: 0\r\n\r\n"
        )
        await trio.sleep_forever()

    async with trio.open_nursery() as nursery:
        connector = _PairConnector(nursery, long_head)
        async with Client(connector=connector, max_header_bytes=16384) as client:
            with pytest.raises(RemoteProtocolError, match="max_header_bytes"):
                await client.get("http://pair/")
        nursery.cancel_scope.cancel()


async def test_a_body_still_being_sent_stops_when_the_response_has_ended(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def answers_at_once(conn: MemoryConnection) -> None:
        received = b""
        while b"first" not in received:  # the sender is running the body iterator now
            received += await conn.receive_some(65536)
        await conn.send_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        while await conn.receive_some(65536):
            pass

    finished = trio.Event()

    async def endless() -> AsyncIterator[bytes]:
        try:
            yield b"first"
            await trio.sleep_forever()
            yield b"never"
        finally:
            finished.set()

    async with trio.open_nursery() as nursery:
        connector = _PairConnector(nursery, answers_at_once)
        async with Client(connector=connector) as client:
            assert (await client.post("http://pair/", body=endless())).body == b"ok"
            with trio.fail_after(1):
                await finished.wait()  # the sender was cancelled, not left waiting
            assert client.idle_connections() == 0  # the request was not fully sent
        nursery.cancel_scope.cancel()


class _BlackHole:
    """A Connector whose connects never finish."""

    async def connect(self, host: str, port: int) -> Connection:
        await trio.sleep_forever()
        raise AssertionError("unreachable")


async def test_connect_timeout(autojump_clock: trio.testing.MockClock) -> None:
    async with Client(connector=_BlackHole(), connect_timeout=3) as client:
        start = trio.current_time()
        with pytest.raises(ConnectTimeout, match="connect_timeout"):
            await client.get("http://example.invalid/")
        assert trio.current_time() - start == pytest.approx(3, abs=0.01)


async def test_connection_refused_is_a_connect_error(client: Client) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(ConnectError, match=f"127.0.0.1:{port}"):
        await client.get(f"http://127.0.0.1:{port}/")


async def test_a_malformed_response_is_a_remote_protocol_error(
    server: _Server, client: Client
) -> None:
    with pytest.raises(RemoteProtocolError, match="bad response"):
        await client.get(server.url + "/garbage")
    assert client.idle_connections() == 0


async def test_a_relative_url_without_base_url_is_refused(client: Client) -> None:
    with pytest.raises(ValueError, match="base_url"):
        await client.get("/hello")


# -- priority 4: redirects ------------------------------------------------------------------


async def test_redirects_are_not_followed_by_default(server: _Server, client: Client) -> None:
    response = await client.get(server.url + "/redirect?n=1")
    assert (response.status, response.headers["location"]) == (302, "/redirect?n=0")


async def test_redirects_are_followed_when_asked(server: _Server) -> None:
    async with Client(follow_redirects=True) as client:
        response = await client.get(server.url + "/redirect?n=4&status=307")
    assert response.body == b"hello"
    assert len(server.log) == 6  # five redirects (n=4..0), then /hello


async def test_more_than_max_redirects_raises(server: _Server) -> None:
    async with Client(follow_redirects=True, max_redirects=5) as client:
        with pytest.raises(TooManyRedirects, match="max_redirects"):
            await client.get(server.url + "/redirect?n=5")
    assert len(server.log) == 6


async def test_303_turns_a_post_into_a_get(server: _Server) -> None:
    async with Client(follow_redirects=True) as client:
        response = await client.post(server.url + "/see-other", body=b"form")
    assert (response.headers["x-method"], response.body) == ("GET", b"")


# -- a Service -----------------------------------------------------------------------------


async def test_client_is_a_service_for_absolute_and_base_url_targets(server: _Server) -> None:
    async with Client(base_url=server.url) as client:
        absolute = await client(Request("GET", server.url + "/hello"))
        relative = await client(Request("PUT", "/echo", body=_body(b"put")))
    assert absolute.body == b"hello"
    assert (relative.headers["x-method"], relative.body) == ("PUT", b"put")


def _body(data: bytes) -> Body:
    return Body(data)


async def test_a_service_call_streams_a_long_sized_body_with_its_length(server: _Server) -> None:
    async def parts() -> AsyncIterator[bytes]:
        for _ in range(3):
            yield b"s" * 700_000

    request = Request("POST", server.url + "/echo", body=Body(parts(), length=2_100_000))
    async with Client(max_response_bytes=4 << 20) as client:
        response = await client(request)
    assert len(response.body) == 2_100_000
    assert response.headers["x-framing"] == "length"
    assert "content-length" not in request.headers  # the caller's request is left as it was


async def test_timeout_middleware_layers_on_the_client(server: _Server) -> None:
    async with Client(read_timeout=30) as client:
        svc = ServiceBuilder().timeout(0.1).service(client)
        with pytest.raises(TimeoutError):
            await svc(Request("GET", server.url + "/slow"))
        assert client.idle_connections() == 0
        server.release.set()
        ok = await svc(Request("GET", server.url + "/hello"))
    assert ok.body == b"hello"


# -- TLS --------------------------------------------------------------------------------------


@pytest.fixture
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[_Server, str]]:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(ctx)
    cafile = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(cafile))
    srv = _Server()
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    thread = threading.Thread(target=srv.serve_forever, args=(_POLL,), daemon=True)
    thread.start()
    try:
        yield srv, str(cafile)
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join(5)


async def test_https_verifies_the_server_certificate(tls_server: tuple[_Server, str]) -> None:
    from runtime.net import client_ssl_context

    srv, cafile = tls_server
    url = f"https://127.0.0.1:{srv.server_address[1]}/hello"
    async with Client(ssl_context=client_ssl_context(cafile)) as client:
        assert (await client.get(url)).body == b"hello"
        assert (await client.get(url)).body == b"hello"
    assert len(srv.ports()) == 1
    async with Client() as untrusting:  # the system store does not know the test CA
        with pytest.raises(ConnectError):
            await untrusting.get(url)


# -- against our own server, over the in-memory transport -----------------------------------


class _ListenerConnector:
    """A Connector that reaches one MemoryListener, whatever the host and port."""

    def __init__(self, listener: MemoryListener) -> None:
        self.listener = listener

    async def connect(self, host: str, port: int) -> Connection:
        return await self.listener.connect()


async def _our_handler(request: Request) -> Response:
    if request.path == "/echo":
        return Response(200, body=request.body)  # streams the request body back, chunked
    if request.path == "/big":
        return Response.bytes(b"b" * 3_000_000)
    return Response.text("hi")


@asynccontextmanager
async def _our_server(config: HttpConfig | None = None) -> AsyncIterator[Client]:
    listener = MemoryListener()
    async with trio.open_nursery() as nursery:
        await nursery.start(HttpServer(_our_handler, [listener], config).serve)
        async with Client(connector=_ListenerConnector(listener)) as client:
            yield client
        nursery.cancel_scope.cancel()


async def test_our_server_keeps_one_connection_alive(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with _our_server() as client:
        for _ in range(3):
            response = await client.get("http://ours/")
            assert (response.status, response.body) == (200, b"hi")
        assert response.headers["server"] == "trio-runtime"
        assert client.statistics().connections_opened == 1


async def test_our_server_streams_both_ways(autojump_clock: trio.testing.MockClock) -> None:
    async def parts() -> AsyncIterator[bytes]:
        for i in range(20):
            yield bytes([65 + i]) * 50_000

    async with _our_server() as client:
        response = await client.post("http://ours/echo", body=parts())
        assert response.body == b"".join([bytes([65 + i]) * 50_000 for i in range(20)])
        big = await client.get("http://ours/big")
        assert len(big.body) == 3_000_000
        assert client.statistics().connections_opened == 1


async def test_our_server_closing_an_idle_connection_makes_it_stale(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with _our_server(HttpConfig(keep_alive_timeout=5)) as client:
        await client.get("http://ours/")
        await trio.sleep(10)  # the server's keep-alive passes; the client's (15 s) does not
        assert client.idle_connections() == 1
        assert (await client.get("http://ours/")).body == b"hi"
        stats = client.statistics()
        assert (stats.stale_retries, stats.connections_opened) == (1, 2)


async def test_our_server_refuses_a_big_upload_and_the_client_reads_the_413(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with _our_server(HttpConfig(max_body_bytes=1000)) as client:
        for size in (200_000, 2_000_000):  # sent with the head, and from the body sender
            response = await client.post("http://ours/echo", body=b"x" * size)
            assert response.status == 413


async def test_an_error_of_the_body_iterator_reaches_the_caller_as_itself(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def failing() -> AsyncIterator[bytes]:
        yield b"start"
        raise KeyError("the caller's own bug")

    async with _our_server() as client:
        with pytest.raises(KeyError, match="own bug"):
            await client.post("http://ours/echo", body=failing())
        assert client.statistics().requests_in_flight == 0
        assert (await client.get("http://ours/")).body == b"hi"


async def test_an_error_in_the_client_block_is_not_wrapped_in_a_group() -> None:
    with pytest.raises(LookupError, match="mine"):
        async with Client():
            raise LookupError("mine")


async def test_a_client_used_without_async_with_sends_bodies_itself(server: _Server) -> None:
    async def parts() -> AsyncIterator[bytes]:
        yield b"no nursery, "
        yield b"still sent"

    client = Client()
    try:
        assert (await client.post(server.url + "/echo", body=parts())).body == (
            b"no nursery, still sent"
        )
        big = await client.post(server.url + "/echo", body=b"k" * 1_000_000)
        assert len(big.body) == 1_000_000
    finally:
        await client.aclose()
    assert client.idle_connections() == 0


class _RefusesFirst:
    """Refuses the first connect, then reaches the listener."""

    def __init__(self, listener: MemoryListener) -> None:
        self.listener = listener
        self.refused = 0

    async def connect(self, host: str, port: int) -> Connection:
        if not self.refused:
            self.refused += 1
            raise ConnectionRefusedError("not yet")
        return await self.listener.connect()


async def test_retry_middleware_layers_on_the_client(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Retry sends the same Request again: its body must still be there to send.
    listener = MemoryListener()
    requests = [
        (Request("GET", "http://ours/"), b"hi"),
        (Request("POST", "http://ours/echo", body=Body(b"again")), b"again"),
    ]
    async with trio.open_nursery() as nursery:
        await nursery.start(HttpServer(_our_handler, [listener]).serve)
        for request, expected in requests:
            connector = _RefusesFirst(listener)
            async with Client(connector=connector) as client:
                svc = ServiceBuilder().retry(RetryOn(ConnectError, attempts=2)).service(client)
                assert (await svc(request)).body == expected
            assert connector.refused == 1
        nursery.cancel_scope.cancel()
