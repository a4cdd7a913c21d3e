"""``python -m runtime serve module:app``: run an ASGI app on the runtime's HTTP server.

The options follow uvicorn's names where uvicorn has the concept (``--host``, ``--port``,
``--uds``, ``--workers``, ``--root-path``, ``--proxy-headers``, ``--forwarded-allow-ips``,
``--ssl-certfile``, ``--ssl-keyfile``, ``--access-log``, ``--http``, ``--lifespan``,
``--limit-concurrency``, ``--timeout-keep-alive``, ``--timeout-graceful-shutdown``,
``--backlog``, ``--ws-max-size``...), so a uvicorn command line mostly works as it is; the
limits of :class:`~runtime.http.HttpConfig` have options of their own.

The sequence: import the app, bind the listener (a port that can't be bound fails before the
app starts), run the lifespan startup (a failure exits 3 with the app's message on stderr,
as uvicorn does), print ``listening on http://HOST:PORT`` (``https://`` with TLS, ``unix:PATH``
for ``--uds``), serve until SIGINT or SIGTERM, drain (requests in flight finish), run the
lifespan shutdown, exit 0. With ``--workers N`` the process is a supervisor
(:func:`runtime.net.run_workers`) of N such processes sharing the port with ``SO_REUSEPORT``.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import logging
import os
import ssl
import sys
from typing import Any

import trio

from .http import (
    AsgiConfig,
    HttpConfig,
    LifespanFailed,
    OverloadResponse,
    Request,
    Response,
    WebSocketConfig,
    serve_asgi,
)
from .service import Service, ServiceBuilder

logger = logging.getLogger("runtime.serve")

_DEFAULTS = HttpConfig()
_WS_DEFAULTS = WebSocketConfig()
STARTUP_FAILED = 3  # uvicorn's exit code for a failed lifespan startup


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The ``serve`` command's options (uvicorn's names where uvicorn has the concept)."""
    p.add_argument("app", help="the ASGI app to serve, as module:attribute (e.g. main:app)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 picks one)")
    p.add_argument("--uds", default=None, help="serve on this Unix socket path instead")
    p.add_argument("--workers", type=int, default=1, help="processes sharing the port")
    p.add_argument("--app-dir", default=".", help="put this directory on sys.path (default .)")
    p.add_argument(
        "--factory", action="store_true", help="the attribute is a factory: call it for the app"
    )
    p.add_argument("--root-path", default="", help="the ASGI root_path (a proxy's prefix)")
    p.add_argument("--log-level", default="info", help="logging level (default info)")
    p.add_argument(
        "--access-log",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="log a line per request on runtime.http.asgi.access (default on)",
    )
    p.add_argument(
        "--proxy-headers",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="trust X-Forwarded-For/-Proto from --forwarded-allow-ips (default on)",
    )
    p.add_argument(
        "--forwarded-allow-ips",
        default=os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1"),
        help="comma-separated IPs or networks trusted for proxy headers; * for any",
    )
    p.add_argument("--ssl-certfile", default=None, help="serve HTTPS with this certificate")
    p.add_argument("--ssl-keyfile", default=None, help="the certificate's private key")
    p.add_argument(
        "--lifespan",
        choices=("auto", "on", "off"),
        default="auto",
        help="run the lifespan protocol (default auto: if the app supports it)",
    )
    p.add_argument(
        "--http",
        choices=("auto", "h11", "httptools"),
        default="auto",
        help="request parser (default auto: httptools when installed, else h11)",
    )
    p.add_argument("--backlog", type=int, default=2048, help="listen queue (default 2048)")
    p.add_argument(
        "--limit-concurrency",
        type=int,
        default=None,
        help="requests the app runs at once; more get 503 at once (default no limit)",
    )
    p.add_argument(
        "--timeout-keep-alive",
        type=float,
        default=_DEFAULTS.keep_alive_timeout,
        help="seconds an idle keep-alive connection is kept "
        f"(default {_DEFAULTS.keep_alive_timeout:g})",
    )
    p.add_argument(
        "--timeout-graceful-shutdown",
        type=float,
        default=10.0,
        help="seconds requests in flight get at a shutdown (default 10)",
    )
    p.add_argument(
        "--request-timeout",
        type=float,
        default=_DEFAULTS.request_timeout,
        help="seconds the app may take to start its response; then 503 (default 60; 0: none)",
    )
    for name, help_text in (
        ("max_header_bytes", "bytes of a request head (431 above)"),
        ("max_header_count", "header fields of a request (431 above)"),
        ("max_target_length", "bytes of a request-target (414 above)"),
        ("max_body_bytes", "bytes of a request body (413 above)"),
        ("max_connections", "connections served at once"),
        ("max_requests_per_connection", "requests per keep-alive connection"),
    ):
        default = getattr(_DEFAULTS, name)
        p.add_argument(
            "--" + name.replace("_", "-"),
            type=int,
            default=default,
            help=f"{help_text} (default {default})",
        )
    for name, help_text in (
        ("header_timeout", "seconds from a request's first byte to its last header (408)"),
        ("body_timeout", "seconds a request body may go without a byte (408)"),
        ("send_timeout", "seconds a response write may go without progress"),
    ):
        default = getattr(_DEFAULTS, name)
        p.add_argument(
            "--" + name.replace("_", "-"),
            type=float,
            default=default,
            help=f"{help_text} (default {default:g})",
        )
    p.add_argument(
        "--ws-max-size",
        type=int,
        default=_WS_DEFAULTS.max_message_size,
        help=f"bytes of a WebSocket message (default {_WS_DEFAULTS.max_message_size})",
    )
    p.add_argument(
        "--ws-ping-interval",
        type=float,
        default=_WS_DEFAULTS.ping_interval,
        help=f"seconds between WebSocket pings (default {_WS_DEFAULTS.ping_interval:g})",
    )
    p.add_argument(
        "--ws-ping-timeout",
        type=float,
        default=_WS_DEFAULTS.ping_timeout,
        help=f"seconds a ping waits for its pong (default {_WS_DEFAULTS.ping_timeout:g})",
    )
    p.add_argument(
        "--admin",
        default=None,
        metavar="HOST:PORT",
        help="serve the admin endpoint (/metrics, /tasks, /ready) there (one worker only)",
    )
    p.add_argument("--reuse-port", action="store_true", help=argparse.SUPPRESS)


