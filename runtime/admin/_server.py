"""The admin server: metrics, health and the task tree of the process it runs in.

It is an ordinary app on the project's own HTTP server, on a port of its own (loopback by
default: ``/tasks`` shows code paths and peers' addresses, which the public must not see).

**Through a shutdown** the admin port keeps answering, so an orchestrator sees ``/ready``
turn 503 while the other servers drain instead of a refused connection. It stops once no
other server of the process is serving any more (or at the runtime's final cancel).
"""

from __future__ import annotations

import importlib
import ipaddress
import logging
import os
from collections.abc import Sequence
from typing import Any

import attrs
import trio
from prometheus_client.exposition import choose_encoder

from ..http import Handler, HttpConfig, HttpServer, Request, Response, Router
from ..metrics import registry
from ..net import Network, TcpListener, servers
from ..rt import Runtime, current
from ..time import sleep

logger = logging.getLogger("runtime.admin")

_LAST_SERVER_POLL = 0.05  # seconds between looks at whether the other servers have drained


class AdminServer:
    """The admin endpoint of one runtime, as :func:`serve_admin` reports it when started.

    Attributes:
        host: The address it listens on.
        port: Its port (the one picked, if 0 was asked for).
        url: ``http://host:port``.
        http: The HTTP server under it.
    """

    def __init__(self, rt: Runtime, host: str, port: int, *, ready: bool) -> None:
        self._rt = rt
        self._ready = ready
        self.host = host
        self.port = port
        self.url = f"http://{_url_host(host)}:{port}"
        self.http: HttpServer | None = None

    @property
    def ready(self) -> bool:
        """Whether the app said it is ready (``/ready`` also needs the runtime not draining)."""
        return self._ready

    def set_ready(self, ready: bool = True) -> None:
        """Say the application is ready for traffic (or, with False, that it is not)."""
        self._ready = ready

    def router(self) -> Router:
        """The admin routes: ``/``, ``/metrics``, ``/live``, ``/ready``, ``/tasks``,
        ``/tasks/{id}/stack``."""
        router = Router()
        router.get("/")(self._page)
        router.get("/metrics")(self._metrics)
        router.get("/live")(self._live)
        router.get("/ready")(self._ready_check)
        router.get("/tasks")(self._tasks)
        router.get("/tasks/{id:int}/stack")(self._stack)
        return router

    async def _page(self, request: Request) -> Response:
        page = importlib.import_module("._page", __package__)  # big: loaded on first visit
        return Response.bytes(
            page.render_page().encode(),
            content_type="text/html; charset=utf-8",
            headers=[("cache-control", "no-store")],
        )

    async def _metrics(self, request: Request) -> Response:
        encoder, content_type = choose_encoder(request.headers.get("accept") or "")
        return Response.bytes(encoder(registry(self._rt)), content_type=content_type)

    async def _live(self, request: Request) -> Response:
        return Response.text("ok\n")

    async def _ready_check(self, request: Request) -> Response:
        if self._rt.is_shutting_down:
            return Response.text("draining\n", 503)
        if not self._ready:
            return Response.text("not ready\n", 503)
        return Response.text("ready\n")

    async def _tasks(self, request: Request) -> Response:
        stats = self._rt.statistics()
        body: dict[str, Any] = {
            "pid": os.getpid(),
            "now": trio.current_time(),
            "runtime": attrs.asdict(stats),
            "tasks": [attrs.asdict(node) for node in self._rt.task_tree()],
        }
        return Response.json(body, headers=[("cache-control", "no-store")])

    async def _stack(self, request: Request) -> Response:
        task_id: int = request.extensions["path_params"]["id"]
        frames = self._rt.task_stack(task_id)
        if frames is None:
            return Response.json({"error": f"no live task {task_id}"}, 404)
        name = next((n.name for n in self._rt.task_tree() if n.id == task_id), "")
        return Response.json(
            {"id": task_id, "name": name, "frames": [attrs.asdict(f) for f in frames]}
        )

    async def _stay_through_the_drain(self) -> None:
        """Once the runtime shuts down, drain the admin server after every other server."""
        rt = self._rt
        await rt.shutdown_requested()
        http = self.http
        assert http is not None
        while any(server is not http.server for server in servers(rt)):
            await sleep(_LAST_SERVER_POLL)
        http.drain()


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def serve_admin(
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    ready: bool = False,
    extra_routes: Sequence[tuple[str, Handler]] = (),
    network: Network | None = None,
    task_status: trio.TaskStatus[AdminServer] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the running runtime's admin endpoint on ``host:port`` until the runtime shuts
    down and its other servers have drained.

    Start it beside the application and say when the app is ready::

        admin = await nursery.start(serve_admin)       # 127.0.0.1, a free port
        print(f"admin on {admin.url}")
        ...                                            # open listeners, warm caches
        admin.set_ready()

    Routes: ``/metrics`` (Prometheus text format, or OpenMetrics if the scraper asks),
    ``/live`` (200 while the event loop answers), ``/ready`` (200 once ready; 503 before, and
    503 ``draining`` once a shutdown started), ``/tasks`` (the task tree as JSON),
    ``/tasks/{id}/stack`` (one task's await stack), ``/`` (an HTML view of the tree).

    Args:
        host: Address to listen on. Loopback by default; anything else is logged as a
            warning, since ``/tasks`` shows code paths and peers' addresses.
        port: Port; 0 picks a free one (see :attr:`AdminServer.port`).
        ready: Start ready (for an app with nothing to warm up).
        extra_routes: More ``GET`` routes of the application's own, as ``(pattern,
            handler)`` pairs (the proxy adds ``/config``).
        network: Where to listen (default: this machine's TCP); a simulated host in tests.
        task_status: Reports the :class:`AdminServer` once it accepts connections.

    Raises:
        OSError: the address can't be bound.
        NoRuntimeError: no runtime is running here.
    """
    rt = current()
    listener = TcpListener.bind(host, port) if network is None else network.bind(host, port)
    admin = AdminServer(rt, host, listener.port, ready=ready)
    if not _is_loopback(host):
        logger.warning(
            "admin endpoint on %s, not loopback: /tasks shows code and peers; firewall it",
            admin.url,
        )
    router = admin.router()
    for pattern, handler in extra_routes:
        router.get(pattern)(handler)
    http = admin.http = HttpServer(
        router,
        [listener],
        HttpConfig(name="admin", drain_on_shutdown=False, request_timeout=10.0),
    )
    async with trio.open_nursery() as nursery:

        async def serve_then_stop(*, task_status: trio.TaskStatus[HttpServer]) -> None:
            await http.serve(task_status=task_status)  # drained, every request answered
            nursery.cancel_scope.cancel()  # and the drain watcher is done too

        await nursery.start(serve_then_stop)
        nursery.start_soon(admin._stay_through_the_drain)
        task_status.started(admin)
