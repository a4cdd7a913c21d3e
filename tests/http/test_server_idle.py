"""Between requests: the warm wait (in the request scope) and the cold one (no scope, no
parser), the keep-alive deadline across both, and a drain in either."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from runtime.http import HttpConfig, HttpServer, Request, Response
from runtime.http import _server as server_module
from runtime.http._httptools import HttptoolsParser
from runtime.testing import MemoryConnection, MemoryListener

GET = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"


async def hello(request: Request) -> Response:
    return Response.text("hi")


async def read_response(client: MemoryConnection) -> bytes:
    """One small response (this handler's): read until its body."""
    received = b""
    while not received.endswith(b"hi"):
        chunk = await client.receive_some()
        assert chunk, f"closed after {received!r}"
        received += chunk
    return received


def connections(server: HttpServer) -> list[server_module._HttpConnection]:
    return list(server._connections)


async def test_a_connection_idle_past_the_warm_wait_goes_cold_and_still_serves(
    autojump_clock: trio.testing.MockClock,
) -> None:
    listener = MemoryListener()
    server = HttpServer(hello, [listener], HttpConfig(keep_alive_timeout=30))
    async with trio.open_nursery() as nursery:
        await nursery.start(server.serve)
        client = await listener.connect()
        await client.send_all(GET)
        await read_response(client)
        await trio.testing.wait_all_tasks_blocked()
        (conn,) = connections(server)
        assert conn.phase == server_module._WARM  # waits in its scope, right after a request
        await trio.sleep(server_module._WARM_IDLE + 0.5)
        assert conn.phase == server_module._IDLE  # cold: no scope, no parser
        assert conn.h11 is None and conn.scope is server_module._NO_SCOPE
        await client.send_all(GET)
        assert b"200 OK" in await read_response(client)  # the same connection goes on
        assert server.server.statistics().accepted == 1
        nursery.cancel_scope.cancel()


async def test_the_keep_alive_deadline_counts_the_warm_and_the_cold_wait(
    autojump_clock: trio.testing.MockClock,
) -> None:
    listener = MemoryListener()
    server = HttpServer(hello, [listener], HttpConfig(keep_alive_timeout=5))
    async with trio.open_nursery() as nursery:
        await nursery.start(server.serve)
        client = await listener.connect()
        await client.send_all(GET)
        await read_response(client)
        start = trio.current_time()
        assert await client.receive_some() == b""  # a quiet close, no 408
        assert 5 <= trio.current_time() - start <= 5.1
        nursery.cancel_scope.cancel()


async def test_a_keep_alive_shorter_than_the_warm_wait_closes_warm(
    autojump_clock: trio.testing.MockClock,
) -> None:
    listener = MemoryListener()
    server = HttpServer(hello, [listener], HttpConfig(keep_alive_timeout=0.3))
    async with trio.open_nursery() as nursery:
        await nursery.start(server.serve)
        client = await listener.connect()
        await client.send_all(GET)
        await read_response(client)
        start = trio.current_time()
        assert await client.receive_some() == b""
        assert 0.3 <= trio.current_time() - start <= 0.35
        nursery.cancel_scope.cancel()


async def test_a_drain_closes_warm_and_cold_connections_and_serve_returns(
    autojump_clock: trio.testing.MockClock,
) -> None:
    listener = MemoryListener()
    server = HttpServer(hello, [listener])
    async with trio.open_nursery() as nursery:
        await nursery.start(server.serve)
        cold = await listener.connect()
        await cold.send_all(GET)
        await read_response(cold)
        await trio.sleep(server_module._WARM_IDLE + 0.5)  # this one has gone cold
        warm = await listener.connect()
        await warm.send_all(GET)
        await read_response(warm)
        await trio.testing.wait_all_tasks_blocked()
        phases = sorted(c.phase for c in connections(server))
        assert phases == sorted([server_module._IDLE, server_module._WARM])
        start = trio.current_time()
        server.drain()
        assert await warm.receive_some() == b""
        assert await cold.receive_some() == b""
        assert trio.current_time() - start <= server_module._DRAIN_IDLE_GRACE + 0.01
    assert server.server.statistics().active == 0


async def test_a_request_sent_just_as_the_drain_starts_is_answered_with_close(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # The drain runs before the connection's task sees the bytes: the grace lets them in.
    listener = MemoryListener()
    server = HttpServer(hello, [listener])
    async with trio.open_nursery() as nursery:
        await nursery.start(server.serve)
        client = await listener.connect()
        await client.send_all(GET)
        await read_response(client)
        await trio.testing.wait_all_tasks_blocked()
        await client.send_all(GET)  # no checkpoint between this and the drain
        server.drain()
        received = b""
        while chunk := await client.receive_some():
            received += chunk
    assert received.count(b"HTTP/1.1 200 OK") == 1
    assert b"connection: close" in received


async def test_a_client_reset_while_cold_ends_only_that_connection(
    autojump_clock: trio.testing.MockClock,
) -> None:
    listener = MemoryListener()
    server = HttpServer(hello, [listener])
    async with trio.open_nursery() as nursery:
        await nursery.start(server.serve)
        gone = await listener.connect()
        await gone.send_all(GET)
        await read_response(gone)
        await trio.sleep(server_module._WARM_IDLE + 0.5)
        gone.close()
        other = await listener.connect()
        await other.send_all(GET)
        assert b"200 OK" in await read_response(other)
        await trio.testing.wait_all_tasks_blocked()
        assert server.server.statistics().errored == 0
        nursery.cancel_scope.cancel()


# -- unread and over-framed bodies ----------------------------------------------------------


async def test_the_unread_rest_of_a_body_trickling_in_is_cut_after_body_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    listener = MemoryListener()
    server = HttpServer(hello, [listener], HttpConfig(body_timeout=10))
    async with trio.open_nursery() as nursery:
        await nursery.start(server.serve)
        client = await listener.connect()
        await client.send_all(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 100000\r\n\r\nx")
        assert b"200 OK" in await read_response(client)  # answered without reading the body
        start = trio.current_time()
        closed = False
        with trio.move_on_after(60):
            while not closed:
                try:
                    await client.send_all(b"x")  # one byte every 5 s: progress, but slow
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    break
                with trio.move_on_after(5):
                    closed = await client.receive_some() == b""
        assert closed or trio.current_time() - start < 60
        assert trio.current_time() - start <= 10 + 5 + 0.1  # body_timeout in all, not per byte
        nursery.cancel_scope.cancel()


async def test_endless_chunk_extensions_do_not_dodge_the_body_limit(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def reader(request: Request) -> Response:
        await request.body.read()
        return Response.text("hi")

    config = HttpConfig(max_body_bytes=1000, max_header_bytes=1024)
    listener = MemoryListener()
    server = HttpServer(reader, [listener], config)
    async with trio.open_nursery() as nursery:
        await nursery.start(server.serve)
        client = await listener.connect()
        await client.send_all(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n")
        received = b""
        try:
            for _ in range(100):  # 100 chunks of 1 byte, each with a 100-byte extension
                await client.send_all(b"1;ext=" + b"e" * 100 + b"\r\nx\r\n")
                await trio.testing.wait_all_tasks_blocked()
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        while chunk := await client.receive_some():
            received += chunk
        assert received.startswith(b"HTTP/1.1 400 "), received
        assert b"chunked framing" in received
        nursery.cancel_scope.cancel()


async def test_an_overlong_chunk_extension_over_several_reads_is_400_not_431(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def reader(request: Request) -> Response:
        await request.body.read()
        return Response.text("hi")

    listener = MemoryListener()
    server = HttpServer(reader, [listener], HttpConfig(max_header_bytes=1024))
    async with trio.open_nursery() as nursery:
        await nursery.start(server.serve)
        client = await listener.connect()
        await client.send_all(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n")
        await client.send_all(b"5;ext=")
        received = b""
        try:
            for _ in range(40):  # an extension that never ends, 100 bytes a read
                await client.send_all(b"e" * 100)
                await trio.testing.wait_all_tasks_blocked()
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        while chunk := await client.receive_some():
            received += chunk
        assert received.startswith(b"HTTP/1.1 400 "), received
        nursery.cancel_scope.cancel()


async def test_a_request_that_comes_as_the_warm_wait_ends_is_answered(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The warm wait's timer fires while the server task has the next request's bytes in
    hand but has not run yet: its scope is cancelled to go cold. Those bytes must be served,
    not dropped at the next checkpoint (a keep-alive request then went unanswered, about one
    in sixty with requests a second apart). The memory transport's send_all hands the bytes
    over without a checkpoint after it, so the timer's callback runs right then, by hand."""
    listener = MemoryListener()
    server = HttpServer(hello, [listener], HttpConfig(keep_alive_timeout=600))
    async with trio.open_nursery() as nursery:
        await nursery.start(server.serve)
        client = await listener.connect()
        await client.send_all(GET)
        assert b"200 OK" in await read_response(client)
        await trio.testing.wait_all_tasks_blocked()
        (conn,) = connections(server)
        assert conn.phase == server_module._WARM
        await client.send_all(GET)  # the server task is woken with the bytes, not yet run
        conn._io_expired()  # ...and the warm timer fires just then
        with trio.fail_after(5):
            assert b"200 OK" in await read_response(client)
        assert server.server.statistics().accepted == 1
        nursery.cancel_scope.cancel()


async def test_httptools_parser_is_kept_while_warm_and_let_go_cold_and_at_the_end(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # A busy connection parses its requests with one httptools parser; going cold or closing
    # lets go of it, and of httptools' own parser, which holds its callbacks (a cycle that
    # only the garbage collector would free otherwise: one per request, before).
    pytest.importorskip("httptools")
    listener = MemoryListener()
    server = HttpServer(hello, [listener], HttpConfig(keep_alive_timeout=30, parser="httptools"))
    async with trio.open_nursery() as nursery:
        await nursery.start(server.serve)
        client = await listener.connect()
        await client.send_all(GET)
        await read_response(client)
        await trio.testing.wait_all_tasks_blocked()
        (conn,) = connections(server)
        first = conn.h11
        assert isinstance(first, HttptoolsParser)
        for _ in range(3):
            await client.send_all(GET)
            assert b"200 OK" in await read_response(client)
            await trio.testing.wait_all_tasks_blocked()
            assert conn.h11 is first  # warm: the same parser, request after request
        await trio.sleep(server_module._WARM_IDLE + 0.5)
        assert conn.h11 is None and first._parser is None  # cold: let go, cycle broken
        await client.send_all(GET)
        assert b"200 OK" in await read_response(client)
        await trio.testing.wait_all_tasks_blocked()
        second = conn.h11
        assert isinstance(second, HttptoolsParser) and second is not first
        await client.aclose()
        await trio.testing.wait_all_tasks_blocked()
        assert not connections(server)
        assert second._parser is None  # closed: let go at the end too
        nursery.cancel_scope.cancel()