class AppImportError(Exception):
    """The ``module:attribute`` can't be imported or is not there."""


def import_app(spec: str, *, factory: bool = False, app_dir: str = ".") -> Any:
    """The object ``spec`` (``module:attribute``, dots allowed in both) names.

    Raises:
        AppImportError: a malformed spec, a module that can't be imported, a missing
            attribute; the message says which.
    """
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise AppImportError(f'"{spec}": give the app as "module:attribute", e.g. "main:app"')
    if app_dir:
        sys.path.insert(0, os.path.abspath(app_dir))
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        if exc.name != module_name:
            raise  # the module was found, and an import inside it failed: show that
        raise AppImportError(f'could not import module "{module_name}": {exc}') from None
    for part in attribute.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise AppImportError(
                f'attribute "{attribute}" not found in module "{module_name}"'
            ) from None
    if factory:
        obj = obj()
    return obj


def _http_config(args: argparse.Namespace) -> HttpConfig:
    return HttpConfig(
        max_header_bytes=args.max_header_bytes,
        max_header_count=args.max_header_count,
        max_target_length=args.max_target_length,
        max_body_bytes=args.max_body_bytes,
        header_timeout=args.header_timeout,
        body_timeout=args.body_timeout,
        keep_alive_timeout=args.timeout_keep_alive,
        send_timeout=args.send_timeout,
        max_requests_per_connection=args.max_requests_per_connection,
        request_timeout=args.request_timeout or None,
        max_connections=args.max_connections,
        parser=args.http,
        name="asgi",
    )


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _wrap(limit: int | None) -> Any:
    """The layers from the options: ``--limit-concurrency`` sheds the excess as 503."""
    if limit is None:
        return None

    def wrap(service: Service[Request, Response]) -> Service[Request, Response]:
        builder = ServiceBuilder().layer(OverloadResponse()).load_shed().concurrency_limit(limit)
        return builder.service(service)

    return wrap


