"""The HTTP/1.1 server core: the request loop, its limits, drain, timeouts and disconnects.

Every test speaks raw bytes over a MemoryListener and reads until the server closes. The
response parser here is deliberately small and separate from the server (it does not use h11),
so a framing bug shows up as a parse failure or a wrong count. Each protocol-error test runs
twice: the request sent whole and sent one byte per send.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import attrs
import pytest
import trio
import trio.testing
from hypothesis import example, given, settings
from hypothesis import strategies as st

from runtime.http import Headers, HttpConfig, Request, Response
from runtime.http._server import HttpServer
from runtime.net import TcpListener
from runtime.testing import MemoryListener


@attrs.frozen
class Parsed:
    """One response as the client read it."""

    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        for n, v in self.headers:
            if n == name.lower():
                return v
        return None


def parse_responses(data: bytes, head_methods: int = 0) -> list[Parsed]:
    """Every response in ``data``; the first ``head_methods`` ones answer HEAD (no body)."""
    out: list[Parsed] = []
    while data:
        end = data.find(b"\r\n\r\n")
        assert end >= 0, f"incomplete response head: {data[:200]!r}"
        lines = data[:end].decode("latin-1").split("\r\n")
        data = data[end + 4 :]
        version, status, reason = lines[0].split(" ", 2)
        assert version == "HTTP/1.1", lines[0]
        headers = []
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers.append((name.strip().lower(), value.strip()))
        parsed = dict(headers)
        body = b""
        if len(out) < head_methods or int(status) in (204, 304) or int(status) < 200:
            pass
        elif "content-length" in parsed:
            size = int(parsed["content-length"])
            assert len(data) >= size, "truncated body"
            body, data = data[:size], data[size:]
        elif parsed.get("transfer-encoding") == "chunked":
            while True:
                line_end = data.find(b"\r\n")
                size = int(data[:line_end], 16)
                chunk = data[line_end + 2 : line_end + 2 + size]
                data = data[line_end + 2 + size + 2 :]
                if size == 0:
                    break
                body += chunk
        else:
            body, data = data, b""
        out.append(Parsed(int(status), reason, headers, body))
    return out


async def echo_handler(request: Request) -> Response:
    """Answers with method, target and the body it read."""
    body = await request.body.read()
    return Response.text(f"{request.method} {request.target} {body.decode()}")


@asynccontextmanager
async def running(
    handler: Callable[[Request], Awaitable[Response]] = echo_handler,
    config: HttpConfig | None = None,
) -> AsyncIterator[tuple[MemoryListener, HttpServer]]:
    """An HttpServer on a MemoryListener, cancelled on exit."""
    listener = MemoryListener()
    async with trio.open_nursery() as nursery:
        server = HttpServer(handler, [listener], config)
        await nursery.start(server.serve)
        yield listener, server
        nursery.cancel_scope.cancel()


async def exchange(listener: MemoryListener, data: bytes, *, bytewise: bool = False) -> bytes:
    """Send ``data`` (whole, or one send per byte), then read until the server closes.

    The client does not half-close: the server takes end-of-stream for a disconnect (as
    hyper does by default) and would cancel a handler still running.
    """
    client = await listener.connect()
    received = bytearray()

    async def reader() -> None:
        while chunk := await client.receive_some():
            received.extend(chunk)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(reader)
        try:
            if bytewise:
                for i in range(len(data)):
                    await client.send_all(data[i : i + 1])
            else:
                await client.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # the server closed first: what it answered is what we check
    await client.aclose()
    return bytes(received)


GET = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"
CLOSE = b"GET /last HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
both_ways = pytest.mark.parametrize("bytewise", [False, True], ids=["whole", "bytewise"])


# -- 1. the basic loop ---------------------------------------------------------------------


async def test_keep_alive_answers_every_request_on_one_connection() -> None:
    async with running() as (listener, _):
        data = await exchange(listener, GET + GET + CLOSE)
    responses = parse_responses(data)
    assert [r.status for r in responses] == [200, 200, 200]
    assert [r.body for r in responses] == [b"GET / ", b"GET / ", b"GET /last "]
    assert responses[2].header("connection") == "close"


async def test_every_response_has_date_server_reason_and_content_length() -> None:
    async with running() as (listener, _):
        (response,) = parse_responses(await exchange(listener, CLOSE))
    assert response.reason == "OK"
    assert response.header(
        "date",
    ) is not None and response.header("date").endswith(" GMT")
    assert response.header("server") == "trio-runtime"
    assert response.header("content-length") == str(len(b"GET /last "))


async def test_an_unknown_status_still_gets_a_reason_phrase() -> None:
    async def odd(request: Request) -> Response:
        return Response(599, body=b"x")

    async with running(odd) as (listener, _):
        (response,) = parse_responses(await exchange(listener, CLOSE))
    assert (response.status, response.reason) == (599, "Unknown")


async def test_server_header_can_be_turned_off() -> None:
    async with running(config=HttpConfig(server_header="")) as (listener, _):
        (response,) = parse_responses(await exchange(listener, CLOSE))
    assert response.header("server") is None


async def test_head_gets_the_headers_of_get_and_no_body() -> None:
    head = b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n"
    async with running() as (listener, _):
        data = await exchange(listener, head + CLOSE)
    first, second = parse_responses(data, head_methods=1)
    assert first.status == 200 and first.body == b""
    assert first.header("content-length") == str(len(b"HEAD / "))
    assert second.body == b"GET /last "  # nothing of the HEAD body leaked into the stream


async def test_a_streaming_response_is_sent_chunked() -> None:
    async def stream(request: Request) -> Response:
        async def chunks() -> AsyncIterator[bytes]:
            for part in (b"one,", b"", b"two,", b"three"):
                yield part

        return Response(200, body=chunks())

    async with running(stream) as (listener, _):
        (response,) = parse_responses(await exchange(listener, CLOSE))
    assert response.header("transfer-encoding") == "chunked"
    assert response.body == b"one,two,three"


async def test_request_bodies_with_content_length_and_chunked() -> None:
    sized = b"POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello"
    chunked = (
        b"POST /b HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
    )
    async with running() as (listener, _):
        data = await exchange(listener, sized + chunked + CLOSE)
    assert [r.body for r in parse_responses(data)] == [
        b"POST /a hello",
        b"POST /b abcde",
        b"GET /last ",
    ]


async def test_the_body_is_read_from_the_connection_only_when_the_handler_asks(
    autojump_clock: trio.testing.MockClock,
) -> None:
    got_head = trio.Event()
    may_read = trio.Event()
    seen: list[bytes] = []

    async def slow_reader(request: Request) -> Response:
        got_head.set()
        await may_read.wait()
        async for chunk in request.body:
            seen.append(chunk)
        return Response.text("done")

    async with running(slow_reader) as (listener, _):
        client = await listener.connect()
        await client.send_all(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 200000\r\n\r\n")
        await got_head.wait()
        # The pipe holds 64 KiB: with nobody reading, a 200 KB body cannot all be sent.
        with trio.move_on_after(1) as scope:
            await client.send_all(b"x" * 200_000)
        assert scope.cancelled_caught
        assert seen == []
        may_read.set()
        await client.aclose()


async def test_an_unread_body_is_discarded_before_the_next_request() -> None:
    async def ignore_body(request: Request) -> Response:
        return Response.text(request.target)

    post = b"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n0123456789"
    async with running(ignore_body) as (listener, _):
        data = await exchange(listener, post + CLOSE)
    assert [r.body for r in parse_responses(data)] == [b"/p", b"/last"]


async def test_a_body_left_unread_beyond_the_limit_closes_the_connection() -> None:
    async def ignore_body(request: Request) -> Response:
        return Response.text("ok")

    post = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n20\r\n" + b"x" * 32
    post += b"\r\n0\r\n\r\n"
    async with running(ignore_body, HttpConfig(max_body_bytes=16)) as (listener, _):
        data = await exchange(listener, post + CLOSE)
    assert [r.status for r in parse_responses(data)] == [200]  # answered, then closed


async def test_a_handler_exception_is_a_500_one_log_line_and_the_connection_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def broken(request: Request) -> Response:
        if request.target == "/boom":
            raise ValueError("boom")
        return Response.text("fine")

    boom = b"GET /boom HTTP/1.1\r\nHost: a\r\n\r\n"
    with caplog.at_level(logging.INFO, logger="runtime.http.server"):
        async with running(broken) as (listener, _):
            data = await exchange(listener, boom + CLOSE)
    assert [r.status for r in parse_responses(data)] == [500, 200]
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "GET /boom" in errors[0].getMessage()


async def test_a_handler_that_returns_no_response_is_a_500() -> None:
    async def wrong(request: Request) -> Response:
        return "hello"  # type: ignore[return-value]

    async with running(wrong) as (listener, _):
        (response,) = parse_responses(await exchange(listener, CLOSE))
    assert response.status == 500


@both_ways
async def test_pipelined_requests_are_answered_in_order(bytewise: bool) -> None:
    requests = b"".join(b"GET /%d HTTP/1.1\r\nHost: a\r\n\r\n" % i for i in range(5)) + CLOSE
    async with running() as (listener, _):
        data = await exchange(listener, requests, bytewise=bytewise)
    bodies = [r.body for r in parse_responses(data)]
    assert bodies == [b"GET /%d " % i for i in range(5)] + [b"GET /last "]


@both_ways
async def test_leading_empty_lines_before_a_request_are_ignored(bytewise: bool) -> None:
    async with running() as (listener, _):
        data = await exchange(listener, b"\r\n\r\n" + GET + b"\r\n" + CLOSE, bytewise=bytewise)
    assert [r.status for r in parse_responses(data)] == [200, 200]


async def test_http_1_0_without_keep_alive_is_closed_after_the_response() -> None:
    async with running() as (listener, _):
        data = await exchange(listener, b"GET / HTTP/1.0\r\n\r\n" + GET)
    assert [r.status for r in parse_responses(data)] == [200]


async def test_expect_100_continue_is_answered_when_the_handler_reads() -> None:
    post = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n"
    async with running() as (listener, _):
        client = await listener.connect()
        await client.send_all(post)
        got = await client.receive_some()
        assert got.startswith(b"HTTP/1.1 100 ")
        await client.send_all(b"ok")
        data = b""
        while b"POST / ok" not in data:
            data += await client.receive_some()
        await client.aclose()
    assert parse_responses(data)[0].status == 200


async def test_max_requests_per_connection_closes_after_the_last() -> None:
    async with running(config=HttpConfig(max_requests_per_connection=2)) as (listener, _):
        data = await exchange(listener, GET + GET + GET)
    responses = parse_responses(data)
    assert [r.status for r in responses] == [200, 200]
    assert responses[1].header("connection") == "close"


# -- 2. limits and protocol errors ---------------------------------------------------------


def only_error(data: bytes, status: int) -> Parsed:
    """The single response in ``data``: ``status``, with ``Connection: close``."""
    responses = parse_responses(data)
    assert [r.status for r in responses] == [status], data[:300]
    assert responses[0].header("connection") == "close"
    assert responses[0].reason  # never an empty reason phrase
    return responses[0]


SMALL = HttpConfig(max_header_bytes=1024, max_header_count=10, max_target_length=256)


@both_ways
async def test_a_header_block_over_max_header_bytes_is_431(bytewise: bool) -> None:
    big = b"GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + b"v" * 2000 + b"\r\n\r\n"
    async with running(config=SMALL) as (listener, _):
        only_error(await exchange(listener, big, bytewise=bytewise), 431)


async def test_a_complete_oversized_head_in_one_read_is_431_too() -> None:
    # h11#182: h11 checks its limit only while the head is incomplete.
    big = b"GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + b"v" * 60_000 + b"\r\n\r\n"
    async with running() as (listener, _):
        only_error(await exchange(listener, big), 431)


async def test_body_bytes_in_the_same_read_do_not_count_as_header_bytes() -> None:
    post = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5000\r\n\r\n" + b"b" * 5000
    async with running(config=SMALL) as (listener, _):
        data = await exchange(listener, post + CLOSE)
    assert [r.status for r in parse_responses(data)] == [200, 200]


@both_ways
async def test_more_than_max_header_count_fields_is_431(bytewise: bool) -> None:
    fields = b"".join(b"X-%d: v\r\n" % i for i in range(11))
    request = b"GET / HTTP/1.1\r\nHost: a\r\n" + fields + b"\r\n"
    async with running(config=SMALL) as (listener, _):
        only_error(await exchange(listener, request, bytewise=bytewise), 431)


@both_ways
async def test_a_request_target_over_max_target_length_is_414(bytewise: bool) -> None:
    request = b"GET /" + b"a" * 300 + b" HTTP/1.1\r\nHost: a\r\n\r\n"
    async with running(config=SMALL) as (listener, _):
        only_error(await exchange(listener, request, bytewise=bytewise), 414)


@both_ways
async def test_a_content_length_over_max_body_bytes_is_413_without_100_continue(
    bytewise: bool,
) -> None:
    called = False

    async def handler(request: Request) -> Response:
        nonlocal called
        called = True
        return Response.text("no")

    request = (
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2000000\r\nExpect: 100-continue\r\n\r\n"
    )
    async with running(handler) as (listener, _):
        data = await exchange(listener, request, bytewise=bytewise)
    assert not data.startswith(b"HTTP/1.1 100")
    only_error(data, 413)
    assert not called


@both_ways
async def test_a_chunked_body_over_max_body_bytes_is_413_as_it_streams(bytewise: bool) -> None:
    request = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
    request += b"10\r\n" + b"x" * 16 + b"\r\n" + b"10\r\n" + b"y" * 16 + b"\r\n0\r\n\r\n"
    async with running(config=HttpConfig(max_body_bytes=20)) as (listener, _):
        only_error(await exchange(listener, request + GET, bytewise=bytewise), 413)


async def test_a_handler_that_swallows_the_body_error_still_gets_413() -> None:
    async def swallow(request: Request) -> Response:
        try:
            await request.body.read()
        except Exception:
            pass
        return Response.text("ignored the limit")

    request = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
    request += b"40\r\n" + b"x" * 64 + b"\r\n0\r\n\r\n"
    async with running(swallow, HttpConfig(max_body_bytes=20)) as (listener, _):
        only_error(await exchange(listener, request), 413)


async def test_slowloris_is_cut_at_the_total_header_deadline(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with running() as (listener, _):
        client = await listener.connect()
        start = trio.current_time()
        received = b""
        for byte in b"GET / HTTP/1.1\r\nHost: a\r\nX-Slow: " + b"z" * 100:
            try:
                await client.send_all(bytes([byte]))
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                break
            await trio.sleep(2)
        while chunk := await client.receive_some():
            received += chunk
        elapsed = trio.current_time() - start
    only_error(received, 408)
    assert 30 <= elapsed <= 34


async def test_a_stalled_body_is_408_after_body_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with running() as (listener, _):
        client = await listener.connect()
        await client.send_all(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nab")
        start = trio.current_time()
        received = b""
        while chunk := await client.receive_some():
            received += chunk
    only_error(received, 408)
    assert 30 <= trio.current_time() - start <= 31


async def test_an_idle_keep_alive_connection_is_closed_quietly(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with running() as (listener, _):
        client = await listener.connect()
        await client.send_all(GET)
        received = b""
        while b"GET / " not in received:
            received += await client.receive_some()
        start = trio.current_time()
        while chunk := await client.receive_some():
            received += chunk
    assert [r.status for r in parse_responses(received)] == [200]  # no 408
    assert 75 <= trio.current_time() - start <= 76


async def test_a_keep_alive_longer_than_the_net_idle_timeout_is_kept(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # ServerConfig's generic idle timeout (60 s) must not cut HTTP's 75 s keep-alive.
    async with running() as (listener, _):
        client = await listener.connect()
        await trio.sleep(70)
        await client.send_all(CLOSE)
        received = b""
        while chunk := await client.receive_some():
            received += chunk
    assert [r.status for r in parse_responses(received)] == [200]


SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n"
BAD_REQUESTS = {
    "cl-and-te": (
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 40\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"0\r\n\r\n" + SMUGGLED,
        400,
    ),
    "te-and-cl": (
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n"
        b"0\r\n\r\n" + SMUGGLED,
        400,
    ),
    "cl-plus": (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\nhello", 400),
    "cl-minus": (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -5\r\n\r\nhello", 400),
    "cl-20-digits": (
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 00000000000000000005\r\n\r\nhello",
        400,
    ),
    "cl-differing": (
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
        400,
    ),
    "te-gzip": (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
    "te-gzip-then-chunked": (
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
        501,
    ),
    "te-chunked-not-last": (
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n",
        400,
    ),
    "te-two-lines": (
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        400,
    ),
    "http10-with-te": (
        b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        400,
    ),
    "bad-chunk-size": (
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"zz\r\nhello\r\n0\r\n\r\n",
        400,
    ),
    "chunk-size-20-hex-digits": (
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"fffffffffffffffffff0\r\nhello",
        400,
    ),
    "chunk-size-17-hex-digits-after-a-chunk": (
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n1ffffffffffffffff\r\nx",
        400,
    ),
    "no-host": (b"GET / HTTP/1.1\r\n\r\n", 400),
    "two-hosts": (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
    "space-before-colon": (b"GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400),
    "obs-fold": (b"GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n", 400),
    "nul-in-value": (b"GET / HTTP/1.1\r\nHost: a\r\nX-A: b\x00c\r\n\r\n", 400),
    "http2-request-line": (b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505),
    "h2-preface": (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505),
    "garbage": (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", 400),
}


@both_ways
@pytest.mark.parametrize("name", list(BAD_REQUESTS))
async def test_a_malformed_request_gets_one_error_and_a_close(name: str, bytewise: bool) -> None:
    request, status = BAD_REQUESTS[name]
    async with running() as (listener, _):
        data = await exchange(listener, request + GET, bytewise=bytewise)
    only_error(data, status)  # never a second response, never a 200


@both_ways
@pytest.mark.parametrize(
    "bad", ["two-hosts", "obs-fold", "cl-and-te", "http2-request-line", "te-chunked-not-last"]
)
async def test_three_pipelined_with_the_second_malformed_gives_200_400_close(
    bad: str, bytewise: bool
) -> None:
    bad_request, status = BAD_REQUESTS[bad]
    async with running() as (listener, _):
        data = await exchange(listener, GET + bad_request + GET, bytewise=bytewise)
    responses = parse_responses(data)
    assert [r.status for r in responses] == [200, status]
    assert responses[1].header("connection") == "close"


async def test_an_error_is_read_by_the_client_not_reset_by_a_lingering_close() -> None:
    # The client sends a refused head and keeps sending its body: a plain close with that
    # input unread makes the kernel answer with a reset that can destroy the 413 in flight.
    listener = TcpListener.bind()
    async with trio.open_nursery() as nursery:
        await nursery.start(HttpServer(echo_handler, [listener]).serve)
        sock = trio.socket.socket()
        await sock.connect(("127.0.0.1", listener.port))
        await sock.send(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5000000\r\n\r\n")
        await trio.testing.wait_all_tasks_blocked()
        for _ in range(32):
            await sock.send(b"x" * 16384)
        sock.shutdown(socket.SHUT_WR)
        received = b""
        while chunk := await sock.recv(65536):
            received += chunk
        sock.close()
        nursery.cancel_scope.cancel()
    only_error(received, 413)


# -- 3. graceful drain ---------------------------------------------------------------------


async def test_a_drain_finishes_the_request_in_flight_with_connection_close() -> None:
    entered = trio.Event()
    release = trio.Event()

    async def slow(request: Request) -> Response:
        entered.set()
        await release.wait()
        return Response.text("finished")

    async with running(slow) as (listener, server):
        client = await listener.connect()
        await client.send_all(GET)
        await entered.wait()
        server.drain()
        await trio.testing.wait_all_tasks_blocked()
        release.set()
        received = b""
        while chunk := await client.receive_some():
            received += chunk
        (response,) = parse_responses(received)
        assert response.body == b"finished"
        assert response.header("connection") == "close"
        await server.server.wait_idle()


async def test_a_drain_closes_idle_keep_alive_connections_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with running() as (listener, server):
        client = await listener.connect()
        await client.send_all(GET)
        received = b""
        while b"GET / " not in received:
            received += await client.receive_some()
        await trio.testing.wait_all_tasks_blocked()
        start = trio.current_time()
        server.drain()
        assert await client.receive_some() == b""  # closed without a response
        assert trio.current_time() - start < 1
        await server.server.wait_idle()


async def test_serve_returns_once_drained_and_every_connection_ended() -> None:
    listener = MemoryListener()
    server = HttpServer(echo_handler, [listener])
    async with trio.open_nursery() as nursery:
        await nursery.start(server.serve)
        client = await listener.connect()
        await trio.testing.wait_all_tasks_blocked()
        server.drain()
        assert await client.receive_some() == b""
    assert server.server.statistics().active == 0


# -- 4. request timeout and disconnects ----------------------------------------------------


async def test_request_timeout_is_503_and_close_with_the_handler_cancelled(
    autojump_clock: trio.testing.MockClock,
) -> None:
    cancelled = False

    async def stuck(request: Request) -> Response:
        nonlocal cancelled
        try:
            await trio.sleep_forever()
        except trio.Cancelled:
            cancelled = True
            raise
        raise AssertionError("unreachable")

    async with running(stuck, HttpConfig(request_timeout=5)) as (listener, _):
        start = trio.current_time()
        data = await exchange(listener, GET)
        elapsed = trio.current_time() - start
    only_error(data, 503)
    assert cancelled
    assert 5 <= elapsed < 6


async def test_a_client_that_disconnects_mid_request_cancels_its_handler() -> None:
    entered = trio.Event()
    cancelled = trio.Event()

    async def stuck(request: Request) -> Response:
        entered.set()
        try:
            await trio.sleep_forever()
        finally:
            cancelled.set()
        raise AssertionError("unreachable")

    async with running(stuck) as (listener, server):
        client = await listener.connect()
        await client.send_all(GET)
        await entered.wait()
        await client.aclose()
        await cancelled.wait()
        await server.server.wait_idle()
        assert server.server.statistics().errored == 0


async def test_a_client_that_disconnects_while_the_body_streams_in_cancels_its_handler() -> None:
    cancelled = trio.Event()

    async def reader(request: Request) -> Response:
        try:
            await request.body.read()
        finally:
            cancelled.set()
        return Response.text("unreachable")

    async with running(reader) as (listener, server):
        client = await listener.connect()
        await client.send_all(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nab")
        await trio.testing.wait_all_tasks_blocked()
        await client.aclose()
        await cancelled.wait()
        await server.server.wait_idle()
        assert server.server.statistics().errored == 0


async def test_a_client_that_stops_reading_is_dropped_after_send_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def big(request: Request) -> Response:
        return Response.bytes(b"x" * 1_000_000)

    async with running(big, HttpConfig(send_timeout=10)) as (listener, server):
        client = await listener.connect()
        await client.send_all(GET)
        await trio.sleep(11)
        await server.server.wait_idle()  # the connection was dropped
        await client.aclose()


async def test_a_response_that_cannot_be_framed_is_a_500_and_a_close(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def lying(request: Request) -> Response:
        return Response(200, headers=Headers([("content-length", "99")]), body=b"short")

    with caplog.at_level(logging.ERROR, logger="runtime.http.server"):
        async with running(lying) as (listener, _):
            data = await exchange(listener, GET + GET)
    only_error(data, 500)
    assert len([r for r in caplog.records if r.levelno >= logging.ERROR]) == 1


async def test_a_204_sends_no_body_even_when_the_handler_gives_one() -> None:
    async def no_content(request: Request) -> Response:
        async def chunks() -> AsyncIterator[bytes]:
            yield b"dropped"

        return Response(204, body=chunks() if request.target == "/s" else b"dropped")

    stream = b"GET /s HTTP/1.1\r\nHost: a\r\n\r\n"
    async with running(no_content) as (listener, _):
        data = await exchange(listener, stream + GET + CLOSE)
    assert [(r.status, r.body) for r in parse_responses(data)] == [(204, b"")] * 3
    assert b"dropped" not in data


# -- whole or split: the same answer -------------------------------------------------------

SPLIT_CASES = [
    GET + b"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc" + CLOSE,
    b"\r\nPOST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n0\r\n\r\n"
    + CLOSE,
    GET + BAD_REQUESTS["obs-fold"][0] + GET,
    GET + BAD_REQUESTS["cl-and-te"][0],
    b"GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + b"v" * 1100 + b"\r\n\r\n",
]


def _without_date(data: bytes) -> bytes:
    return b"\r\n".join(line for line in data.split(b"\r\n") if not line.startswith(b"date:"))


async def _split_exchange(listener: MemoryListener, data: bytes, cuts: list[int]) -> bytes:
    client = await listener.connect()
    received = bytearray()

    async def reader() -> None:
        while chunk := await client.receive_some():
            received.extend(chunk)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(reader)
        start = 0
        try:
            for cut in [*sorted(set(cuts)), len(data)]:
                await client.send_all(data[start:cut])
                await trio.testing.wait_all_tasks_blocked()
                start = cut
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
    await client.aclose()
    return bytes(received)


@given(
    case=st.sampled_from(range(len(SPLIT_CASES))),
    fractions=st.lists(st.floats(min_value=0, max_value=1), max_size=6),
)
@settings(max_examples=60, deadline=None)
@example(case=4, fractions=[0.9375])  # h11's own head limit fired first, with its own words
async def test_a_request_stream_split_anywhere_gets_the_same_answer(
    case: int, fractions: list[float]
) -> None:
    data = SPLIT_CASES[case]
    cuts = [int(f * len(data)) for f in fractions]
    async with running(config=SMALL) as (listener, _):
        whole = await exchange(listener, data)
        split = await _split_exchange(listener, data, cuts)
    assert _without_date(split) == _without_date(whole)
    assert whole  # every case is answered


async def _send_then_eof(listener: MemoryListener, data: bytes) -> bytes:
    client = await listener.connect()
    received = bytearray()
    async with trio.open_nursery() as nursery:

        async def reader() -> None:
            while chunk := await client.receive_some():
                received.extend(chunk)

        nursery.start_soon(reader)
        try:
            await client.send_all(data)
            await client.send_eof()
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
    await client.aclose()
    return bytes(received)


_FRONTS = [GET, CLOSE, *(request for request, _ in BAD_REQUESTS.values()), SPLIT_CASES[1]]


@given(
    front=st.sampled_from(_FRONTS),
    cut=st.integers(min_value=0, max_value=400),
    noise=st.binary(max_size=40),
    position=st.integers(min_value=0, max_value=400),
)
@settings(max_examples=150, deadline=None)
async def test_fuzzed_request_fronts_never_raise_out_of_the_connection_loop(
    front: bytes, cut: int, noise: bytes, position: int
) -> None:
    position = min(position, len(front))
    data = front[:position] + noise + front[position:][: max(cut, 0) or None]
    async with running(config=SMALL) as (listener, server):
        received = await _send_then_eof(listener, data)
        await server.server.wait_idle()
        stats = server.server.statistics()
    assert stats.errored == 0  # nothing escaped the loop as a bug
    for response in parse_responses(received):
        assert response.reason and 200 <= response.status < 600


def _task_count() -> int:
    def count(task: trio.lowlevel.Task) -> int:
        return 1 + sum(count(child) for n in task.child_nurseries for child in n.child_tasks)

    return count(trio.lowlevel.current_root_task())


async def test_tasks_return_to_baseline_after_requests_errors_and_disconnects() -> None:
    entered = trio.Event()

    async def handler(request: Request) -> Response:
        if request.target == "/hang":
            entered.set()
            await trio.sleep_forever()
        if request.target == "/boom":
            raise RuntimeError("boom")
        return await echo_handler(request)

    async with running(handler) as (listener, server):
        await exchange(listener, CLOSE)  # starts the timer wheel's driver, a system task
        await trio.testing.wait_all_tasks_blocked()
        baseline = _task_count()
        await exchange(listener, GET + b"GET /boom HTTP/1.1\r\nHost: a\r\n\r\n" + CLOSE)
        await exchange(listener, BAD_REQUESTS["cl-and-te"][0])
        client = await listener.connect()
        await client.send_all(b"GET /hang HTTP/1.1\r\nHost: a\r\n\r\n")
        await entered.wait()
        await client.aclose()
        await server.server.wait_idle()
        await trio.testing.wait_all_tasks_blocked()
        assert _task_count() == baseline
        assert server.server.statistics().active == 0


async def test_a_handler_that_returned_leaves_no_timer_on_the_wheel() -> None:
    # A lapsed slow-handler timer would wake the wheel's driver for nothing, once per
    # request: the connection takes it off the wheel when the handler returns.
    from runtime.time import TimerWheel

    async with running() as (listener, _server):
        await exchange(listener, CLOSE)  # the wheel exists and its driver runs
        client = await listener.connect()
        await trio.testing.wait_all_tasks_blocked()
        wheel = TimerWheel.current()
        between = len(wheel)  # the connection's idle deadline, and no handler timer yet
        for _ in range(5):
            await client.send_all(GET)
            assert b"200" in await client.receive_some(65536)
            await trio.testing.wait_all_tasks_blocked()
            assert len(wheel) == between
        await client.send_all(CLOSE)
        await client.aclose()
