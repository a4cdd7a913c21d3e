"""WebSocket on the HTTP server's port: interop with trio-websocket's client, and the protocol
behaviours with raw frames (wsproto builds frames a client library would refuse to send)."""

from __future__ import annotations

import base64
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import trio
import trio.testing
import trio_websocket
from wsproto.connection import Connection as WsConnection
from wsproto.connection import ConnectionType
from wsproto.events import BytesMessage, CloseConnection, Ping, Pong, TextMessage

from runtime.http import (
    ConnectionClosed,
    HandshakeError,
    HttpServer,
    Router,
    WebSocket,
    WebSocketConfig,
    serve,
    ws_connect,
)
from runtime.net import TcpListener
from runtime.testing import MemoryConnection, MemoryListener


async def echo(ws: WebSocket) -> None:
    async for message in ws:
        await ws.send(message)


def app(config: WebSocketConfig | None = None) -> Router:
    router = Router()
    router.ws("/echo", echo, config)
    return router


@asynccontextmanager
async def tcp_server(router: Router) -> AsyncIterator[int]:
    listener = TcpListener.bind("127.0.0.1", 0)
    async with trio.open_nursery() as nursery:
        await nursery.start(lambda task_status: serve(router, [listener], task_status=task_status))
        yield listener.port
        nursery.cancel_scope.cancel()


async def test_trio_websockets_client_talks_to_our_server() -> None:
    with trio.fail_after(10):
        async with (
            tcp_server(app()) as port,
            trio_websocket.open_websocket_url(f"ws://127.0.0.1:{port}/echo") as ws,
        ):
            await ws.send_message("hello")
            assert await ws.get_message() == "hello"
            await ws.send_message(b"\x00\x01 binary")
            assert await ws.get_message() == b"\x00\x01 binary"
            big = "x" * 200_000
            await ws.send_message(big)
            assert await ws.get_message() == big


