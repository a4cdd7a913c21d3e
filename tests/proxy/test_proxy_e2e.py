"""The proxy end to end: real upstreams on loopback (our HTTP server, raw sockets that
misbehave on purpose), real clients, the proxy in the same Trio run."""

from __future__ import annotations

import json
import socket
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio
import trio.testing
import trustme

from runtime.http import Client, HttpServer, Request, Response, Router
from runtime.net import TcpListener
from runtime.proxy import ProxyApp, parse_config, serve_proxy
from runtime.rt import open_runtime

GUARD = 20.0  # a hang guard, not a speed claim

Handler = Callable[[Request], Awaitable[Response]]


@asynccontextmanager
async def upstream(handler: Handler) -> AsyncIterator[int]:
    """Our own HTTP server on a loopback port, answering every path with ``handler``."""
    router = Router()
    for method in ("GET", "POST", "PUT", "DELETE", "HEAD"):
        router.route(method, "/{path:path}", handler)
        router.route(method, "/", handler)
    listener = TcpListener.bind("127.0.0.1", 0)
    async with trio.open_nursery() as nursery:
        await nursery.start(HttpServer(router, [listener]).serve)
        yield listener.port
        nursery.cancel_scope.cancel()


@asynccontextmanager
async def raw_upstream(
    serve_one: Callable[[trio.SocketStream], Awaitable[None]],
) -> AsyncIterator[tuple[int, list[int]]]:
    """A hand-written upstream: ``serve_one`` gets each connection; ``seen[0]`` counts them."""
    seen = [0]
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")

    async def handle(stream: trio.SocketStream) -> None:
        seen[0] += 1
        try:
            await serve_one(stream)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass

    async with trio.open_nursery() as nursery:
        nursery.start_soon(trio.serve_listeners, handle, listeners)
        yield listeners[0].socket.getsockname()[1], seen
        nursery.cancel_scope.cancel()


def dead_port() -> int:
    """A loopback port nobody listens on (bound, then closed)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port: int = sock.getsockname()[1]
    sock.close()
    return port


def config_text(endpoints: list[int], **route: Any) -> str:
    upstream_extra = route.pop("_upstream", "")
    route_lines = "\n".join(f"{k} = {json.dumps(v)}" for k, v in route.items())
    return f"""
access_log = true
[admin]
listen = "127.0.0.1:0"

[[listeners]]
name = "web"
listen = "127.0.0.1:0"

[[routes]]
listener = "web"
upstream = "backend"
{route_lines}

