"""Raw ASGI apps on the adapter: the spec's corners, over a MemoryListener and raw bytes.

Each app here is a bare ASGI 3 callable, so what is checked is the adapter's side of the
spec: the messages it gives (``http.request`` with ``more_body``, ``http.disconnect``), the
messages it takes (``http.response.*`` in one piece or streamed), the scope (``root_path``,
``state``), the lifespan protocol, and what the client gets when the app fails or hangs.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
import trio
import trio.testing

from runtime.http import AsgiConfig, HttpConfig, LifespanFailed, serve_asgi
from runtime.testing import MemoryListener

from ._support import CLOSE, GET, exchange, only_error, parse_responses, served, task_count

Scope = dict[str, Any]


async def hello(scope: Scope, receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"x-a", b"1")]})
    await send({"type": "http.response.body", "body": b"hi " + scope["path"].encode()})


async def test_a_raw_app_answers_keep_alive_requests() -> None:
    async with served(hello) as (listener, _):
        data = await exchange(listener, GET + CLOSE)
    responses = parse_responses(data)
    assert [r.status for r in responses] == [200, 200]
    assert [r.body for r in responses] == [b"hi /", b"hi /last"]
    assert responses[0].header("x-a") == "1"
    assert responses[0].header("content-length") == "4"


# -- more_body, both ways ---------------------------------------------------------------------


def body_echo(seen: list[Any]) -> Any:
    """An app that reads the body message by message, then answers with what it read."""

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        parts = []
        while True:
            message = await receive()
            seen.append((message["type"], message.get("body"), message.get("more_body")))
            parts.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"".join(parts)})

    return app


async def test_a_chunked_request_body_comes_as_several_messages_the_last_without_more_body() -> (
    None
):
    seen: list[Any] = []
    chunked = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n"
    async with served(body_echo(seen)) as (listener, _):
        client = await listener.connect()
        await client.send_all(chunked)
        await trio.testing.wait_all_tasks_blocked()
        await client.send_all(b"2\r\nde\r\n0\r\n\r\n" + CLOSE)
        data = b""
        while chunk := await client.receive_some():
            data += chunk
        await client.aclose()
    responses = parse_responses(data)
    assert [r.body for r in responses] == [b"abcde", b""]
    assert seen[:3] == [
        ("http.request", b"abc", True),
        ("http.request", b"de", True),
        ("http.request", b"", False),
    ]
    assert seen[3] == ("http.request", b"", False)  # the GET: one empty message at once


async def test_a_content_length_body_says_more_body_false_on_its_last_chunk() -> None:
    seen: list[Any] = []
    post = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello"
    async with served(body_echo(seen)) as (listener, _):
        data = await exchange(listener, post + CLOSE)
    assert [r.body for r in parse_responses(data)] == [b"hello", b""]
    assert seen[0] == ("http.request", b"hello", False)


async def test_a_response_sent_with_more_body_streams_chunked_in_order() -> None:
    async def app(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for part in (b"one ", b"two ", b"three"):
            await send({"type": "http.response.body", "body": part, "more_body": True})
            await trio.lowlevel.checkpoint()
        await send({"type": "http.response.body", "body": b""})

    async with served(app) as (listener, _):
        data = await exchange(listener, GET + CLOSE)
    responses = parse_responses(data)
    assert [r.body for r in responses] == [b"one two three"] * 2
    assert responses[0].header("transfer-encoding") == "chunked"


async def test_a_streamed_response_waits_for_a_slow_client() -> None:
    """Backpressure: the app's send() waits while the client does not read."""
    sent = 0

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        nonlocal sent
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for _ in range(1000):
            await send({"type": "http.response.body", "body": b"x" * 65536, "more_body": True})
            sent += 1
        await send({"type": "http.response.body", "body": b""})

    async with served(app) as (listener, _):
        client = await listener.connect()
        await client.send_all(CLOSE)
        await trio.testing.wait_all_tasks_blocked()
        assert sent < 50  # nowhere near the 64 MB the app would send: it waits for us
        total = 0
        while chunk := await client.receive_some(1 << 20):
            total += len(chunk)
        await client.aclose()
    assert sent == 1000
    assert total > 1000 * 65536