async def test_a_plain_request_to_a_websocket_route_gets_426() -> None:
    with trio.fail_after(10):
        async with tcp_server(app()) as port:
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            await stream.send_all(b"GET /echo HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
            data = b""
            while chunk := await stream.receive_some():
                data += chunk
    assert data.startswith(b"HTTP/1.1 426 ")
    assert b"upgrade: websocket" in data


KEY = base64.b64encode(os.urandom(16)).decode()


def handshake(version: str = "13", origin: str | None = None, key: str = KEY) -> bytes:
    lines = [
        "GET /echo HTTP/1.1",
        "Host: a",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        f"Sec-WebSocket-Version: {version}",
    ]
    if origin is not None:
        lines.append(f"Origin: {origin}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def read_head(client: MemoryConnection) -> tuple[bytes, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = await client.receive_some()
        assert chunk, data
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    return head, rest


@asynccontextmanager
async def raw(config: WebSocketConfig | None = None) -> AsyncIterator[MemoryConnection]:
    listener = MemoryListener()
    async with trio.open_nursery() as nursery:
        await nursery.start(HttpServer(app(config), [listener]).serve)
        yield await listener.connect()
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize(
    ("request_bytes", "status", "header"),
    [
        (handshake(version="8"), b"426", b"sec-websocket-version: 13"),
        (handshake(key="short"), b"400", b""),
        (handshake(origin="https://evil.example"), b"403", b""),
    ],
    ids=["version", "bad-key", "origin"],
)
async def test_a_bad_handshake_gets_an_http_error(
    request_bytes: bytes, status: bytes, header: bytes
) -> None:
    config = WebSocketConfig(allowed_origins=["https://good.example"])
    async with raw(config) as client:
        await client.send_all(request_bytes)
        head, _ = await read_head(client)
    assert head.split(b" ")[1] == status, head
    assert header in head


class RawClient:
    """A WebSocket client on wsproto's frame layer, over a memory connection."""

    def __init__(self, stream: MemoryConnection, rest: bytes) -> None:
        self.stream = stream
        self.ws = WsConnection(ConnectionType.CLIENT)
        if rest:
            self.ws.receive_data(rest)

    async def events(self) -> list[object]:
        found = list(self.ws.events())
        while not found:
            data = await self.stream.receive_some()
            self.ws.receive_data(data or None)
            found = list(self.ws.events())
        return found


async def open_raw(client: MemoryConnection, origin: str | None = None) -> RawClient:
    await client.send_all(handshake(origin=origin))
    head, rest = await read_head(client)
    assert head.startswith(b"HTTP/1.1 101 "), head
    return RawClient(client, rest)


async def test_fragments_are_reassembled_and_pings_answered() -> None:
    async with raw() as client:
        c = await open_raw(client)
        await client.send_all(c.ws.send(TextMessage(data="hel", message_finished=False)))
        await client.send_all(c.ws.send(Ping(payload=b"p")))
        await client.send_all(c.ws.send(TextMessage(data="lo", message_finished=True)))
        seen: list[object] = []
        while not any(isinstance(e, TextMessage) for e in seen):
            seen += await c.events()
        assert any(isinstance(e, Pong) and e.payload == b"p" for e in seen)
        text = [e for e in seen if isinstance(e, TextMessage)]
        assert text[0].data == "hello"


async def test_a_message_over_max_message_size_closes_with_1009() -> None:
    async with raw(WebSocketConfig(max_message_size=1000)) as client:
        c = await open_raw(client)
        await client.send_all(c.ws.send(BytesMessage(data=b"x" * 2000)))
        (event,) = [e for e in await c.events() if isinstance(e, CloseConnection)]
        assert event.code == 1009


async def test_invalid_utf8_closes_with_1007() -> None:
    async with raw() as client:
        c = await open_raw(client)
        # a masked text frame whose payload is not UTF-8, built by hand
        mask = b"\x01\x02\x03\x04"
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(b"\xff\xfe"))
        await client.send_all(b"\x81\x82" + mask + payload)
        (event,) = [e for e in await c.events() if isinstance(e, CloseConnection)]
        assert event.code == 1007


async def test_an_unmasked_client_frame_closes_with_1002() -> None:
    async with raw() as client:
        c = await open_raw(client)
        await client.send_all(b"\x81\x05hello")  # no mask bit
        (event,) = [e for e in await c.events() if isinstance(e, CloseConnection)]
        assert event.code == 1002


async def test_a_peer_that_never_pongs_is_closed(autojump_clock: trio.testing.MockClock) -> None:
    config = WebSocketConfig(ping_interval=5, ping_timeout=5)
    async with raw(config) as client:
        await open_raw(client)
        start = trio.current_time()
        while await client.receive_some():  # pings arrive; we never answer
            pass
        assert 10 <= trio.current_time() - start <= 11


async def test_the_closing_handshake_completes_from_the_client() -> None:
    async with raw() as client:
        c = await open_raw(client)
        await client.send_all(c.ws.send(CloseConnection(code=1000, reason="bye")))
        (event,) = [e for e in await c.events() if isinstance(e, CloseConnection)]
        assert event.code == 1000
        assert await client.receive_some() == b""


async def test_a_drain_closes_open_websockets_with_1001() -> None:
    listener = MemoryListener()
    server = HttpServer(app(), [listener])
    async with trio.open_nursery() as nursery:
        await nursery.start(server.serve)
        client = await listener.connect()
        c = await open_raw(client)
        await trio.testing.wait_all_tasks_blocked()
        server.drain()
        (event,) = [e for e in await c.events() if isinstance(e, CloseConnection)]
        assert event.code == 1001
        await client.send_all(c.ws.send(event.response()))
    assert server.server.statistics().active == 0


async def test_our_client_talks_to_trio_websockets_server() -> None:
    async def handler(request: trio_websocket.WebSocketRequest) -> None:
        ws = await request.accept()
        while True:
            try:
                message = await ws.get_message()
            except trio_websocket.ConnectionClosed:
                return
            await ws.send_message(message)

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            server = await nursery.start(
                trio_websocket.serve_websocket, handler, "127.0.0.1", 0, None
            )
            port = server.port
            async with ws_connect(f"ws://127.0.0.1:{port}/") as ws:
                await ws.send("hello")
                assert await ws.receive() == "hello"
                await ws.send(b"\x00bin")
                assert await ws.receive() == b"\x00bin"
                big = b"y" * 300_000
                await ws.send(big)
                assert await ws.receive() == big
            nursery.cancel_scope.cancel()


async def test_our_client_and_server_close_cleanly_and_negotiate_a_subprotocol() -> None:
    router = Router()
    seen: list[str | None] = []

    async def chat(ws: WebSocket) -> None:
        seen.append(ws.subprotocol)
        async for message in ws:
            await ws.send(f"echo: {message!s}")

    router.ws("/chat", chat, WebSocketConfig(subprotocols=["chat.v2", "chat.v1"]))
    with trio.fail_after(10):
        async with tcp_server(router) as port:
            url = f"ws://127.0.0.1:{port}/chat"
            async with ws_connect(url, subprotocols=["chat.v1"]) as ws:
                assert ws.subprotocol == "chat.v1"
                await ws.send("hi")
                assert await ws.receive() == "echo: hi"
            assert ws.close_code == 1000
            with pytest.raises(HandshakeError) as refused:
                async with ws_connect(f"ws://127.0.0.1:{port}/nowhere"):
                    pass
            assert refused.value.status == 404
    assert seen == ["chat.v1"]


def one_route(handler: object, config: WebSocketConfig | None = None) -> Router:
    router = Router()
    router.ws("/echo", handler, config)  # type: ignore[arg-type]
    return router


@asynccontextmanager
async def raw_app(router: Router) -> AsyncIterator[MemoryConnection]:
    listener = MemoryListener()
    async with trio.open_nursery() as nursery:
        await nursery.start(HttpServer(router, [listener]).serve)
        yield await listener.connect()
        nursery.cancel_scope.cancel()


async def test_an_allowed_origin_is_accepted() -> None:
    async with raw(WebSocketConfig(allowed_origins=["https://good.example"])) as client:
        c = await open_raw(client, origin="https://good.example")
        await client.send_all(c.ws.send(TextMessage(data="ok")))
        events = await c.events()
        assert [e.data for e in events if isinstance(e, TextMessage)] == ["ok"]


async def test_a_fragmented_message_over_the_limit_closes_with_1009() -> None:
    async with raw(WebSocketConfig(max_message_size=1000)) as client:
        c = await open_raw(client)
        for _ in range(3):  # 3 fragments of 400: each under the limit, the message over it
            await client.send_all(c.ws.send(BytesMessage(data=b"x" * 400, message_finished=False)))
        (event,) = [e for e in await c.events() if isinstance(e, CloseConnection)]
        assert event.code == 1009


async def test_a_handler_that_fails_closes_with_1011(caplog: pytest.LogCaptureFixture) -> None:
    async def broken(ws: WebSocket) -> None:
        await ws.receive()
        raise RuntimeError("handler bug")

    async with raw_app(one_route(broken)) as client:
        c = await open_raw(client)
        await client.send_all(c.ws.send(TextMessage(data="boom")))
        (event,) = [e for e in await c.events() if isinstance(e, CloseConnection)]
        assert event.code == 1011
    assert "WebSocket handler failed" in caplog.text


async def test_a_peer_that_stops_reading_is_closed_after_send_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    done = trio.Event()
    closed_with: list[int] = []

    async def flood(ws: WebSocket) -> None:
        try:
            while True:
                await ws.send(b"z" * 65536)  # waits while the peer does not read
        except ConnectionClosed as exc:
            closed_with.append(exc.code)
        finally:
            done.set()

    config = WebSocketConfig(send_timeout=5)
    async with raw_app(one_route(flood, config)) as client:
        await open_raw(client)
        start = trio.current_time()
        await done.wait()  # the client never reads again
        assert 5 <= trio.current_time() - start <= 6
    assert closed_with == [1006]


async def test_the_closing_handshake_from_the_server_has_a_deadline(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def bye(ws: WebSocket) -> None:
        await ws.aclose(1000, "bye")

    config = WebSocketConfig(close_timeout=3)
    async with raw_app(one_route(bye, config)) as client:
        c = await open_raw(client)
        start = trio.current_time()
        (event,) = [e for e in await c.events() if isinstance(e, CloseConnection)]
        assert (event.code, event.reason) == (1000, "bye")
        while await client.receive_some():  # we never answer the close
            pass
        assert 3 <= trio.current_time() - start <= 4


async def test_a_cancelled_send_closes_the_websocket_instead_of_leaving_half_a_frame(
    autojump_clock: trio.testing.MockClock,
) -> None:
    outcome: list[object] = []

    async def stuck(ws: WebSocket) -> None:
        with trio.move_on_after(1):  # the handler's own deadline, not send_timeout
            while True:
                await ws.send(b"z" * 65536)  # the peer never reads
        outcome.append(ws.close_code)
        try:
            await ws.send("after")
        except ConnectionClosed as exc:
            outcome.append(exc.code)

    async with raw_app(one_route(stuck)) as client:
        await open_raw(client)
        while not outcome or len(outcome) < 2:
            await trio.sleep(0.5)
    assert outcome == [1006, 1006]
