"""The admin endpoint, over real TCP: metrics, health, the task tree and stacks, and staying
up through a drain until the other servers are done."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio
import trio.testing
from prometheus_client.parser import text_string_to_metric_families

import runtime
from runtime.admin import AdminServer, serve_admin
from runtime.http import Client, HttpServer, Request, Response, Router
from runtime.net import TcpListener
from runtime.rt import open_runtime


@asynccontextmanager
async def admin_and_app(*, ready: bool = False) -> AsyncIterator[tuple[AdminServer, int]]:
    """A runtime with an HTTP app (a route that waits for a release) and the admin."""
    async with open_runtime() as rt, trio.open_nursery() as nursery:
        router = Router()

        @router.get("/hello/{name}")
        async def hello(request: Request) -> Response:
            return Response.text(f"hi {request.extensions['path_params']['name']}\n")

        listener = TcpListener.bind("127.0.0.1", 0)
        await nursery.start(HttpServer(router, [listener]).serve)
        admin = await nursery.start(serve_admin, "127.0.0.1", 0)
        if ready:
            admin.set_ready()
        yield admin, listener.port
        rt.shutdown()


async def get(client: Client, url: str) -> tuple[int, str, str]:
    response = await client.get(url)
    body = bytes(response.body).decode()
    return response.status, response.headers.get("content-type") or "", body


async def test_metrics_are_prometheus_text_with_every_family() -> None:
    with trio.fail_after(10):
        async with admin_and_app() as (admin, port), Client() as client:
            for name in ("a", "b", "c"):
                assert (await get(client, f"http://127.0.0.1:{port}/hello/{name}"))[0] == 200
            status, content_type, text = await get(client, f"{admin.url}/metrics")
    assert status == 200
    assert content_type.startswith("text/plain; version=0.0.4")
    families = {f.name: f for f in text_string_to_metric_families(text)}
    for name in (
        "runtime_tasks_alive",
        "runtime_tasks_spawned",
        "runtime_tasks_ended",
        "runtime_timers_pending",
        "runtime_timer_lag_seconds",
        "runtime_reactor_registered_fds",
        "runtime_reactor_events_per_wakeup",
        "runtime_server_connections_active",
        "runtime_server_connections",
        "runtime_http_requests",
        "runtime_http_request_duration_seconds",
    ):
        assert name in families, name
    hello = [
        s
        for s in families["runtime_http_requests"].samples
        if s.labels.get("route") == "/hello/{name}" and s.name.endswith("_total")
    ]
    assert [(s.labels["server"], s.labels["status"], s.value) for s in hello] == [
        ("http", "200", 3.0)
    ]
    servers = {s.labels["server"] for s in families["runtime_server_connections_active"].samples}
    assert servers == {"http", "admin"}


async def test_openmetrics_when_the_scraper_asks() -> None:
    with trio.fail_after(10):
        async with admin_and_app() as (admin, _), Client() as client:
            accept = [("accept", "application/openmetrics-text; version=1.0.0")]
            response = await client.get(f"{admin.url}/metrics", headers=accept)
            text = bytes(response.body).decode()
    assert response.headers.get("content-type", "").startswith("application/openmetrics-text")
    assert text.rstrip().endswith("# EOF")


async def test_live_and_ready_follow_the_app_and_the_shutdown() -> None:
    with trio.fail_after(10):
        async with admin_and_app() as (admin, _), Client() as client:
            assert await get(client, f"{admin.url}/live") == (
                200,
                "text/plain; charset=utf-8",
                "ok\n",
            )
            assert (await get(client, f"{admin.url}/ready"))[::2] == (503, "not ready\n")
            admin.set_ready()
            assert (await get(client, f"{admin.url}/ready"))[::2] == (200, "ready\n")
            admin.set_ready(False)
            assert (await get(client, f"{admin.url}/ready"))[::2] == (503, "not ready\n")


async def tasks(client: Client, admin: AdminServer) -> dict[str, Any]:
    status, content_type, body = await get(client, f"{admin.url}/tasks")
    assert (status, content_type) == (200, "application/json")
    result: dict[str, Any] = json.loads(body)
    return result


async def test_tasks_is_a_consistent_tree_with_connections_under_their_server() -> None:
    with trio.fail_after(10):
        async with admin_and_app() as (admin, port):
            held = [await trio.open_tcp_stream("127.0.0.1", port) for _ in range(3)]
            async with Client() as client:
                await trio.testing.wait_all_tasks_blocked()
                tree = await tasks(client, admin)
                nodes = tree["tasks"]
                by_id = {n["id"]: n for n in nodes}
                assert len(by_id) == len(nodes)
                assert nodes[0]["kind"] == "root" and nodes[0]["parent"] is None
                seen: set[int] = set()
                for node in nodes:
                    assert node["parent"] is None or node["parent"] in seen  # parents first
                    seen.add(node["id"])
                app_connections = [
                    n
                    for n in nodes
                    if n["kind"] == "connection" and n["detail"].startswith("http:")
                ]
                assert len(app_connections) == 3
                (server_id,) = {n["parent"] for n in app_connections}
                assert by_id[server_id]["name"] == "runtime.http._server.HttpServer.serve"
                assert tree["runtime"]["shutting_down"] is False
                assert isinstance(tree["pid"], int)
                # the admin's own connection (this request) is there too, under its server
                assert any(
                    n["detail"].startswith("admin:") for n in nodes if n["kind"] == "connection"
                )

                one = app_connections[0]["id"]
                status, _, body = await get(client, f"{admin.url}/tasks/{one}/stack")
                assert status == 200
                stack = json.loads(body)
                assert stack["id"] == one and stack["name"] == "connection"
                functions = [f["function"] for f in stack["frames"]]
                assert functions[0] == "Server._connection"
                assert all(
                    {"file", "line", "function", "code"} <= f.keys() for f in stack["frames"]
                )
                status, _, body = await get(client, f"{admin.url}/tasks/999999999/stack")
                assert (status, json.loads(body)) == (404, {"error": "no live task 999999999"})
            for stream in held:
                await stream.aclose()


async def test_a_joinset_shows_under_its_owner() -> None:
    release = trio.Event()

    async def member() -> None:
        await release.wait()

    async def owner() -> None:
        async with runtime.JoinSet[None]() as members:
            members.spawn(member, name="member")
            members.spawn(member, name="member")
            await members.join_all()

    with trio.fail_after(10):
        async with admin_and_app() as (admin, _), Client() as client:
            handle = runtime.spawn(owner, name="owner")
            await trio.testing.wait_all_tasks_blocked()
            nodes = (await tasks(client, admin))["tasks"]
            (own,) = [n for n in nodes if n["name"] == "owner"]
            members = [n for n in nodes if n["name"] == "member"]
            assert own["id"] == handle.id and own["kind"] == "task"
            assert [(m["kind"], m["parent"]) for m in members] == [("joinset", own["id"])] * 2
            release.set()
            await handle


async def test_ready_says_draining_until_the_other_servers_are_done() -> None:
    entered, release = trio.Event(), trio.Event()
    router = Router()

    @router.get("/slow")
    async def slow(request: Request) -> Response:
        entered.set()
        await release.wait()
        return Response.text("done\n")

    with trio.fail_after(10):
        async with open_runtime() as rt, trio.open_nursery() as nursery:
            listener = TcpListener.bind("127.0.0.1", 0)
            await nursery.start(HttpServer(router, [listener]).serve)
            admin = await nursery.start(serve_admin, "127.0.0.1", 0)
            admin.set_ready()
            async with Client() as client, trio.open_nursery() as requests:
                got: list[int] = []

                async def call_slow() -> None:
                    got.append((await client.get(f"http://127.0.0.1:{listener.port}/slow")).status)

                requests.start_soon(call_slow)
                await entered.wait()
                rt.shutdown()
                # the app server drains (its slow request in flight); the admin still answers
                assert (await get(client, f"{admin.url}/ready"))[::2] == (503, "draining\n")
                assert (await get(client, f"{admin.url}/live"))[0] == 200
                release.set()
            assert got == [200]
        # the nursery ended: the admin server stopped by itself once the app server drained


async def test_serve_admin_needs_a_runtime() -> None:
    with pytest.raises(runtime.NoRuntimeError):
        await serve_admin()
