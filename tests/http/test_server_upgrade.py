"""The connection hand-over of the HTTP server: ``101 Switching Protocols`` and ``CONNECT``.

A handler answers ``Response.switching_protocols(protocol, callback)`` (or ``Response(200,
upgrade=callback)`` to a CONNECT); the server writes the head, then gives the connection to the
callback as an :class:`~runtime.http._upgrade.UpgradedConnection` and closes it when the
callback returns. The client here speaks raw bytes over a MemoryListener, so what the head
looks like on the wire and which bytes reach the new protocol are checked exactly.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest
import trio
import trio.testing

from runtime.http import Headers, HttpConfig, Request, Response
from runtime.http._server import HttpServer, _HttpConnection
from runtime.http._upgrade import UpgradedConnection
from runtime.testing import MemoryConnection, MemoryListener, memory_connection_pair

UPGRADE = b"GET /chat HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n"
CONNECT = b"CONNECT upstream:443 HTTP/1.1\r\nHost: upstream:443\r\n\r\n"
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


def content_length_responses(data: bytes) -> list[tuple[str, bytes]]:
    """(status line, body) of every response in ``data``; each must have a content-length."""
    out = []
    while data:
        status_line, fields, rest = split_head(data)
        size = int(dict(fields)["content-length"])
        out.append((status_line, rest[:size]))
        data = rest[size:]
    return out


async def ok(request: Request) -> Response:
    return Response.text(f"ok {request.target}")


# -- 101 -----------------------------------------------------------------------------------


async def test_101_hands_over_with_the_bytes_sent_behind_the_request_first() -> None:
    seen: list[bytes] = []
    requests: list[Request] = []

    async def echo(connection: UpgradedConnection) -> None:
        requests.append(connection.request)  # type: ignore[arg-type]
        while data := await connection.receive_some():
            seen.append(data)
            await connection.send_all(b"echo:" + data + b";")

    async def handler(request: Request) -> Response:
        return Response.switching_protocols("echo", echo)

    async with running(handler) as (listener, server):
        client = await listener.connect()
        await client.send_all(UPGRADE + b"first")  # the first frame in the same write
        data = await read_until(client, b"echo:first;")
        status_line, fields, rest = split_head(data)
        assert status_line == "HTTP/1.1 101 Switching Protocols"
        assert ("upgrade", "echo") in fields
        assert ("connection", "upgrade") in fields
        assert "content-length" not in names(fields)
        assert "transfer-encoding" not in names(fields)
        assert names(fields).count("connection") == 1
        assert rest == b"echo:first;"
        await client.send_all(b"second")
        assert await read_until(client, b"echo:second;") == b"echo:second;"
        await client.send_eof()  # the callback reads b"" and returns: the server closes
        assert await read_to_eof(client) == b""
        await server.server.wait_idle()
    assert seen == [b"first", b"second"]
    (request,) = requests
    assert request.target == "/chat" and request.headers["upgrade"] == "echo"


async def test_the_bytes_behind_the_request_are_given_out_within_max_bytes() -> None:
    reads: list[bytes] = []

    async def take(connection: UpgradedConnection) -> None:
        reads.append(await connection.receive_some(3))
        reads.append(await connection.receive_some(3))
        reads.append(await connection.receive_some(100))
        reads.append(await connection.receive_some(100))
        await connection.send_all(b"done")

    async def handler(request: Request) -> Response:
        return Response.switching_protocols("echo", take)

    async with running(handler) as (listener, _):
        client = await listener.connect()
        await client.send_all(UPGRADE + b"abcdefg")
        await read_until(client, b"\r\n\r\n")
        await trio.testing.wait_all_tasks_blocked()
        await client.send_all(b"later")
        await read_until(client, b"done")
        await client.aclose()
    assert reads == [b"abc", b"def", b"g", b"later"]


async def test_an_upgraded_connection_returns_the_buffer_then_the_transport() -> None:
    client, server_end = memory_connection_pair()
    upgraded = UpgradedConnection(server_end, b"buffered")
    await client.send_all(b"wire")
    assert await upgraded.receive_some() == b"buffered"
    assert await upgraded.receive_some() == b"wire"
    await upgraded.send_all(b"back")
    assert await client.receive_some() == b"back"
    assert upgraded.peer_address == server_end.peer_address
    assert not upgraded.draining.is_cancelled()  # a token of its own when none is given
    ended = UpgradedConnection(server_end, b"tail", eof=True)
    assert await ended.receive_some() == b"tail"
    assert await ended.receive_some() == b""  # the parser saw EOF: the transport isn't read
    upgraded.close()
    assert await client.receive_some() == b""


async def test_a_200_to_an_upgrade_request_keeps_the_connection_for_the_next() -> None:
    async def decline(request: Request) -> Response:
        return Response.text(f"no upgrade for {request.target}")

    async with running(decline) as (listener, _):
        client = await listener.connect()
        await client.send_all(UPGRADE)
        first = await read_until(client, b"no upgrade for /chat")
        await client.send_all(CLOSE)
        data = await read_to_eof(client)
    responses = content_length_responses(first + data)
    assert responses == [
        ("HTTP/1.1 200 OK", b"no upgrade for /chat"),
        ("HTTP/1.1 200 OK", b"no upgrade for /last"),
    ]


async def test_a_declined_upgrade_with_a_pipelined_request_answers_both() -> None:
    async def decline(request: Request) -> Response:
        return Response.text(f"plain {request.target}")

    async with running(decline) as (listener, _):
        client = await listener.connect()
        await client.send_all(UPGRADE + CLOSE)
        data = await read_to_eof(client)
    assert [body for _, body in content_length_responses(data)] == [b"plain /chat", b"plain /last"]


# -- CONNECT -------------------------------------------------------------------------------


async def test_connect_tunnels_bytes_both_ways() -> None:
    up_client, up_server = memory_connection_pair()  # the "upstream" the tunnel reaches
    targets: list[str] = []

    async def tunnel(connection: UpgradedConnection) -> None:
        assert connection.request is not None
        targets.append(connection.request.target)

        async def to_upstream() -> None:
            while data := await connection.receive_some():
                await up_client.send_all(data)
            await up_client.send_eof()

        async def to_client() -> None:
            while data := await up_client.receive_some():
                await connection.send_all(data)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(to_upstream)
            nursery.start_soon(to_client)

    async def handler(request: Request) -> Response:
        assert request.method == "CONNECT"
        return Response(200, upgrade=tunnel)

    async with running(handler) as (listener, server):
        client = await listener.connect()
        await client.send_all(CONNECT + b"ClientHello")
        head = await read_until(client, b"\r\n\r\n")
        status_line, fields, rest = split_head(head)
        assert status_line == "HTTP/1.1 200 OK"
        assert "content-length" not in names(fields)
        assert "transfer-encoding" not in names(fields)
        assert "connection" not in names(fields)
        assert rest == b""
        assert await read_until(up_server, b"ClientHello") == b"ClientHello"
        await up_server.send_all(b"ServerHello")
        assert await read_until(client, b"ServerHello") == b"ServerHello"
        await client.send_all(b"more")
        assert await read_until(up_server, b"more") == b"more"
        await client.send_eof()
        assert await up_server.receive_some() == b""  # the client's EOF went through
        await up_server.aclose()
        assert await read_to_eof(client) == b""  # the tunnel ended, the server closed
        await server.server.wait_idle()
    assert targets == ["upstream:443"]


async def test_a_refused_connect_is_an_ordinary_response() -> None:
    async def refuse(request: Request) -> Response:
        if request.method == "CONNECT":
            return Response.text("no tunnels here", 403)
        return await ok(request)

    async with running(refuse) as (listener, _):
        client = await listener.connect()
        await client.send_all(CONNECT + CLOSE)
        data = await read_to_eof(client)
    assert content_length_responses(data) == [
        ("HTTP/1.1 403 Forbidden", b"no tunnels here"),
        ("HTTP/1.1 200 OK", b"ok /last"),
    ]


# -- handler bugs around the hand-over -----------------------------------------------------


async def _never(connection: UpgradedConnection) -> None:
    raise AssertionError("the upgrade callback must not run")


UPGRADE_BUGS: dict[str, tuple[bytes, Callable[[], Response]]] = {
    "101-to-a-request-without-upgrade": (
        GET,
        lambda: Response.switching_protocols("echo", _never),
    ),
    "101-without-a-callback": (
        UPGRADE,
        lambda: Response(101, Headers([("upgrade", "echo"), ("connection", "upgrade")])),
    ),
    "callback-on-a-200-to-get": (GET, lambda: Response(200, body=b"x", upgrade=_never)),
    "callback-on-a-200-to-an-upgrade-request": (
        UPGRADE,
        lambda: Response(200, body=b"x", upgrade=_never),
    ),
    "2xx-to-connect-without-a-callback": (CONNECT, lambda: Response(200)),
}


@pytest.mark.parametrize("case", list(UPGRADE_BUGS))
async def test_a_wrong_hand_over_is_a_500_and_the_server_goes_on(
    case: str, caplog: pytest.LogCaptureFixture
) -> None:
    request, make = UPGRADE_BUGS[case]

    async def handler(request: Request) -> Response:
        return await ok(request) if request.target == "/last" else make()

    with caplog.at_level(logging.ERROR, logger="runtime.http.server"):
        async with running(handler) as (listener, _):
            first = await listener.connect()
            await first.send_all(request)
            data = await read_to_eof(first)
            second = await listener.connect()
            await second.send_all(CLOSE)
            after = await read_to_eof(second)
    status_line, fields, body = split_head(data)
    assert status_line == "HTTP/1.1 500 Internal Server Error"
    assert ("connection", "close") in fields
    assert len(body) == int(dict(fields)["content-length"])
    assert content_length_responses(after) == [("HTTP/1.1 200 OK", b"ok /last")]
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "answered 500" in errors[0].getMessage()


async def test_a_101_to_an_http_1_0_request_is_a_500() -> None:
    async def handler(request: Request) -> Response:
        return Response.switching_protocols("echo", _never)

    request = b"GET /chat HTTP/1.0\r\nConnection: upgrade\r\nUpgrade: echo\r\n\r\n"
    async with running(handler) as (listener, _):
        client = await listener.connect()
        await client.send_all(request)
        data = await read_to_eof(client)
        await client.aclose()
    assert split_head(data)[0] == "HTTP/1.1 500 Internal Server Error"


async def test_a_callback_that_closes_the_connection_itself_is_fine() -> None:
    async def short(connection: UpgradedConnection) -> None:
        await connection.send_all(b"bye")
        await connection.aclose()

    async def handler(request: Request) -> Response:
        return Response.switching_protocols("echo", short)

    async with running(handler) as (listener, server):
        client = await listener.connect()
        await client.send_all(UPGRADE)
        data = await read_to_eof(client)
        await client.aclose()
        await server.server.wait_idle()
        assert server.server.statistics().errored == 0
    assert split_head(data)[2] == b"bye"


async def test_a_callback_that_raises_is_logged_and_closes_only_its_connection(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def broken(connection: UpgradedConnection) -> None:
        assert await connection.receive_some() == b"frame"
        raise ValueError("protocol bug")

    async def handler(request: Request) -> Response:
        if request.target == "/chat":
            return Response.switching_protocols("echo", broken)
        return await ok(request)

    with caplog.at_level(logging.ERROR, logger="runtime.http.server"):
        async with running(handler) as (listener, server):
            bystander = await listener.connect()  # a keep-alive connection open meanwhile
            await bystander.send_all(GET)
            await read_until(bystander, b"ok /")
            client = await listener.connect()
            await client.send_all(UPGRADE + b"frame")
            data = await read_to_eof(client)  # the server closed it
            assert data.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
            assert split_head(data)[2] == b""
            await bystander.send_all(CLOSE)
            assert content_length_responses(await read_to_eof(bystander)) == [
                ("HTTP/1.1 200 OK", b"ok /last")
            ]
            fresh = await listener.connect()
            await fresh.send_all(CLOSE)
            assert content_length_responses(await read_to_eof(fresh)) == [
                ("HTTP/1.1 200 OK", b"ok /last")
            ]
            for done in (client, bystander, fresh):
                await done.aclose()  # ends the server's lingering closes
            await server.server.wait_idle()
            assert server.server.statistics().errored == 0
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert "upgrade handler failed" in errors[0].getMessage()
    assert errors[0].exc_info is not None and isinstance(errors[0].exc_info[1], ValueError)


# -- time and drain ------------------------------------------------------------------------


@pytest.mark.parametrize("handler_delay", [0.0, 0.5], ids=["fast-handler", "slow-handler"])
async def test_the_http_timeouts_do_not_apply_to_an_upgraded_connection(
    handler_delay: float, autojump_clock: trio.testing.MockClock
) -> None:
    async def patient(connection: UpgradedConnection) -> None:
        await trio.sleep(10)
        await connection.send_all(b"still here")

    async def handler(request: Request) -> Response:
        await trio.sleep(handler_delay)
        return Response.switching_protocols("echo", patient)

    config = HttpConfig(
        request_timeout=1,
        header_timeout=1,
        body_timeout=1,
        keep_alive_timeout=1,
        send_timeout=1,
    )
    async with running(handler, config) as (listener, _):
        client = await listener.connect()
        start = trio.current_time()
        await client.send_all(UPGRADE)
        data = await read_to_eof(client)
        elapsed = trio.current_time() - start
    assert data.startswith(b"HTTP/1.1 101 ")
    assert split_head(data)[2] == b"still here"
    assert elapsed >= 10 + handler_delay


async def test_draining_is_cancelled_when_the_server_drains() -> None:
    handed_over = trio.Event()

    async def long_lived(connection: UpgradedConnection) -> None:
        assert not connection.draining.is_cancelled()
        handed_over.set()
        await connection.draining.cancelled()
        await connection.send_all(b"going away")

    async def handler(request: Request) -> Response:
        return Response.switching_protocols("echo", long_lived)

    async with running(handler) as (listener, server):
        client = await listener.connect()
        await client.send_all(UPGRADE)
        await handed_over.wait()
        await trio.testing.wait_all_tasks_blocked()
        server.drain()
        data = await read_to_eof(client)
        await client.aclose()  # ends the server's lingering close
        await server.server.wait_idle()
    assert data.startswith(b"HTTP/1.1 101 ")
    assert split_head(data)[2] == b"going away"


async def test_a_drain_while_a_handler_prepares_the_upgrade_still_hands_over() -> None:
    entered = trio.Event()
    release = trio.Event()
    draining_seen: list[bool] = []

    async def callback(connection: UpgradedConnection) -> None:
        draining_seen.append(connection.draining.is_cancelled())
        await connection.send_all(b"bye")

    async def handler(request: Request) -> Response:
        entered.set()
        await release.wait()
        return Response.switching_protocols("echo", callback)

    async with running(handler) as (listener, server):
        client = await listener.connect()
        await client.send_all(UPGRADE)
        await entered.wait()
        server.drain()
        release.set()
        data = await read_to_eof(client)
    assert data.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
    assert split_head(data)[2] == b"bye"
    assert draining_seen == [True]


# -- the read-ahead ------------------------------------------------------------------------


async def test_no_disconnect_watcher_eats_the_new_protocols_bytes(
    autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    entered = trio.Event()
    sent = trio.Event()
    seen: list[bytes] = []
    spawn, watch = _HttpConnection._spawn_watcher, _HttpConnection._watch
    calls = {"spawn": 0, "watch": 0}

    def counting_spawn(self: _HttpConnection) -> None:
        calls["spawn"] += 1
        spawn(self)

    async def counting_watch(
        self: _HttpConnection, scope: trio.CancelScope, done: trio.Event
    ) -> None:
        calls["watch"] += 1
        await watch(self, scope, done)

    monkeypatch.setattr(_HttpConnection, "_spawn_watcher", counting_spawn)
    monkeypatch.setattr(_HttpConnection, "_watch", counting_watch)

    async def echo(connection: UpgradedConnection) -> None:
        while data := await connection.receive_some():
            seen.append(data)
            await connection.send_all(data)

    async def slow(request: Request) -> Response:
        entered.set()
        await sent.wait()
        await trio.sleep(1)  # far past the watcher's delay
        return Response.switching_protocols("echo", echo)

    async with running(slow) as (listener, _):
        client = await listener.connect()
        await client.send_all(UPGRADE)
        await entered.wait()
        await client.send_all(b"early frame")  # while the handler still runs
        sent.set()
        data = await read_until(client, b"early frame")
        assert split_head(data)[2] == b"early frame"
        await client.send_all(b"late frame")
        await read_until(client, b"late frame")
        await client.aclose()
    assert b"".join(seen) == b"early framelate frame"
    # The handler ran long enough to ask for a watcher; the upgrade request declined it.
    assert calls == {"spawn": 1, "watch": 0}
