"""The HTTP server's response writer: the head and framing it puts on the wire.

h11 only parses requests here (a fresh parser per request); the server writes each response
itself. These tests read the raw bytes: the status line, which headers appear and how often,
the chunked framing, close-delimited bodies, HTTP/1.0 keep-alive, ``100 Continue``, the 500
for a response a handler got wrong, and the disconnect watcher that only slow handlers get.
"""

from __future__ import annotations

import email.utils
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest
import trio
import trio.testing

from runtime.http import Headers, HttpConfig, Request, Response
from runtime.http._server import HttpServer, _HttpConnection
from runtime.testing import MemoryConnection, MemoryListener

GET = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"
CLOSE = b"GET /last HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"

Handler = Callable[[Request], Awaitable[Response]]


@asynccontextmanager
async def running(
    handler: Handler, config: HttpConfig | None = None
) -> AsyncIterator[tuple[MemoryListener, HttpServer]]:
    """An HttpServer on a MemoryListener, cancelled on exit."""
    listener = MemoryListener()
    async with trio.open_nursery() as nursery:
        server = HttpServer(handler, [listener], config)
        await nursery.start(server.serve)
        yield listener, server
        nursery.cancel_scope.cancel()


async def read_until(client: MemoryConnection, marker: bytes, data: bytes = b"") -> bytes:
    """Read until ``marker`` is in what was read (fails at end-of-stream before it).

    Like :func:`read_to_eof`, it fails after 30 s of the test's clock instead of hanging.
    """
    with trio.fail_after(30):
        while marker not in data:
            chunk = await client.receive_some()
            assert chunk, f"end of stream before {marker!r}; got {data!r}"
            data += chunk
    return data


async def read_to_eof(client: MemoryConnection) -> bytes:
    data = b""
    with trio.fail_after(30):
        while chunk := await client.receive_some():
            data += chunk
    return data


async def exchange(listener: MemoryListener, data: bytes, *, bytewise: bool = False) -> bytes:
    """Send ``data`` on a new connection, read until the server closes, close.

    A server that never closes fails the test after 10 s (of the test's clock) instead of
    hanging it.
    """
    client = await listener.connect()
    received = bytearray()

    async def reader() -> None:
        while chunk := await client.receive_some():
            received.extend(chunk)

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(reader)
            try:
                if bytewise:
                    for i in range(len(data)):
                        await client.send_all(data[i : i + 1])
                else:
                    await client.send_all(data)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass  # the server closed first
    await client.aclose()
    return bytes(received)


def split_head(data: bytes) -> tuple[str, list[tuple[str, str]], bytes]:
    """The status line, the header fields (names lowercased) and what follows the head."""
    end = data.index(b"\r\n\r\n")
    status_line, *lines = data[:end].decode("latin-1").split("\r\n")
    fields = []
    for line in lines:
        name, sep, value = line.partition(":")
        assert sep, f"not a header line: {line!r}"
        fields.append((name.lower(), value.strip()))
    return status_line, fields, data[end + 4 :]


def names(fields: list[tuple[str, str]]) -> list[str]:
    return [name for name, _ in fields]


def values(fields: list[tuple[str, str]], name: str) -> list[str]:
    return [value for n, value in fields if n == name]


def sized_responses(data: bytes) -> list[tuple[str, list[tuple[str, str]], bytes]]:
    """Every response in ``data``, each framed by its content-length."""
    out = []
    while data:
        status_line, fields, rest = split_head(data)
        (length,) = values(fields, "content-length")
        out.append((status_line, fields, rest[: int(length)]))
        data = rest[int(length) :]
    return out


async def ok(request: Request) -> Response:
    return Response.text(f"ok {request.target}")


async def echo(request: Request) -> Response:
    body = await request.body.read()
    return Response.text(f"{request.method} {request.target} {body.decode()}")


async def chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


def error_count(caplog: pytest.LogCaptureFixture) -> int:
    return len([r for r in caplog.records if r.levelno >= logging.ERROR])


# -- handler bugs: a 500 when nothing was sent ---------------------------------------------