async def serve_main(args: argparse.Namespace, app: Any, tls: ssl.SSLContext | None) -> int:
    """Bind, start the app, print the listening line, serve until the runtime shuts down."""
    from .net import TcpListener, UnixListener

    scheme = "https" if tls is not None else "http"
    listener: Any
    if args.uds:
        listener = UnixListener.bind(args.uds, backlog=args.backlog)
        server_item: tuple[str, int | None] = (args.uds, None)
        where = f"unix:{args.uds}"
    else:
        listener = TcpListener.bind(
            args.host, args.port, backlog=args.backlog, reuse_port=args.reuse_port
        )
        server_item = (args.host, listener.port)
        where = f"{scheme}://{_url_host(args.host)}:{listener.port}"
    asgi = AsgiConfig(
        root_path=args.root_path,
        lifespan=args.lifespan,
        proxy_headers=args.proxy_headers,
        forwarded_allow_ips=args.forwarded_allow_ips,
        access_log=args.access_log,
        server=server_item,
        websocket=WebSocketConfig(
            max_message_size=args.ws_max_size,
            ping_interval=args.ws_ping_interval,
            ping_timeout=args.ws_ping_timeout,
        ),
        shutdown_timeout=args.timeout_graceful_shutdown,
    )
    async with trio.open_nursery() as nursery:
        admin = None
        if args.admin:
            from .admin import serve_admin

            host, _, port = args.admin.rpartition(":")
            admin_at = functools.partial(serve_admin, host or "127.0.0.1", int(port))
            admin = await nursery.start(admin_at)
            print(f"admin on {admin.url}", flush=True)
        try:
            await nursery.start(
                functools.partial(
                    serve_asgi,
                    app,
                    [listener],
                    config=_http_config(args),
                    asgi=asgi,
                    tls=tls,
                    wrap=_wrap(args.limit_concurrency),
                )
            )
        except LifespanFailed as exc:
            print(f"error: lifespan startup failed: {exc.message}", file=sys.stderr, flush=True)
            nursery.cancel_scope.cancel()
            return STARTUP_FAILED
        print(f"listening on {where}", flush=True)
        if admin is not None:
            admin.set_ready()
    return 0


def _worker_argv(argv: list[str]) -> Any:
    def worker(index: int, port: int) -> list[str]:
        return [
            sys.executable,
            "-m",
            "runtime",
            *argv,
            "--workers",
            "1",
            "--port",
            str(port),
            "--reuse-port",
        ]

    return worker


def run_serve(args: argparse.Namespace, argv: list[str]) -> int:
    """``python -m runtime serve ...``: the process's exit code.

    Args:
        args: The parsed options.
        argv: The command line after the program name (worker processes get it again).
    """
    from .net import run_workers
    from .rt import RuntimeConfig, run

    if args.workers < 1:
        print("error: --workers must be at least 1", file=sys.stderr)
        return 2
    if args.ssl_keyfile and not args.ssl_certfile:
        print("error: --ssl-keyfile needs --ssl-certfile", file=sys.stderr)
        return 2
    if args.workers > 1:
        if args.uds or args.admin:
            print("error: --workers > 1 serves TCP only, without --admin", file=sys.stderr)
            return 2
        scheme = "https" if args.ssl_certfile else "http"
        return run_workers(
            _worker_argv(argv),
            workers=args.workers,
            host=args.host,
            port=args.port,
            grace=args.timeout_graceful_shutdown,
            scheme=scheme,
        )
    tls = None
    if args.ssl_certfile:
        from .net import server_ssl_context

        try:
            tls = server_ssl_context(args.ssl_certfile, args.ssl_keyfile)
        except (OSError, ssl.SSLError) as exc:
            print(f"error: cannot load the certificate: {exc}", file=sys.stderr)
            return 1
    try:
        app = import_app(args.app, factory=args.factory, app_dir=args.app_dir)
    except AppImportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        return run(
            serve_main,
            args,
            app,
            tls,
            config=RuntimeConfig(shutdown_grace=args.timeout_graceful_shutdown + 5),
        )
    except OSError as exc:
        where = args.uds or f"{args.host}:{args.port}"
        print(f"error: cannot serve on {where}: {exc}", file=sys.stderr)
        return 1


__all__ = ["AppImportError", "add_arguments", "import_app", "run_serve", "serve_main"]