# -- the client going away --------------------------------------------------------------------


async def test_a_client_that_goes_away_is_an_http_disconnect() -> None:
    read_body = trio.Event()
    got: list[str] = []
    ended = trio.Event()

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        try:
            assert (await receive())["type"] == "http.request"
            read_body.set()
            got.append((await receive())["type"])  # nothing to say until the client leaves
        finally:
            ended.set()

    async with served(app) as (listener, server):
        client = await listener.connect()
        await client.send_all(GET)
        await read_body.wait()
        await client.aclose()
        await ended.wait()
        await server.server.wait_idle()
        assert server.server.statistics().errored == 0
    assert got == ["http.disconnect"]


async def test_a_send_to_a_client_that_went_away_raises_oserror() -> None:
    errors: list[BaseException] = []
    ended = trio.Event()

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        try:
            while True:
                await send({"type": "http.response.body", "body": b"x" * 4096, "more_body": True})
        except OSError as exc:  # the spec: send() raises an OSError once the client is gone
            errors.append(exc)
        finally:
            ended.set()

    async with served(app) as (listener, _):
        client = await listener.connect()
        await client.send_all(GET)
        await client.receive_some()  # the head and the first chunks
        await client.aclose()
        await ended.wait()
    assert len(errors) == 1


# -- the scope --------------------------------------------------------------------------------


async def test_root_path_is_in_the_scope_and_in_front_of_the_path() -> None:
    scopes: list[Scope] = []

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            scopes.append(scope)
        await hello(scope, receive, send)

    request = b"GET /items/caf%C3%A9?page=2 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
    async with served(app, asgi=AsgiConfig(root_path="/api")) as (listener, _):
        await exchange(listener, request)
    (scope,) = scopes
    assert scope["root_path"] == "/api"
    assert scope["path"] == "/api/items/café"
    assert scope["raw_path"] == b"/api/items/caf%C3%A9"
    assert scope["query_string"] == b"page=2"
    assert scope["method"] == "GET" and scope["scheme"] == "http"
    assert scope["http_version"] == "1.1"
    assert scope["asgi"]["version"] == "3.0"
    assert (b"host", b"a") in scope["headers"]
    assert scope["client"][0] == "127.0.0.2"  # the MemoryListener's client address


async def test_proxy_headers_from_a_trusted_peer_set_client_and_scheme() -> None:
    scopes: list[Scope] = []

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            scopes.append(scope)
        await hello(scope, receive, send)

    request = (
        b"GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 203.0.113.7, 127.0.0.1\r\n"
        b"X-Forwarded-Proto: https\r\n\r\n"
    )
    asgi = AsgiConfig(proxy_headers=True, forwarded_allow_ips="127.0.0.1, 127.0.0.2")
    async with served(app, asgi=asgi) as (listener, _):
        await exchange(listener, request + CLOSE)
    async with served(
        app, asgi=AsgiConfig(proxy_headers=True, forwarded_allow_ips="10.0.0.1")
    ) as (
        listener,
        _,
    ):
        await exchange(listener, request + CLOSE)
    assert scopes[0]["client"] == ("203.0.113.7", 0) and scopes[0]["scheme"] == "https"
    assert scopes[2]["client"][0] == "127.0.0.2" and scopes[2]["scheme"] == "http"


# -- lifespan ---------------------------------------------------------------------------------


def with_lifespan(events: list[str], *, fail: str | None = None) -> Any:
    async def app(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                events.append(message["type"])
                if message["type"] == "lifespan.startup":
                    if fail is not None:
                        await send({"type": "lifespan.startup.failed", "message": fail})
                        return
                    scope["state"]["greeting"] = "hello from startup"
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        body = scope["state"]["greeting"].encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})

    return app