HANDLER_BUGS: dict[str, Callable[[], Response]] = {
    "cr-in-a-value": lambda: Response(200, Headers([("x-a", "b\rx-injected: 1")]), b"x"),
    "lf-in-a-value": lambda: Response(200, Headers([("x-a", "b\nx-injected: 1")]), b"x"),
    "crlf-in-a-value": lambda: Response(200, Headers([("x-a", "b\r\nx-injected: 1")]), b"x"),
    "nul-in-a-value": lambda: Response(200, Headers([("x-a", "b\0c")]), b"x"),
    "space-in-a-name": lambda: Response(200, Headers([("x injected", "1")]), b"x"),
    "colon-in-a-name": lambda: Response(200, Headers([("x-injected:", "1")]), b"x"),
    "empty-name": lambda: Response(200, Headers([("", "x-injected")]), b"x"),
    "crlf-in-a-name": lambda: Response(200, Headers([("x\r\nx-injected", "1")]), b"x"),
    "non-latin-1-value": lambda: Response(200, Headers([("x-a", "price: 5 \u20ac")]), b"x"),
    "non-latin-1-name": lambda: Response(200, Headers([("x-\u20ac", "1")]), b"x"),
    "crlf-in-the-reason": lambda: Response(200, body=b"x", reason="OK\r\nx-injected: 1"),
    "content-length-longer": lambda: Response(200, Headers([("content-length", "99")]), b"short"),
    "content-length-shorter": lambda: Response(200, Headers([("content-length", "2")]), b"short"),
    "content-length-not-a-number": lambda: Response(
        200, Headers([("content-length", "5x")]), b"short"
    ),
    "content-length-negative": lambda: Response(
        200, Headers([("content-length", "-5")]), b"short"
    ),
    "status-0": lambda: Response(0, body=b"x"),
    "status-99": lambda: Response(99, body=b"x"),
    "status-100": lambda: Response(100),
    "status-102": lambda: Response(102),
    "status-103": lambda: Response(103, Headers([("link", "</a.css>; rel=preload")])),
    "status-1000": lambda: Response(1000, body=b"x"),
}


@pytest.mark.parametrize("case", list(HANDLER_BUGS))
async def test_a_response_the_handler_got_wrong_is_a_500_and_the_server_goes_on(
    case: str, caplog: pytest.LogCaptureFixture
) -> None:
    make = HANDLER_BUGS[case]

    async def handler(request: Request) -> Response:
        return make() if request.target == "/bug" else await ok(request)

    with caplog.at_level(logging.ERROR, logger="runtime.http.server"):
        async with running(handler) as (listener, _):
            data = await exchange(listener, b"GET /bug HTTP/1.1\r\nHost: a\r\n\r\n" + GET)
            after = await exchange(listener, CLOSE)
    ((status_line, fields, body),) = sized_responses(data)  # the pipelined GET: not answered
    assert status_line == "HTTP/1.1 500 Internal Server Error"
    assert values(fields, "connection") == ["close"]
    head = data[: data.index(b"\r\n\r\n")].lower()
    assert b"x-injected" not in head  # nothing of the bad response reached the head
    assert body  # the error says what was wrong
    assert [(s, b) for s, _, b in sized_responses(after)] == [("HTTP/1.1 200 OK", b"ok /last")]
    assert error_count(caplog) == 1


@pytest.mark.parametrize("streamed", [False, True], ids=["bytes", "streamed"])
async def test_a_content_length_of_non_ascii_digits_is_a_500(streamed: bool) -> None:
    async def handler(request: Request) -> Response:
        if request.target == "/bug":
            body = chunks(b"x") if streamed else b"x"
            return Response(200, Headers([("content-length", "\u00b2")]), body)
        return await ok(request)

    async with running(handler) as (listener, server):
        data = await exchange(listener, b"GET /bug HTTP/1.1\r\nHost: a\r\n\r\n")
        errored = server.server.statistics().errored
    assert errored == 0
    ((status_line, _, _),) = sized_responses(data)
    assert status_line == "HTTP/1.1 500 Internal Server Error"


