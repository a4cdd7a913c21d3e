"""wss://: our client over the TLS connector against our server with a TLS listener, and
trio-websocket's client against the same; certificates from trustme."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import trio
import trio_websocket
import trustme

from runtime.http import HttpServer, Router, WebSocket, ws_connect
from runtime.net import TcpListener


async def echo(ws: WebSocket) -> None:
    async for message in ws:
        await ws.send(message)


@pytest.fixture
def ca() -> trustme.CA:
    return trustme.CA()


@asynccontextmanager
async def tls_server(ca: trustme.CA) -> AsyncIterator[int]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", "127.0.0.1").configure_cert(context)
    router = Router()
    router.ws("/echo", echo)
    listener = TcpListener.bind("127.0.0.1", 0)
    async with trio.open_nursery() as nursery:
        await nursery.start(HttpServer(router, [listener], tls=context).serve)
        yield listener.port
        nursery.cancel_scope.cancel()


def client_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


async def test_our_client_speaks_wss_to_our_server(ca: trustme.CA) -> None:
    with trio.fail_after(10):
        async with (
            tls_server(ca) as port,
            ws_connect(f"wss://localhost:{port}/echo", ssl_context=client_context(ca)) as ws,
        ):
            await ws.send("over TLS")
            assert await ws.receive() == "over TLS"
            big = bytes(range(256)) * 400  # 100 KiB: many TLS records
            await ws.send(big)
            assert await ws.receive() == big
        assert ws.close_code == 1000


async def test_trio_websockets_client_speaks_wss_to_our_server(ca: trustme.CA) -> None:
    with trio.fail_after(10):
        async with (
            tls_server(ca) as port,
            trio_websocket.open_websocket_url(
                f"wss://localhost:{port}/echo", ssl_context=client_context(ca)
            ) as ws,
        ):
            await ws.send_message("hello")
            assert await ws.get_message() == "hello"


async def test_wss_with_an_untrusted_certificate_fails_the_connect(ca: trustme.CA) -> None:
    stranger = ssl.create_default_context()
    trustme.CA().configure_trust(stranger)  # trusts another CA only
    with trio.fail_after(10):
        async with tls_server(ca) as port:
            with pytest.raises((ssl.SSLError, trio.BrokenResourceError)):
                async with ws_connect(f"wss://localhost:{port}/echo", ssl_context=stranger):
                    pass
