"""runtime.metrics: every family after some load, read back with prometheus-client's parser."""

from __future__ import annotations

import gc
import math
from collections.abc import Iterable

import pytest
import trio
import trio.testing
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

import runtime
from runtime.http import Client, HttpServer, Request, Response, Router
from runtime.metrics import MetricsLayer, registry
from runtime.net import TcpListener, serve
from runtime.rt import open_runtime
from runtime.service import ServiceBuilder, service_fn
from runtime.sync import broadcast, mpsc
from runtime.testing import MemoryListener

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(rt: runtime.Runtime) -> Samples:
    text = generate_latest(registry(rt)).decode()
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


def names(samples: Iterable[tuple[str, frozenset[tuple[str, str]]]]) -> set[str]:
    return {name for name, _ in samples}


async def test_the_runtime_families_read_the_layers_statistics() -> None:
    async with open_runtime() as rt, trio.open_nursery() as nursery:
        tx, rx = mpsc.channel[int](8, name="jobs")
        btx, _brx = broadcast.channel[str](4, name="news")
        for n in range(3):
            await tx.send(n)
        await btx.send("hello")
        runtime.spawn(trio.sleep, 0)
        held = runtime.spawn(trio.sleep_forever)
        with runtime.time.move_on_after(0.001):
            await trio.sleep_forever()

        async def echo(connection: runtime.net.Connection) -> None:
            while data := await connection.receive_some():
                await connection.send_all(data)

        listener = TcpListener.bind("127.0.0.1", 0)
        server = await nursery.start(serve, echo, [listener])
        client = await trio.open_tcp_stream("127.0.0.1", listener.port)
        await client.send_all(b"x")
        assert await client.receive_some() == b"x"
        await trio.testing.wait_all_tasks_blocked()
        samples = scrape(rt)
        assert value(samples, "runtime_tasks_alive") == 1
        assert value(samples, "runtime_tasks_spawned_total") == 2
        assert value(samples, "runtime_tasks_ended_total", state="done") == 1
        assert value(samples, "runtime_timers_fired_total") >= 1
        assert value(samples, "runtime_timer_lag_seconds") >= 0
        assert value(samples, "runtime_reactor_registered_fds") >= 1
        assert value(samples, "runtime_reactor_events_per_wakeup") >= 0
        assert value(samples, "runtime_channel_buffered", channel="jobs", kind="mpsc") == 3
        assert value(samples, "runtime_channel_capacity", channel="jobs", kind="mpsc") == 8
        assert value(samples, "runtime_channel_capacity", channel="news", kind="broadcast") == 4
        name = server.config.name
        assert value(samples, "runtime_server_connections_active", server=name) == 1
        assert (
            value(samples, "runtime_server_connections_total", server=name, outcome="accepted")
            == 1
        )
        assert "process_cpu_seconds_total" in names(samples)  # prometheus-client's own
        held.abort()
        await client.aclose()
        del rx
        nursery.cancel_scope.cancel()


async def test_an_unnamed_channel_is_not_tracked_and_a_dropped_one_leaves() -> None:
    def channels(rt: runtime.Runtime) -> set[str]:
        return {dict(k[1])["channel"] for k in scrape(rt) if k[0] == "runtime_channel_buffered"}

    async with open_runtime() as rt:
        gc.collect()
        before = channels(rt)
        with mpsc.channel[int](2)[0]:
            assert channels(rt) == before
        tx2, rx2 = mpsc.channel[int](2, name="short-lived")
        assert channels(rt) == before | {"short-lived"}
        tx2.close()
        rx2.close()
        del tx2, rx2
        gc.collect()
        assert channels(rt) == before
        with pytest.raises(ValueError, match="non-empty"):
            mpsc.channel[int](2, name="")


async def test_metrics_layer_counts_requests_errors_and_times_them(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def slow(n: int) -> int:
        await runtime.time.sleep(0.2)
        if n < 0:
            raise ValueError("negative")
        return n

    async with open_runtime() as rt:
        svc = ServiceBuilder().layer(MetricsLayer("users")).service(service_fn(slow))
        assert await svc(1) == 1
        with pytest.raises(ValueError):
            await svc(-1)
        async with svc.ready() as call:
            assert await call(2) == 2
        samples = scrape(rt)
        assert value(samples, "runtime_service_requests_total", service="users") == 3
        assert value(samples, "runtime_service_errors_total", service="users") == 1
        count = "runtime_service_request_duration_seconds_count"
        assert value(samples, count, service="users") == 3
        bucket = "runtime_service_request_duration_seconds_bucket"
        assert value(samples, bucket, service="users", le="0.1") == 0
        assert value(samples, bucket, service="users", le="0.25") == 3
        total = value(samples, "runtime_service_request_duration_seconds_sum", service="users")
        assert math.isclose(total, 0.6, rel_tol=0.05)


async def test_the_http_server_labels_requests_by_route_template_not_path() -> None:
    router = Router()

    @router.get("/items/{id:int}")
    async def item(request: Request) -> Response:
        return Response.json({"id": request.extensions["path_params"]["id"]})

    @router.get("/boom")
    async def boom(request: Request) -> Response:
        raise RuntimeError("boom")

    api = Router()
    api.mount("/api", router)
    async with open_runtime() as rt, trio.open_nursery() as nursery:
        listener = MemoryListener()
        await nursery.start(HttpServer(api, [listener]).serve)

        async with Client(connector=_Connector(listener)) as client:
            for n in range(5):
                assert (await client.get(f"http://x/api/items/{n}")).status == 200
            assert (await client.get("http://x/api/boom")).status == 500
            assert (await client.get("http://x/nothing/here/1")).status == 404
            assert (await client.request("BREW", "http://x/api/items/1")).status == 405
        samples = scrape(rt)
        route = "/api/items/{id:int}"
        requests = "runtime_http_requests_total"
        assert (
            value(samples, requests, server="http", route=route, method="GET", status="200") == 5
        )
        assert (
            value(samples, requests, server="http", route="/api/boom", method="GET", status="500")
            == 1
        )
        assert (
            value(
                samples, requests, server="http", route="<unmatched>", method="GET", status="404"
            )
            == 1
        )
        assert (
            value(
                samples, requests, server="http", route="<unmatched>", method="OTHER", status="405"
            )
            == 1
        )
        routes = {dict(labels).get("route") for name, labels in samples if name == requests}
        assert routes == {route, "/api/boom", "<unmatched>"}  # no raw path ever becomes a label
        count = "runtime_http_request_duration_seconds_count"
        assert value(samples, count, server="http", route=route) == 5
        nursery.cancel_scope.cancel()


class _Connector:
    def __init__(self, listener: MemoryListener) -> None:
        self.listener = listener

    async def connect(self, host: str, port: int) -> runtime.net.Connection:
        return await self.listener.connect()


async def test_a_malformed_request_is_counted_as_invalid() -> None:
    async with open_runtime() as rt, trio.open_nursery() as nursery:
        listener = MemoryListener()
        await nursery.start(HttpServer(Router(), [listener]).serve)
        connection = await listener.connect()
        await connection.send_all(b"GET / HTTP/1.1\r\nBad Header\r\n\r\n")
        reply = b""
        while chunk := await connection.receive_some():
            reply += chunk
        assert reply.startswith(b"HTTP/1.1 400 ")
        samples = scrape(rt)
        key = (
            "runtime_http_requests_total",
            frozenset(
                {
                    ("server", "http"),
                    ("route", "<invalid>"),
                    ("method", "OTHER"),
                    ("status", "400"),
                }
            ),
        )
        assert samples[key] == 1
        nursery.cancel_scope.cancel()
