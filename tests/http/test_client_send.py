"""Client.send: the head at once, a small body read with it, a long one left to stream.

The upstream here is a raw loopback server that answers with exactly the bytes each test
gives, in one write or in pieces, and keeps every request head it read.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest
import trio
import trio.testing

from runtime.http import Body, Client, ReadTimeout

GUARD = 10.0  # a hang guard, not a speed claim


@asynccontextmanager
async def raw_server(
    answer: Callable[[trio.SocketStream, bytes], object],
) -> AsyncIterator[tuple[str, list[bytes]]]:
    """Serves each request head (keep-alive) with ``answer(stream, head)``."""
    heads: list[bytes] = []

    async def handle(stream: trio.SocketStream) -> None:
        buffer = b""
        try:
            while True:
                while b"\r\n\r\n" not in buffer:
                    chunk = await stream.receive_some()
                    if not chunk:
                        return
                    buffer += chunk
                head, _, buffer = buffer.partition(b"\r\n\r\n")
                heads.append(head)
                await answer(stream, head)  # type: ignore[misc]
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass

    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(trio.serve_listeners, handle, listeners)
        yield f"http://127.0.0.1:{listeners[0].socket.getsockname()[1]}", heads
        nursery.cancel_scope.cancel()


async def whole(stream: trio.SocketStream, head: bytes) -> None:
    await stream.send_all(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")


async def test_a_small_body_that_came_with_the_head_is_read_and_the_connection_is_back() -> None:
    with trio.fail_after(GUARD):
        async with raw_server(whole) as (url, _), Client() as client:
            response = await client.send("GET", url + "/")
            assert isinstance(response.body, Body)
            assert response.body.buffered == b"hello"
            assert client.idle_connections() == 1  # back in the pool before the body is read
            assert await response.body.read() == b"hello"
            assert response.body.buffered is None  # read: nothing left to hand over
            again = await client.send("GET", url + "/")
            assert isinstance(again.body, Body)
            assert again.body.buffered == b"hello"
            assert client.statistics().connections_reused == 1


async def test_a_body_still_on_its_way_streams_and_aclose_closes_its_connection() -> None:
    sent = trio.Event()

    async def slow_body(stream: trio.SocketStream, head: bytes) -> None:
        await stream.send_all(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n")
        await sent.wait()
        await stream.send_all(b"0123456789")

    with trio.fail_after(GUARD):
        async with raw_server(slow_body) as (url, _), Client() as client:
            response = await client.send("GET", url + "/")
            assert isinstance(response.body, Body)
            assert response.body.buffered is None  # not here yet: it streams
            assert client.statistics().requests_in_flight == 1
            await response.body.aclose()  # not wanted: the connection can't be reused
            assert client.statistics().requests_in_flight == 0
            assert client.idle_connections() == 0
            with pytest.raises(RuntimeError, match="already read"):
                await response.body.read()
            sent.set()


async def test_a_streamed_body_read_to_its_end_returns_the_connection() -> None:
    async def pieces(stream: trio.SocketStream, head: bytes) -> None:
        await stream.send_all(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nabc")
        await trio.testing.wait_all_tasks_blocked()
        await stream.send_all(b"def")

    with trio.fail_after(GUARD):
        async with raw_server(pieces) as (url, _), Client() as client:
            response = await client.send("GET", url + "/")
            assert isinstance(response.body, Body)
            assert await response.body.read() == b"abcdef"
            assert client.idle_connections() == 1


async def test_stream_keeps_the_connection_until_the_block_ends() -> None:
    with trio.fail_after(GUARD):
        async with raw_server(whole) as (url, _), Client() as client:
            async with client.stream("GET", url + "/") as response:
                assert isinstance(response.body, Body)
                assert response.body.buffered is None  # stream() never reads ahead
                assert client.idle_connections() == 0
                assert await response.body.read() == b"hello"
            assert client.idle_connections() == 1


async def test_repeated_header_names_are_all_sent_and_defaults_give_way() -> None:
    with trio.fail_after(GUARD):
        async with (
            raw_server(whole) as (url, heads),
            Client(headers={"user-agent": "ours", "x-default": "kept"}) as client,
        ):
            await client.request(
                "GET",
                url + "/",
                headers=[
                    ("x-forwarded-for", "10.0.0.1"),
                    ("x-forwarded-for", "10.0.0.2"),
                    ("User-Agent", "theirs"),
                ],
            )
    lines = heads[0].decode().lower().split("\r\n")
    assert lines.count("x-forwarded-for: 10.0.0.1") == 1
    assert lines.count("x-forwarded-for: 10.0.0.2") == 1
    assert "user-agent: theirs" in lines and "user-agent: ours" not in lines
    assert "x-default: kept" in lines


async def test_urls_to_a_known_origin_keep_their_path_and_query() -> None:
    with trio.fail_after(GUARD):
        async with raw_server(whole) as (url, heads), Client() as client:
            for target in ("/a?x=1", "/b#frag", "?q", "", "/c/d?e=f&g=h#i"):
                await client.request("GET", url + target)
    assert [h.split(b"\r\n")[0] for h in heads] == [
        b"GET /a?x=1 HTTP/1.1",
        b"GET /b HTTP/1.1",
        b"GET /?q HTTP/1.1",
        b"GET / HTTP/1.1",
        b"GET /c/d?e=f&g=h HTTP/1.1",
    ]


async def test_without_a_read_timeout_a_callers_deadline_governs() -> None:
    async def silent(stream: trio.SocketStream, head: bytes) -> None:
        await trio.sleep_forever()

    with trio.fail_after(GUARD):
        async with raw_server(silent) as (url, _), Client(read_timeout=math.inf) as client:
            with trio.move_on_after(0.2) as scope:  # the caller's own deadline
                await client.request("GET", url + "/")
            assert scope.cancelled_caught
            assert client.statistics().requests_in_flight == 0
        async with raw_server(silent) as (url, _), Client(read_timeout=0.2) as client:
            with pytest.raises(ReadTimeout):
                await client.request("GET", url + "/")