@pytest.mark.parametrize(
    ("declared", "parts"),
    [(5, (b"abc", b"defg")), (5, (b"abcdefgh",)), (10, (b"abc",)), (10, (b"abc", b"", b"de"))],
    ids=["longer", "longer-in-the-first-chunk", "shorter", "shorter-with-empty-chunk"],
)
async def test_a_streamed_body_that_breaks_its_content_length_closes_the_connection(
    declared: int, parts: tuple[bytes, ...], caplog: pytest.LogCaptureFixture
) -> None:
    async def handler(request: Request) -> Response:
        if request.target == "/bug":
            headers = Headers([("content-length", str(declared))])
            return Response(200, headers, chunks(*parts))
        return await ok(request)

    with caplog.at_level(logging.ERROR, logger="runtime.http.server"):
        async with running(handler) as (listener, _):
            data = await exchange(listener, b"GET /bug HTTP/1.1\r\nHost: a\r\n\r\n" + GET)
            after = await exchange(listener, CLOSE)
    status_line, fields, rest = split_head(data)
    assert status_line == "HTTP/1.1 200 OK"  # the head was out before the body went wrong
    assert values(fields, "content-length") == [str(declared)]
    assert "transfer-encoding" not in names(fields)
    whole = b"".join(parts)
    assert len(rest) < declared  # never more than declared, and the close says "truncated"
    assert whole.startswith(rest)
    assert b"HTTP/1.1" not in rest  # the pipelined GET was not answered
    assert [(s, b) for s, _, b in sized_responses(after)] == [("HTTP/1.1 200 OK", b"ok /last")]
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "closing" in errors[0].getMessage()