async def test_lifespan_state_reaches_every_request_and_shutdown_runs_at_the_drain() -> None:
    events: list[str] = []
    async with served(with_lifespan(events)) as (listener, _):
        assert events == ["lifespan.startup"]
        data = await exchange(listener, CLOSE)
    assert parse_responses(data)[0].body == b"hello from startup"
    assert events == ["lifespan.startup", "lifespan.shutdown"]


async def test_a_failed_lifespan_startup_stops_the_server_with_the_apps_message() -> None:
    events: list[str] = []
    listener = MemoryListener()
    app = with_lifespan(events, fail="database unreachable")
    with pytest.raises(LifespanFailed, match="database unreachable"):
        await serve_asgi(app, [listener])  # raised before anything is served
    assert events == ["lifespan.startup"]


async def test_an_app_without_lifespan_support_is_served_in_auto_mode(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def app(scope: Scope, receive: Any, send: Any) -> None:
        assert scope["type"] == "http", "this app only speaks http"
        await hello(scope, receive, send)

    caplog.set_level(logging.INFO, "runtime.http.asgi")
    async with served(app) as (listener, _):
        data = await exchange(listener, CLOSE)
    assert parse_responses(data)[0].status == 200
    assert "lifespan' protocol appears unsupported" in caplog.text
    listener = MemoryListener()
    with pytest.raises(LifespanFailed, match="this app only speaks http"):
        await serve_asgi(app, [listener], asgi=AsgiConfig(lifespan="on"))


# -- failures and hangs -----------------------------------------------------------------------


async def test_an_app_exception_before_the_response_starts_is_a_500_and_a_log_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def app(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] == "/boom":
            raise RuntimeError("boom")
        await hello(scope, receive, send)

    boom = b"GET /boom HTTP/1.1\r\nHost: a\r\n\r\n"
    async with served(app) as (listener, _):
        data = await exchange(listener, boom + CLOSE)
    assert [r.status for r in parse_responses(data)] == [500, 200]  # the connection goes on
    failures = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(failures) == 1 and "boom" in str(failures[0].exc_info)


async def test_an_app_that_returns_without_a_response_is_a_500() -> None:
    async def app(scope: Scope, receive: Any, send: Any) -> None:
        return

    async with served(app) as (listener, _):
        only_error_free = parse_responses(await exchange(listener, CLOSE))
    assert [r.status for r in only_error_free] == [500]


async def test_an_app_exception_after_the_head_went_out_aborts_the_connection() -> None:
    async def app(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"partial", "more_body": True})
        await trio.lowlevel.checkpoint()
        raise RuntimeError("broke mid-body")

    async with served(app) as (listener, _):
        data = await exchange(listener, GET + GET)
    assert data.startswith(b"HTTP/1.1 200 ")
    assert b"7\r\npartial\r\n" in data
    assert not data.endswith(b"0\r\n\r\n")  # no clean end: the client knows it is cut
    assert data.count(b"HTTP/1.1") == 1  # and the second request was never answered


async def test_a_hung_app_is_cut_by_request_timeout_with_503_and_leaves_no_task(
    autojump_clock: trio.testing.MockClock,
) -> None:
    cancelled = trio.Event()

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] == "/":
            try:
                await trio.sleep_forever()
            finally:
                cancelled.set()
        await hello(scope, receive, send)

    async with served(app, HttpConfig(request_timeout=5)) as (listener, server):
        await exchange(listener, CLOSE)  # the timer wheel's driver starts: a system task
        await trio.testing.wait_all_tasks_blocked()
        baseline = task_count()
        start = trio.current_time()
        data = await exchange(listener, GET)
        elapsed = trio.current_time() - start
        await server.server.wait_idle()
        await trio.testing.wait_all_tasks_blocked()
        assert task_count() == baseline
    only_error(data, 503)
    assert cancelled.is_set()
    assert 5 <= elapsed < 6
