"""The demo apps behind ``python -m runtime demo``: the echo, chat and HTTP examples together.

Three servers, each on its own port (``--port``, ``--chat-port``, ``--http-port``; 0 picks
one), the admin endpoint on a fourth (``--admin-port``), and six lines, in this order::

    listening on tcp://127.0.0.1:PORT          (echo)
    also serving chat on tcp://127.0.0.1:PORT
    also serving http on http://127.0.0.1:PORT
    also serving ws-chat on http://127.0.0.1:PORT/chat   (the HTTP port)
    admin on http://127.0.0.1:PORT             (/metrics, /ready, /tasks, the tree at /)
      watch it live: python -m runtime top --admin 127.0.0.1:PORT

The HTTP server answers ``GET /`` with ``Hello, world!`` (``examples/http_hello.py``) and
serves the JSON API of ``examples/json_api.py`` mounted under ``/api``: ``GET /api/items``,
``POST /api/items``, ``GET``/``PUT``/``DELETE /api/items/{id}``. Mounting keeps the two apps
apart (the API's routes can't shadow ``/``), and the API builds its ``Location`` headers from
the request's path, so they say ``/api/items/1``. The WebSocket chat of
``examples/ws_chat.py`` is mounted under ``/chat`` on the same port: the page at ``GET /chat``,
the WebSocket at ``/chat/ws``; a drain closes its WebSockets with 1001.

The apps themselves live in ``examples/`` (they are what the tutorial teaches); the demo
imports them as modules: ``runtime._examples`` in an installed wheel, ``examples`` in an
editable checkout. Every server is serving before the first line is printed, so a SIGINT or
SIGTERM that comes at any moment after the lines drains them all: they stop accepting, finish
what each connection has read (HTTP: the request in flight, answered with ``Connection:
close``), close gracefully, and the process exits 0.
"""

from __future__ import annotations

import functools
import importlib
import logging
import sys
from types import ModuleType

import trio

from . import http
from .admin import serve_admin
from .metrics import MetricsLayer
from .net import ServerConfig, TcpListener, serve
from .rt import RuntimeConfig, run
from .service import ServiceBuilder

logger = logging.getLogger("runtime.demo")

_EXAMPLE_PACKAGES = ("runtime._examples", "examples")


def load_example(name: str) -> ModuleType:
    """Import the example ``name`` (``"echo_server"``) as an ordinary module.

    An installed wheel carries the examples as ``runtime._examples`` (see pyproject.toml); a
    source checkout installed with ``pip install -e .`` has the project root on ``sys.path``,
    where they are the ``examples`` package.

    Raises:
        ModuleNotFoundError: neither is installed.
    """
    for package in _EXAMPLE_PACKAGES:
        try:
            return importlib.import_module(f"{package}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name not in (package, f"{package}.{name}"):
                raise  # the example itself failed to import something: say so
    raise ModuleNotFoundError(
        f"example {name!r} not found in {_EXAMPLE_PACKAGES}; install trio-runtime with its "
        "examples (pip install trio-runtime, or pip install -e . in a checkout)"
    )


def _format_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def http_app() -> http.Router:
    """The demo's HTTP app: the hello route at ``/``, the JSON API under ``/api`` and the
    WebSocket chat under ``/chat``. Build it inside the runtime (its MetricsLayer records
    into the runtime's registry)."""
    hello = load_example("http_hello")
    json_api = load_example("json_api")
    ws_chat = load_example("ws_chat")
    router = http.Router()
    # The greeting through a MetricsLayer: runtime_service_requests_total{service="hello"}.
    router.route("GET", "/", ServiceBuilder().layer(MetricsLayer("hello")).service_fn(hello.hello))
    router.mount("/api", json_api.make_app())
    router.mount("/chat", ws_chat.make_app())
    return router


async def serve_demo(
    host: str = "127.0.0.1",
    port: int = 0,
    chat_port: int = 0,
    http_port: int = 0,
    admin_port: int = 0,
) -> None:
    """Serve echo (on ``port``), chat (``chat_port``), HTTP (``http_port``) and the admin
    endpoint (``admin_port``) until the runtime shuts down."""
    echo = load_example("echo_server")
    chat = load_example("chat_server")
    app = http_app()
    echo_listener = TcpListener.bind(host, port)
    chat_listener = TcpListener.bind(host, chat_port)
    http_listener = TcpListener.bind(host, http_port)
    room = chat.ChatRoom()
    async with trio.open_nursery() as nursery:
        # Every server is serving (and will drain on a signal) before the lines go out.
        await nursery.start(
            functools.partial(serve, config=ServerConfig(name="echo")), echo.echo, [echo_listener]
        )
        await nursery.start(
            functools.partial(serve, config=ServerConfig(name="chat", idle_timeout=600)),
            room.handle,
            [chat_listener],
        )
        await nursery.start(
            functools.partial(http.serve, config=http.HttpConfig(name="http")),
            app,
            [http_listener],
        )
        print(f"listening on tcp://{_format_address(host, echo_listener.port)}", flush=True)
        print(
            f"also serving chat on tcp://{_format_address(host, chat_listener.port)}", flush=True
        )
        web = _format_address(host, http_listener.port)
        print(f"also serving http on http://{web}", flush=True)
        print(f"also serving ws-chat on http://{web}/chat", flush=True)
        # The admin port last: it drains after the others, so /ready says 503 meanwhile.
        admin = await nursery.start(serve_admin, host, admin_port)
        where = _format_address(host, admin.port)
        print(f"admin on http://{where}", flush=True)
        print(f"  watch it live: python -m runtime top --admin {where}", flush=True)
        admin.set_ready()


def run_demo(
    host: str,
    port: int,
    *,
    chat_port: int = 0,
    http_port: int = 0,
    admin_port: int = 0,
    grace: float = 10.0,
) -> int:
    """Run the demo until SIGINT/SIGTERM; return the process exit code."""
    try:
        run(
            serve_demo,
            host,
            port,
            chat_port,
            http_port,
            admin_port,
            config=RuntimeConfig(shutdown_grace=grace),
        )
    except OSError as exc:
        print(f"error: cannot serve on {host}:{port}: {exc}", file=sys.stderr)
        return 1
    return 0