async def test_a_streamed_body_that_raises_closes_the_connection(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def failing() -> AsyncIterator[bytes]:
        yield b"part"
        raise RuntimeError("the database went away")

    async def handler(request: Request) -> Response:
        return Response(200, body=failing()) if request.target == "/bug" else await ok(request)

    with caplog.at_level(logging.ERROR, logger="runtime.http.server"):
        async with running(handler) as (listener, _):
            data = await exchange(listener, b"GET /bug HTTP/1.1\r\nHost: a\r\n\r\n" + GET)
            after = await exchange(listener, CLOSE)
    _, fields, rest = split_head(data)
    assert values(fields, "transfer-encoding") == ["chunked"]
    assert rest == b"4\r\npart\r\n"  # no terminating 0-chunk: the client sees a truncation
    assert sized_responses(after)[0][0] == "HTTP/1.1 200 OK"
    assert error_count(caplog) == 1


# -- bodies that are not sent --------------------------------------------------------------


@pytest.mark.parametrize("streamed", [False, True], ids=["bytes", "streamed"])
async def test_head_gets_the_content_length_of_get_and_no_body(streamed: bool) -> None:
    async def handler(request: Request) -> Response:
        if streamed and request.target == "/":
            return Response(200, body=chunks(b"never sent"))
        return Response.text("ten bytes!" if request.target == "/" else "after")

    async with running(handler) as (listener, _):
        data = await exchange(listener, b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n" + CLOSE)
    status_line, fields, rest = split_head(data)
    assert status_line == "HTTP/1.1 200 OK"
    assert "transfer-encoding" not in names(fields)
    if streamed:
        assert "content-length" not in names(fields)  # the length is unknown
    else:
        assert values(fields, "content-length") == ["10"]
    assert "connection" not in names(fields)  # the connection goes on
    assert b"ten bytes!" not in data and b"never sent" not in data
    assert [(s, b) for s, _, b in sized_responses(rest)] == [("HTTP/1.1 200 OK", b"after")]


@pytest.mark.parametrize("status", [204, 304])
@pytest.mark.parametrize("streamed", [False, True], ids=["bytes", "streamed"])
async def test_204_and_304_have_no_content_length_and_no_body(status: int, streamed: bool) -> None:
    async def handler(request: Request) -> Response:
        if request.target == "/":
            return Response(status, body=chunks(b"dropped") if streamed else b"dropped")
        return Response.text("after")

    async with running(handler) as (listener, _):
        data = await exchange(listener, GET + CLOSE)
    status_line, fields, rest = split_head(data)
    assert status_line.startswith(f"HTTP/1.1 {status} ")
    assert "content-length" not in names(fields)
    assert "transfer-encoding" not in names(fields)
    assert b"dropped" not in data
    assert [(s, b) for s, _, b in sized_responses(rest)] == [("HTTP/1.1 200 OK", b"after")]


async def test_a_handlers_content_length_on_a_204_is_not_sent() -> None:
    async def handler(request: Request) -> Response:
        return Response(204, Headers([("content-length", "7")]))

    async with running(handler) as (listener, _):
        data = await exchange(listener, CLOSE)
    _, fields, rest = split_head(data)
    assert rest == b""
    assert "content-length" not in names(fields)


# -- framing a streamed body ---------------------------------------------------------------


async def test_a_streamed_body_to_http_1_1_is_chunked_on_the_wire() -> None:
    async def handler(request: Request) -> Response:
        if request.target == "/":
            return Response(200, body=chunks(b"hello, world!", b"", b"x" * 300))
        return Response.text("after")

    async with running(handler) as (listener, _):
        data = await exchange(listener, GET + CLOSE)
    _, fields, rest = split_head(data)
    assert values(fields, "transfer-encoding") == ["chunked"]
    assert "content-length" not in names(fields)
    assert "connection" not in names(fields)
    framed = b"d\r\nhello, world!\r\n12c\r\n" + b"x" * 300 + b"\r\n0\r\n\r\n"
    assert rest.startswith(framed)  # the empty chunk was skipped, not sent as an early 0
    assert [(s, b) for s, _, b in sized_responses(rest[len(framed) :])] == [
        ("HTTP/1.1 200 OK", b"after")
    ]


@pytest.mark.parametrize("keep_alive", [False, True], ids=["plain", "keep-alive"])
async def test_a_streamed_body_to_http_1_0_is_close_delimited(keep_alive: bool) -> None:
    async def handler(request: Request) -> Response:
        return Response(200, body=chunks(b"hello, ", b"world"))

    request = b"GET / HTTP/1.0\r\n" + (b"Connection: keep-alive\r\n" if keep_alive else b"")
    async with running(handler) as (listener, _):
        data = await exchange(listener, request + b"\r\n" + GET)
    status_line, fields, rest = split_head(data)
    assert status_line == "HTTP/1.1 200 OK"
    assert values(fields, "connection") == ["close"]
    assert "transfer-encoding" not in names(fields)
    assert "content-length" not in names(fields)
    assert rest == b"hello, world"  # everything up to the close, and nothing after


# -- keep-alive and close ------------------------------------------------------------------


async def test_http_1_0_keep_alive_serves_several_requests_on_one_connection() -> None:
    async with running(ok) as (listener, _):
        client = await listener.connect()
        received = b""
        for i, token in enumerate([b"keep-alive", b"Keep-Alive"]):
            await client.send_all(b"GET /%d HTTP/1.0\r\nConnection: %b\r\n\r\n" % (i, token))
            received = await read_until(client, b"ok /%d" % i, received)
        await client.send_all(b"GET /2 HTTP/1.0\r\n\r\n")  # no keep-alive: the last one
        received += await read_to_eof(client)
        await client.aclose()
    responses = sized_responses(received)
    assert [body for _, _, body in responses] == [b"ok /0", b"ok /1", b"ok /2"]
    assert [values(fields, "connection") for _, fields, _ in responses] == [
        ["keep-alive"],
        ["keep-alive"],
        ["close"],
    ]


async def test_http_1_0_without_keep_alive_gets_connection_close_and_a_close() -> None:
    async with running(ok) as (listener, _):
        data = await exchange(listener, b"GET /a HTTP/1.0\r\n\r\n" + GET)
    ((status_line, fields, body),) = sized_responses(data)
    assert (status_line, body) == ("HTTP/1.1 200 OK", b"ok /a")
    assert values(fields, "connection") == ["close"]


async def test_http_1_1_connection_close_gets_connection_close_and_a_close() -> None:
    async with running(ok) as (listener, _):
        data = await exchange(listener, GET + CLOSE + GET)
    responses = sized_responses(data)
    assert [body for _, _, body in responses] == [b"ok /", b"ok /last"]
    assert [values(fields, "connection") for _, fields, _ in responses] == [[], ["close"]]


async def test_a_handlers_connection_close_closes_after_the_response() -> None:
    async def closing(request: Request) -> Response:
        return Response.text("bye", headers=[("Connection", "close")])

    async with running(closing) as (listener, _):
        data = await exchange(listener, GET + GET)
    ((_, fields, body),) = sized_responses(data)
    assert body == b"bye"
    assert values(fields, "connection") == ["close"]  # once, not the handler's and ours


async def test_a_handlers_date_server_and_transfer_encoding_are_replaced() -> None:
    async def meddling(request: Request) -> Response:
        headers = Headers(
            [
                ("Date", "Thu, 01 Jan 1970 00:00:00 GMT"),
                ("Server", "evil/1.0"),
                ("Transfer-Encoding", "gzip, chunked"),
                ("X-Mine", "kept"),
            ]
        )
        if request.target == "/stream":
            return Response(200, headers, chunks(b"abc"))
        return Response(200, headers, b"abc")

    stream = b"GET /stream HTTP/1.1\r\nHost: a\r\n\r\n"
    async with running(meddling) as (listener, _):
        data = await exchange(listener, GET + stream + CLOSE)
    _, fields, rest = split_head(data)
    assert "1970" not in values(fields, "date")[0] and len(values(fields, "date")) == 1
    assert values(fields, "server") == ["trio-runtime"]
    assert "transfer-encoding" not in names(fields)
    assert values(fields, "content-length") == ["3"]
    assert values(fields, "x-mine") == ["kept"]
    assert rest.startswith(b"abc")
    _, fields, rest = split_head(rest[3:])
    assert values(fields, "transfer-encoding") == ["chunked"]  # ours, once
    assert values(fields, "server") == ["trio-runtime"]
    assert rest.startswith(b"3\r\nabc\r\n0\r\n\r\n")


# -- the status line and the date ----------------------------------------------------------


async def test_a_custom_reason_phrase_is_sent_and_an_empty_one_gets_the_standard() -> None:
    async def handler(request: Request) -> Response:
        if request.target == "/custom":
            return Response(200, body=b"x", reason="Fine, Thanks")
        return Response(404, body=b"x", reason="")

    custom = b"GET /custom HTTP/1.1\r\nHost: a\r\n\r\n"
    async with running(handler) as (listener, _):
        data = await exchange(listener, custom + CLOSE)
    assert [status_line for status_line, _, _ in sized_responses(data)] == [
        "HTTP/1.1 200 Fine, Thanks",
        "HTTP/1.1 404 Not Found",
    ]


IMF_FIXDATE = re.compile(
    r"(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} "
    r"(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d{2}:\d{2}:\d{2} GMT"
)


async def test_the_date_header_is_an_imf_fixdate_in_answers_and_in_errors() -> None:
    async with running(ok) as (listener, _):
        answer = await exchange(listener, CLOSE)
        error = await exchange(listener, b"GET / HTTP/1.1\r\n\r\n")  # no Host: 400
    dates = []
    for data, status in ((answer, "200"), (error, "400")):
        status_line, fields, _ = split_head(data)
        assert status_line.split(" ")[1] == status
        (date,) = values(fields, "date")
        assert IMF_FIXDATE.fullmatch(date), date
        dates.append(email.utils.parsedate_to_datetime(date).timestamp())
    # The wall clock, not a test clock: within a generous margin of now.
    assert all(abs(stamp - time.time()) < 300 for stamp in dates)


# -- pipelining with a fresh parser per request --------------------------------------------


@pytest.mark.parametrize("bytewise", [False, True], ids=["whole", "bytewise"])
async def test_three_pipelined_requests_with_empty_lines_between_are_answered_in_order(
    bytewise: bool,
) -> None:
    order: list[str] = []

    async def recording(request: Request) -> Response:
        order.append(request.target)
        return await echo(request)

    requests = (
        b"\r\n"
        + b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\n"
        + b"\r\n"
        + b"POST /2 HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\nbody"
        + b"\r\n\r\n"
        + b"POST /3 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n"
        + b"\r\n3\r\nabc\r\n0\r\n\r\n"
    )
    async with running(recording) as (listener, _):
        data = await exchange(listener, requests, bytewise=bytewise)
    assert order == ["/1", "/2", "/3"]
    assert [body for _, _, body in sized_responses(data)] == [
        b"GET /1 ",
        b"POST /2 body",
        b"POST /3 abc",
    ]


# -- 100-continue --------------------------------------------------------------------------

EXPECT = b"POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"


async def test_100_continue_is_sent_when_the_handler_reads_the_body() -> None:
    async with running(echo) as (listener, _):
        client = await listener.connect()
        await client.send_all(EXPECT)
        interim = b"HTTP/1.1 100 Continue\r\n\r\n"
        got = await read_until(client, b"\r\n\r\n")
        assert got == interim  # nothing else before the client sends the body
        await client.send_all(b"hello")
        got = await read_until(client, b"POST /up hello")
        await client.send_all(CLOSE)  # the connection goes on after it
        got += await read_to_eof(client)
        await client.aclose()
    assert [(s, b) for s, _, b in sized_responses(got)] == [
        ("HTTP/1.1 200 OK", b"POST /up hello"),
        ("HTTP/1.1 200 OK", b"GET /last "),
    ]


async def test_no_100_continue_when_the_handler_answers_without_reading() -> None:
    async def refuse(request: Request) -> Response:
        return Response.text("not interested", 403)

    async with running(refuse) as (listener, _):
        client = await listener.connect()
        await client.send_all(EXPECT)
        data = await read_to_eof(client)  # answered, then closed: the body never came
        await client.aclose()
    assert b"100 Continue" not in data
    ((status_line, _, body),) = sized_responses(data)
    assert (status_line, body) == ("HTTP/1.1 403 Forbidden", b"not interested")


async def test_the_answer_without_reading_the_expected_body_says_connection_close() -> None:
    async def refuse(request: Request) -> Response:
        return Response.text("not interested", 403)

    async with running(refuse) as (listener, _):
        data = await exchange(listener, EXPECT)
    ((_, fields, _),) = sized_responses(data)
    assert values(fields, "connection") == ["close"]


async def test_a_request_behind_an_expected_body_sent_at_once_is_answered_or_refused() -> None:
    async def ignore_body(request: Request) -> Response:
        return Response.text(f"ignored {request.target}")

    async with running(ignore_body) as (listener, _):
        data = await exchange(listener, EXPECT + b"hello" + CLOSE)
    responses = sized_responses(data)
    if len(responses) == 1:  # the server may close, but it has to say so
        assert values(responses[0][1], "connection") == ["close"]
    else:
        assert [body for _, _, body in responses] == [b"ignored /up", b"ignored /last"]


# -- slow handlers and the disconnect watcher ----------------------------------------------


@pytest.fixture
def watchers(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the disconnect watchers started (``[n]``)."""
    count = [0]
    spawn = _HttpConnection._spawn_watcher

    def counting(self: _HttpConnection) -> None:
        count[0] += 1
        spawn(self)

    monkeypatch.setattr(_HttpConnection, "_spawn_watcher", counting)
    return count


async def test_a_slow_handler_is_cancelled_when_the_client_goes_away(
    autojump_clock: trio.testing.MockClock, watchers: list[int]
) -> None:
    entered = trio.Event()
    cancelled = trio.Event()

    async def slow(request: Request) -> Response:
        entered.set()
        try:
            await trio.sleep(10)
        except trio.Cancelled:
            cancelled.set()
            raise
        return Response.text("too late")

    async with running(slow) as (listener, server):
        client = await listener.connect()
        await client.send_all(GET)
        await entered.wait()
        start = trio.current_time()
        await client.aclose()
        with trio.fail_after(5):  # the handler's own sleep ends at 10 s
            await cancelled.wait()
        assert trio.current_time() - start < 1  # the watcher, not the end of the sleep
        await server.server.wait_idle()
        assert server.server.statistics().errored == 0
    assert watchers == [1]


@pytest.mark.parametrize("delay", [0.0, 0.01], ids=["no-sleep", "10ms"])
async def test_a_fast_handler_never_starts_a_watcher(
    delay: float, autojump_clock: trio.testing.MockClock, watchers: list[int]
) -> None:
    async def fast(request: Request) -> Response:
        if delay:
            await trio.sleep(delay)
        return await echo(request)

    post = b"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi"
    async with running(fast) as (listener, _):
        client = await listener.connect()
        received = b""
        third = b"GET /3 HTTP/1.1\r\nHost: a\r\n\r\n"
        for request, marker in ((GET, b"GET / "), (post, b"POST /p hi"), (third, b"GET /3 ")):
            await client.send_all(request)
            received = await read_until(client, marker, received)
            await trio.sleep(1)  # let every timer of the connection fire
        await client.aclose()
    assert len(sized_responses(received)) == 3
    assert watchers == [0]


async def test_a_slow_handler_still_answers_a_request_pipelined_behind_it(
    autojump_clock: trio.testing.MockClock, watchers: list[int]
) -> None:
    entered = trio.Event()

    async def slow_first(request: Request) -> Response:
        if request.target == "/slow":
            entered.set()
            await trio.sleep(1)
        return await echo(request)

    async with running(slow_first) as (listener, _):
        client = await listener.connect()
        await client.send_all(b"GET /slow HTTP/1.1\r\nHost: a\r\n\r\n")
        await entered.wait()
        await trio.sleep(0.1)  # the watcher is reading ahead now
        # The watcher reads these into the parser of the request in flight; the next
        # request's fresh parser must get them, empty lines and all.
        await client.send_all(b"\r\nPOST /2 HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\nx")
        await client.send_all(b"\r\n" + CLOSE)
        data = await read_to_eof(client)
        await client.aclose()
    assert [body for _, _, body in sized_responses(data)] == [
        b"GET /slow ",
        b"POST /2 x",
        b"GET /last ",
    ]
    assert watchers == [1]
