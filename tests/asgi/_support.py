"""Helpers the ASGI tests share: the raw-bytes client of the HTTP server's tests, and an ASGI
app served on a MemoryListener or on a real loopback socket.

The raw client (``exchange``, ``parse_responses``, ``only_error``) is the HTTP issue's, loaded
from ``tests/http/test_server.py`` so that both suites read responses the same way.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import trio

from runtime.http import AsgiConfig, AsgiService, HttpConfig, HttpServer, serve_asgi
from runtime.net import TcpListener
from runtime.testing import MemoryListener


def _load(name: str, path: Path) -> Any:
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


_http = _load("_asgi_tests_http_server", Path(__file__).parent.parent / "http" / "test_server.py")
Parsed = _http.Parsed
parse_responses = _http.parse_responses
exchange = _http.exchange
only_error = _http.only_error
GET: bytes = _http.GET
CLOSE: bytes = _http.CLOSE
BAD_REQUESTS: dict[str, tuple[bytes, int]] = _http.BAD_REQUESTS
task_count = _http._task_count


@asynccontextmanager
async def served(
    app: Any,
    config: HttpConfig | None = None,
    asgi: AsgiConfig | None = None,
    *,
    wrap: Any = None,
) -> AsyncIterator[tuple[MemoryListener, HttpServer]]:
    """``app`` behind ``serve_asgi`` on a MemoryListener; drained (lifespan shutdown) on exit."""
    listener = MemoryListener()
    async with trio.open_nursery() as nursery:
        server: HttpServer = await nursery.start(
            lambda task_status: serve_asgi(
                app, [listener], config=config, asgi=asgi, wrap=wrap, task_status=task_status
            )
        )
        yield listener, server
        server.drain()


@asynccontextmanager
async def on_loopback(
    app: Any, config: HttpConfig | None = None, asgi: AsgiConfig | None = None
) -> AsyncIterator[str]:
    """``app`` served on 127.0.0.1 (a free port); yields its base URL; drained on exit."""
    listener = TcpListener.bind("127.0.0.1", 0)
    port = listener.port
    asgi = asgi or AsgiConfig(server=("127.0.0.1", port))
    async with trio.open_nursery() as nursery:
        server: HttpServer = await nursery.start(
            lambda task_status: serve_asgi(
                app, [listener], config=config, asgi=asgi, task_status=task_status
            )
        )
        yield f"http://127.0.0.1:{port}"
        server.drain()


__all__ = [
    "BAD_REQUESTS",
    "CLOSE",
    "GET",
    "AsgiService",
    "Parsed",
    "exchange",
    "on_loopback",
    "only_error",
    "parse_responses",
    "served",
    "task_count",
]