[[upstreams]]
name = "backend"
endpoints = {json.dumps([f"127.0.0.1:{p}" for p in endpoints])}
{upstream_extra}
"""


@asynccontextmanager
async def proxy(text: str) -> AsyncIterator[tuple[ProxyApp, str]]:
    config = parse_config(text)
    async with open_runtime() as rt, trio.open_nursery() as nursery:
        app: ProxyApp = await nursery.start(serve_proxy, config)
        yield app, f"http://127.0.0.1:{app.ports['web']}"
        rt.shutdown()


def reset(stream: trio.SocketStream) -> None:
    stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


async def read_request_head(stream: trio.SocketStream) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = await stream.receive_some()
        if not chunk:
            break
        data += chunk
    return data


async def rst(stream: trio.SocketStream) -> None:
    """An upstream that reads the request head, then resets the connection."""
    await read_request_head(stream)
    reset(stream)
    await stream.aclose()


def recorder() -> tuple[list[Request], Callable[[Request], Awaitable[Response]]]:
    """An upstream handler that keeps every request it gets, and the list it keeps them in."""
    seen: list[Request] = []

    async def record(request: Request) -> Response:
        seen.append(request)
        return Response.text("ok\n")

    return seen, record


async def hello(request: Request) -> Response:
    return Response.text(f"hello from {request.path}\n")


async def test_a_get_is_forwarded_with_forwarded_headers_and_a_request_id() -> None:
    seen, record = recorder()
    with trio.fail_after(GUARD):
        async with (
            upstream(record) as port,
            proxy(config_text([port])) as (_, url),
            Client() as client,
        ):
            headers = [
                ("connection", "x-drop-me"),
                ("x-drop-me", "1"),
                ("keep-alive", "timeout=5"),
                ("te", "trailers"),
                ("proxy-authorization", "Basic c2VjcmV0"),
                ("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
                ("x-forwarded-for", "203.0.113.7"),
            ]
            response = await client.get(f"{url}/a/b?c=1", headers=headers)
    assert response.status == 200 and response.body == b"ok\n"
    assert len(response.headers.get("x-request-id") or "") == 32
    (got,) = seen
    assert got.target == "/a/b?c=1"
    for hop in ("x-drop-me", "keep-alive", "te", "proxy-authorization"):
        assert hop not in got.headers, hop
    assert got.headers.get("traceparent", "").startswith("00-4bf92f35")
    assert got.headers["x-forwarded-for"] == "203.0.113.7, 127.0.0.1"
    assert got.headers["x-forwarded-proto"] == "http"
    assert got.headers["x-forwarded-host"].startswith("127.0.0.1:")
    assert got.headers["x-request-id"] == response.headers["x-request-id"]


async def test_a_well_formed_request_id_is_kept_and_a_bad_one_replaced() -> None:
    ids: list[str] = []

    async def record(request: Request) -> Response:
        ids.append(request.headers["x-request-id"])
        return Response.text("ok\n")

    with trio.fail_after(GUARD):
        async with (
            upstream(record) as port,
            proxy(config_text([port])) as (_, url),
            Client() as client,
        ):
            await client.get(url, headers=[("x-request-id", "abc-123")])
            await client.get(url, headers=[("x-request-id", "bad id with spaces")])
    assert ids[0] == "abc-123"
    assert ids[1] != "bad id with spaces" and len(ids[1]) == 32


async def test_an_absolute_form_target_is_routed_by_its_host_and_sent_in_origin_form() -> None:
    seen, record = recorder()
    with trio.fail_after(GUARD):
        async with (
            upstream(record) as port,
            proxy(config_text([port], host="api.example")) as (app, _),
        ):
            stream = await trio.open_tcp_stream("127.0.0.1", app.ports["web"])
            # RFC 9112 section 3.2.2: the target's authority wins over the Host header
            await stream.send_all(
                b"GET http://api.example:8080/a?b=1 HTTP/1.1\r\nHost: elsewhere\r\n"
                b"Connection: close\r\n\r\n"
            )
            reply = b""
            while chunk := await stream.receive_some():
                reply += chunk
    assert reply.startswith(b"HTTP/1.1 200 "), reply
    (got,) = seen
    assert got.target == "/a?b=1"
    assert got.headers.get_all("host") == ["api.example:8080"]
    assert got.headers["x-forwarded-host"] == "api.example:8080"


async def test_a_get_is_retried_past_a_refused_endpoint() -> None:
    with trio.fail_after(GUARD):
        async with upstream(hello) as port:
            text = config_text([dead_port(), port], retries=2, _upstream="failure_threshold = 100")
            async with proxy(text) as (_, url), Client() as client:
                statuses = [(await client.get(f"{url}/x")).status for _ in range(20)]
    assert statuses == [200] * 20


async def test_a_get_is_retried_after_a_reset_before_the_headers() -> None:
    with trio.fail_after(GUARD):
        async with raw_upstream(rst) as (bad, seen), upstream(hello) as good:
            text = config_text([bad, good], retries=2, _upstream="failure_threshold = 100")
            async with proxy(text) as (_, url), Client() as client:
                statuses = [(await client.get(f"{url}/x")).status for _ in range(20)]
    assert statuses == [200] * 20
    assert seen[0] >= 1  # the resetting endpoint was tried, and its failures retried


async def test_a_post_is_not_retried() -> None:
    with trio.fail_after(GUARD):
        async with (
            raw_upstream(rst) as (bad, seen),
            proxy(config_text([bad], retries=2)) as (_, url),
            Client() as client,
        ):
            response = await client.post(f"{url}/orders", body=b'{"n": 1}')
    assert response.status == 502
    assert seen[0] == 1  # the upstream saw the POST once


async def test_the_route_deadline_answers_504() -> None:
    async def stuck(request: Request) -> Response:
        await trio.sleep_forever()
        raise AssertionError

    with trio.fail_after(GUARD):
        async with (
            upstream(stuck) as port,
            proxy(config_text([port], timeout=0.3, retries=0)) as (_, url),
            Client() as client,
        ):
            response = await client.get(url)
    assert response.status == 504


async def test_a_per_try_timeout_moves_to_a_fast_endpoint_within_the_deadline() -> None:
    async def stuck(request: Request) -> Response:
        await trio.sleep_forever()
        raise AssertionError

    with trio.fail_after(GUARD):
        async with upstream(stuck) as slow, upstream(hello) as fast:
            text = config_text(
                [slow, fast],
                timeout=5.0,
                per_try_timeout=0.2,
                retries=2,
                _upstream="failure_threshold = 100",
            )
            async with proxy(text) as (_, url), Client() as client:
                statuses = [(await client.get(url)).status for _ in range(8)]
    assert statuses == [200] * 8


async def test_retries_are_bounded_by_the_budget_when_the_upstream_always_fails() -> None:
    requests = 300
    with trio.fail_after(GUARD * 3):
        async with raw_upstream(rst) as (bad, seen):
            text = config_text([bad], retries=2, _upstream="failure_threshold = 100000")
            async with proxy(text) as (_, url), Client() as client:
                for _ in range(requests):
                    assert (await client.get(url)).status == 502
    # 20% of requests + 10/s over 10 s: at most 300 + 60 + 100 tries, not 900
    assert requests < seen[0] <= requests + 0.2 * requests + 100


async def test_traffic_moves_off_an_endpoint_that_always_fails() -> None:
    with trio.fail_after(GUARD):
        async with raw_upstream(rst) as (bad, seen), upstream(hello) as good:
            text = config_text([bad, good], retries=2)  # failure_threshold 7, 1 s penalty
            async with proxy(text) as (_, url), Client() as client:
                statuses = [(await client.get(url)).status for _ in range(60)]
    assert statuses == [200] * 60  # every failure was retried on the good endpoint
    assert seen[0] <= 8  # each failure pushed it away; its breaker caps it at 7 in a row


async def test_an_ejected_endpoint_is_probed_once_per_penalty_which_grows(
    mock_clock: trio.testing.MockClock,
) -> None:
    """The penalties run on the MockClock (jumping only when the run is idle for 0.1 s of
    real time, far longer than loopback I/O), so the probe times are exact."""
    mock_clock.autojump_threshold = 0.1

    with trio.fail_after(GUARD):
        async with raw_upstream(rst) as (bad, seen):
            penalties = "failure_threshold = 2\nmin_penalty = 10\nmax_penalty = 40"
            text = config_text([bad], retries=0, timeout=1000, _upstream=penalties)
            async with proxy(text) as (app, url), Client() as client:
                assert [(await client.get(url)).status for _ in range(2)] == [502, 502]
                assert seen[0] == 2  # ejected now
                (breaker,) = app.proxy.upstreams["backend"].balance._endpoints
                first = breaker.service.penalty
                assert 10 <= first <= 15  # min_penalty plus up to 50% jitter
                assert (await client.get(url)).status == 503  # out: no connect
                await trio.sleep(first + 0.01)
                assert (await client.get(url)).status == 502  # the one probe, failing
                assert seen[0] == 3
                assert (await client.get(url)).status == 503  # out again...
                assert 20 <= breaker.service.penalty <= 30  # ...for twice as long
    assert seen[0] == 3


async def test_all_endpoints_down_is_a_fast_503_without_connect_attempts() -> None:
    with trio.fail_after(GUARD):
        async with raw_upstream(rst) as (bad, seen):
            text = config_text(
                [bad],
                retries=0,
                _upstream="failure_threshold = 2\nmin_penalty = 30\nmax_penalty = 60",
            )
            async with proxy(text) as (_, url), Client() as client:
                first = [(await client.get(url)).status for _ in range(2)]
                tried = seen[0]
                later = [await client.get(url) for _ in range(20)]
    assert first == [502, 502]
    assert [r.status for r in later] == [503] * 20
    assert all(r.headers.get("retry-after") == "1" for r in later)
    assert seen[0] == tried  # no connect attempt while the endpoint is out


async def test_over_the_concurrency_cap_is_an_immediate_503() -> None:
    entered, release = trio.Event(), trio.Event()

    async def slow(request: Request) -> Response:
        entered.set()
        await release.wait()
        return Response.text("done\n")

    with trio.fail_after(GUARD):
        async with (
            upstream(slow) as port,
            proxy(config_text([port], max_concurrency=1)) as (_, url),
            Client() as client,
            trio.open_nursery() as nursery,
        ):
            results: list[int] = []

            async def first() -> None:
                results.append((await client.get(url)).status)

            nursery.start_soon(first)
            await entered.wait()
            refused = await client.get(url)
            release.set()
    assert refused.status == 503 and refused.headers.get("retry-after") == "1"
    assert results == [200]


async def test_content_length_with_transfer_encoding_is_refused_at_the_proxy() -> None:
    calls = [0]

    async def count(request: Request) -> Response:
        calls[0] += 1
        return Response.text("ok\n")

    with trio.fail_after(GUARD):
        async with upstream(count) as port, proxy(config_text([port])) as (app, _):
            stream = await trio.open_tcp_stream("127.0.0.1", app.ports["web"])
            await stream.send_all(
                b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
            )
            reply = b""
            while chunk := await stream.receive_some():
                reply += chunk
    assert reply.startswith(b"HTTP/1.1 400 ")
    assert calls == [0]


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello",
        b"NOT HTTP AT ALL\r\n\r\n",
        b"HTTP/1.1 200 OK\r\n" + b"".join(b"x-h%d: v\r\n" % i for i in range(10000)) + b"\r\n",
    ],
    ids=["two-lengths", "garbage", "too-many-headers"],
)
async def test_bad_upstream_framing_is_a_502(answer: bytes) -> None:
    async def bad(stream: trio.SocketStream) -> None:
        await read_request_head(stream)
        await stream.send_all(answer)
        await stream.aclose()

    with trio.fail_after(GUARD):
        async with (
            raw_upstream(bad) as (port, _),
            proxy(config_text([port], retries=0)) as (_, url),
            Client() as client,
        ):
            response = await client.get(url)
    assert response.status == 502


async def test_an_upstream_that_dies_mid_body_aborts_the_downstream_response() -> None:
    async def short(stream: trio.SocketStream) -> None:
        await read_request_head(stream)
        await stream.send_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"x" * 10)
        reset(stream)
        await stream.aclose()

    with trio.fail_after(GUARD):
        async with (
            raw_upstream(short) as (port, _),
            proxy(config_text([port], retries=0)) as (app, _),
        ):
            stream = await trio.open_tcp_stream("127.0.0.1", app.ports["web"])
            await stream.send_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            reply = b""
            try:
                while chunk := await stream.receive_some():
                    reply += chunk
            except trio.BrokenResourceError:
                pass
    head, _, body = reply.partition(b"\r\n\r\n")
    assert b"content-length: 1000" in head.lower()
    assert len(body) < 1000  # cut short: never a clean, complete-looking response


async def test_a_bad_upstream_certificate_is_a_502(tmp_path: Any) -> None:
    upstream_ca, proxy_ca = trustme.CA(), trustme.CA()
    import ssl

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    upstream_ca.issue_cert("127.0.0.1").configure_cert(context)
    trusted = tmp_path / "ca.pem"
    proxy_ca.cert_pem.write_to_path(str(trusted))  # the proxy trusts another CA
    router = Router()
    router.get("/")(hello)
    listener = TcpListener.bind("127.0.0.1", 0)
    with trio.fail_after(GUARD):
        async with trio.open_nursery() as nursery:
            await nursery.start(HttpServer(router, [listener], tls=context).serve)
            text = config_text(
                [listener.port], retries=0, _upstream=f'tls = true\nca_file = "{trusted}"'
            )
            async with proxy(text) as (_, url), Client() as client:
                response = await client.get(url)
            nursery.cancel_scope.cancel()
    assert response.status == 502


async def test_a_client_that_aborts_cancels_the_upstream_request() -> None:
    entered, cancelled = trio.Event(), trio.Event()

    async def slow(request: Request) -> Response:
        entered.set()
        try:
            await trio.sleep_forever()
        finally:
            cancelled.set()
        raise AssertionError

    with trio.fail_after(GUARD):
        async with upstream(slow) as port, proxy(config_text([port], timeout=60)) as (app, _):
            stream = await trio.open_tcp_stream("127.0.0.1", app.ports["web"])
            await stream.send_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            await entered.wait()
            await stream.aclose()  # the client gives up
            await cancelled.wait()  # and the upstream's handler is cancelled in turn


async def test_the_admin_port_has_config_and_the_proxy_metrics() -> None:
    with trio.fail_after(GUARD):
        async with (
            upstream(hello) as port,
            proxy(config_text([port])) as (app, url),
            Client() as client,
        ):
            assert (await client.get(url)).status == 200
            config = json.loads((await client.get(f"{app.admin_url}/config")).body)
            metrics = (await client.get(f"{app.admin_url}/metrics")).body.decode()
            ready = await client.get(f"{app.admin_url}/ready")
    assert config["config"]["upstreams"][0]["endpoints"] == [f"127.0.0.1:{port}"]
    assert ready.status == 200
    assert 'server="web"' in metrics and "runtime_http_requests_total" in metrics
    endpoint = f"127.0.0.1:{port}"
    # per route: the HTTP server's own figures under the route's label, and the proxy's
    assert (
        'runtime_http_requests_total{method="GET",route="web */",server="web",status="200"} 1.0'
        in metrics
    )
    assert (
        'runtime_proxy_requests_total{outcome="2xx",route="web */",upstream="backend"} 1.0'
        in metrics
    )
    # per upstream endpoint: tries by outcome, time to the head, pool state
    assert (
        f'runtime_proxy_upstream_requests_total{{endpoint="{endpoint}",outcome="2xx",'
        'upstream="backend"} 1.0'
    ) in metrics
    assert (
        f'runtime_proxy_upstream_duration_seconds_count{{endpoint="{endpoint}",'
        'upstream="backend"} 1.0'
    ) in metrics
    assert 'runtime_proxy_upstream_endpoints{state="ready",upstream="backend"} 1.0' in metrics
    assert 'runtime_proxy_upstream_endpoints{state="ejected",upstream="backend"} 0.0' in metrics


async def test_the_metrics_count_failed_tries_retries_and_the_proxys_own_answers() -> None:
    text = config_text([dead_port()], name="api", retries=1)
    with trio.fail_after(GUARD):
        async with proxy(text) as (app, url), Client() as client:
            assert (await client.get(url)).status == 502  # refused twice: both tries failed
            metrics = (await client.get(f"{app.admin_url}/metrics")).body.decode()
    assert (
        'runtime_proxy_requests_total{outcome="upstream_error",route="api",upstream="backend"} 1.0'
        in metrics
    )
    assert 'runtime_proxy_retries_total{route="api"} 1.0' in metrics
    assert 'outcome="error",upstream="backend"} 2.0' in metrics


async def test_a_long_body_streams_through_intact_and_the_connection_is_reused() -> None:
    payload = bytes(range(256)) * 4096  # 1 MiB: streamed, not read with the head

    async def big(request: Request) -> Response:
        async def chunks() -> AsyncIterator[bytes]:
            for start in range(0, len(payload), 65536):
                yield payload[start : start + 65536]

        return Response(200, body=chunks())

    with trio.fail_after(GUARD):
        async with upstream(big) as port, proxy(config_text([port])) as (app, url):
            async with Client(max_response_bytes=2 << 20) as client:
                first = await client.get(url)
                second = await client.get(url)
            exchange = app.proxy.upstreams["backend"].exchanges[f"127.0.0.1:{port}"]
            stats = exchange.client.statistics()
    assert first.body == payload and second.body == payload
    assert (stats.connections_opened, stats.connections_reused) == (1, 1)
    assert exchange.in_flight == 0


async def test_an_upstream_silent_mid_body_aborts_after_its_read_timeout() -> None:
    async def stall(stream: trio.SocketStream) -> None:
        await read_request_head(stream)
        await stream.send_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"x" * 10)
        await trio.sleep_forever()  # the upstream goes quiet mid-body

    with trio.fail_after(GUARD):
        async with raw_upstream(stall) as (port, _):
            text = config_text([port], retries=0, _upstream="read_timeout = 0.2")
            async with proxy(text) as (app, _):
                stream = await trio.open_tcp_stream("127.0.0.1", app.ports["web"])
                await stream.send_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
                reply = b""
                try:
                    while chunk := await stream.receive_some():
                        reply += chunk
                except trio.BrokenResourceError:
                    pass
                exchange = next(iter(app.proxy.upstreams["backend"].exchanges.values()))
                assert exchange.in_flight == 0  # the exchange ended with the response
    head, _, body = reply.partition(b"\r\n\r\n")
    assert b" 200 " in head and len(body) < 100000  # cut short, never completed


async def test_hop_by_hop_fields_of_the_response_are_dropped() -> None:
    async def answer(stream: trio.SocketStream) -> None:
        await read_request_head(stream)
        await stream.send_all(
            b"HTTP/1.1 200 OK\r\nConnection: x-secret\r\nX-Secret: 1\r\nKeep-Alive: timeout=5"
            b"\r\nProxy-Authenticate: Basic\r\nX-Kept: yes\r\nContent-Length: 3\r\n\r\nok\n"
        )
        await stream.aclose()

    with trio.fail_after(GUARD):
        async with (
            raw_upstream(answer) as (port, _),
            proxy(config_text([port], retries=0)) as (_, url),
            Client() as client,
        ):
            response = await client.get(url)
    assert response.status == 200 and response.body == b"ok\n"
    for hop in ("x-secret", "keep-alive", "proxy-authenticate"):
        assert hop not in response.headers, hop
    assert response.headers["x-kept"] == "yes"


async def test_a_websocket_upgrade_is_tunnelled_to_the_upstream() -> None:
    from runtime.http import WebSocket, ws_connect

    async def echo(ws: WebSocket) -> None:
        async for message in ws:
            await ws.send(f"upstream says {message}")

    router = Router()
    router.ws("/ws", echo)
    listener = TcpListener.bind("127.0.0.1", 0)
    with trio.fail_after(GUARD):
        async with trio.open_nursery() as nursery:
            await nursery.start(HttpServer(router, [listener]).serve)
            async with proxy(config_text([listener.port])) as (app, _):
                url = f"ws://127.0.0.1:{app.ports['web']}/ws"
                async with ws_connect(url) as ws:
                    await ws.send("hello")
                    assert await ws.receive() == "upstream says hello"
                    await ws.send(b"\x00" * 100_000)
                    reply = await ws.receive()
                    assert isinstance(reply, str) and reply.startswith("upstream says b'")
                async with Client() as client:  # a plain GET of the route: the upstream's 426
                    assert (
                        await client.get(f"http://127.0.0.1:{app.ports['web']}/ws")
                    ).status == 426
            nursery.cancel_scope.cancel()
