"""The HTTP issue's hostile cases, now in front of an ASGI app: the adapter adds no hole.

Every malformed or smuggling request is answered by the server before the app runs (the app
here counts its calls), with both request parsers; the header limits, ``Expect:
100-continue`` and the slowloris deadline behave as they do for a plain handler.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
import trio
import trio.testing

from runtime.http import HttpConfig

from ._support import BAD_REQUESTS, CLOSE, GET, exchange, only_error, parse_responses, served

PARSERS = ["h11", "httptools"]
both_ways = pytest.mark.parametrize("bytewise", [False, True], ids=["whole", "bytewise"])


class Counting:
    """An ASGI app that echoes the body it reads and counts its HTTP calls."""

    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        self.calls += 1
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"app read " + body})


# Framing errors inside a chunked body: the head was good, so the app was called; it reads
# an http.disconnect and the client gets the server's 400 alone.
BODY_ERRORS = {
    "bad-chunk-size",
    "chunk-size-20-hex-digits",
    "chunk-size-17-hex-digits-after-a-chunk",
}


@pytest.mark.parametrize("parser", PARSERS)
@pytest.mark.parametrize("name", list(BAD_REQUESTS))
async def test_a_malformed_request_gets_the_servers_error_and_nothing_of_the_app(
    name: str, parser: str, caplog: pytest.LogCaptureFixture
) -> None:
    request, status = BAD_REQUESTS[name]
    app = Counting()
    async with served(app, HttpConfig(parser=parser)) as (listener, _):  # type: ignore[arg-type]
        data = await exchange(listener, request + GET)
    only_error(data, status)
    assert app.calls <= (1 if name in BODY_ERRORS else 0)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


@pytest.mark.parametrize("parser", PARSERS)
async def test_content_length_with_transfer_encoding_is_refused_not_smuggled(parser: str) -> None:
    # A front proxy reading Content-Length sees one request; a back end reading chunked
    # would see a second, smuggled one (GET /admin). We answer 400 and close.
    smuggle = (
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 44\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"0\r\n\r\nGET /admin HTTP/1.1\r\nHost: a\r\n\r\n"
    )
    app = Counting()
    async with served(app, HttpConfig(parser=parser)) as (listener, _):  # type: ignore[arg-type]
        data = await exchange(listener, smuggle)
    only_error(data, 400)
    assert app.calls == 0


SMALL = HttpConfig(max_header_bytes=1024, max_header_count=10)


@both_ways
@pytest.mark.parametrize("parser", PARSERS)
async def test_oversize_headers_are_431_before_the_app(bytewise: bool, parser: str) -> None:
    big = b"GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + b"v" * 2000 + b"\r\n\r\n"
    many = b"GET / HTTP/1.1\r\nHost: a\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(11))
    app = Counting()
    config = HttpConfig(max_header_bytes=1024, max_header_count=10, parser=parser)  # type: ignore[arg-type]
    async with served(app, config) as (listener, _):
        only_error(await exchange(listener, big, bytewise=bytewise), 431)
        only_error(await exchange(listener, many + b"\r\n", bytewise=bytewise), 431)
    assert app.calls == 0


async def test_a_head_over_the_limit_in_one_read_is_431_too() -> None:
    big = b"GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + b"v" * 60_000 + b"\r\n\r\n"  # h11#182
    app = Counting()
    async with served(app) as (listener, _):
        only_error(await exchange(listener, big), 431)
    assert app.calls == 0


async def test_expect_100_continue_is_sent_when_the_app_reads_the_body() -> None:
    post = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n"
    async with served(Counting()) as (listener, _):
        client = await listener.connect()
        await client.send_all(post)
        got = await client.receive_some()
        assert got.startswith(b"HTTP/1.1 100 Continue\r\n")
        await client.send_all(b"ok")
        data = b""
        while b"app read ok" not in data:
            data += await client.receive_some()
        await client.aclose()
    assert parse_responses(data)[0].status == 200


async def test_an_app_that_answers_without_reading_sends_no_100_and_closes() -> None:
    async def refuse(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 403, "headers": []})
        await send({"type": "http.response.body", "body": b"no uploads"})

    post = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"
    async with served(refuse) as (listener, _):
        data = await exchange(listener, post)
    assert not data.startswith(b"HTTP/1.1 100")
    (response,) = parse_responses(data)
    assert response.status == 403 and response.header("connection") == "close"


async def test_a_body_over_max_body_bytes_is_413_whatever_the_app_does() -> None:
    app = Counting()
    chunked = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
    chunked += b"40\r\n" + b"x" * 64 + b"\r\n0\r\n\r\n"
    async with served(app, HttpConfig(max_body_bytes=20)) as (listener, _):
        only_error(await exchange(listener, chunked), 413)
        only_error(
            await exchange(listener, b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99\r\n\r\n"),
            413,
        )
    assert app.calls == 1  # the chunked one started; the Content-Length one was refused first


async def test_slowloris_is_cut_at_the_header_deadline_before_the_app(
    autojump_clock: trio.testing.MockClock,
) -> None:
    app = Counting()
    async with served(app) as (listener, _):
        client = await listener.connect()
        start = trio.current_time()
        for byte in b"GET / HTTP/1.1\r\nHost: a\r\nX-Slow: " + b"z" * 100:
            try:
                await client.send_all(bytes([byte]))
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                break
            await trio.sleep(2)
        received = b""
        while chunk := await client.receive_some():
            received += chunk
        elapsed = trio.current_time() - start
        await client.aclose()
    only_error(received, 408)
    assert 30 <= elapsed <= 34
    assert app.calls == 0


async def test_a_pipelined_request_behind_a_good_one_is_answered_in_order() -> None:
    app = Counting()
    post = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc"
    async with served(app) as (listener, _):
        data = await exchange(listener, post + GET + CLOSE)
    assert [r.body for r in parse_responses(data)] == [b"app read abc", b"app read ", b"app read "]
