"""An echo server on the runtime: every byte a client sends comes back.

Run it:
    python examples/echo_server.py --port 7000
    python examples/echo_server.py --port 7000 --workers 2     # one process per core
    python examples/echo_server.py --port 7000 --ssl-certfile server.pem --ssl-keyfile server.key

It prints ``listening on tcp://HOST:PORT`` when ready, or ``listening on tls://HOST:PORT``
with a certificate. SIGINT or SIGTERM drains: the server stops accepting, each connection
finishes echoing what it has read, and the process exits 0.
"""

from __future__ import annotations

import argparse
import logging
import os
import ssl
import sys

import runtime
from runtime.net import (
    Connection,
    ServerConfig,
    TcpListener,
    python_worker_argv,
    run_workers,
    serve,
    server_ssl_context,
)


async def echo(stream: Connection) -> None:
    """Echo until the client closes.

    Nothing here knows about shutdown: when the server drains, it ends every connection's
    input, so ``receive_some`` returns what was already received and then ``b""``, and this
    loop finishes as if the client had closed. Nothing that was read goes unanswered.
    """
    while data := await stream.receive_some():
        await stream.send_all(data)


async def echo_with_banner(stream: Connection) -> None:
    """Say which process serves this connection first (used to test --workers)."""
    await stream.send_all(b"hello from pid %d\n" % os.getpid())
    await echo(stream)


async def main(args: argparse.Namespace, tls: ssl.SSLContext | None = None) -> None:
    listener = TcpListener.bind(args.host, args.port, reuse_port=args.reuse_port)
    host = f"[{args.host}]" if ":" in args.host else args.host
    scheme = "tls" if tls is not None else "tcp"
    print(f"listening on {scheme}://{host}:{listener.port}", flush=True)
    config = ServerConfig(
        max_connections=args.max_connections, idle_timeout=args.idle_timeout, name="echo"
    )
    await serve(echo_with_banner if args.banner else echo, [listener], config=config, tls=tls)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Echo server on trio-runtime.")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=0, help="port; 0 picks a free one (default)")
    p.add_argument("--workers", type=int, default=1, help="processes sharing the port")
    p.add_argument("--max-connections", type=int, default=10_000)
    p.add_argument("--idle-timeout", type=float, default=60.0)
    p.add_argument("--grace", type=float, default=10.0, help="seconds to drain on shutdown")
    p.add_argument("--banner", action="store_true", help="greet with the serving pid")
    p.add_argument("--ssl-certfile", help="serve TLS with this certificate chain (PEM)")
    p.add_argument("--ssl-keyfile", help="its private key, if not in the certfile")
    p.add_argument("--reuse-port", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.ssl_keyfile and not args.ssl_certfile:
        p.error("--ssl-keyfile needs --ssl-certfile")
    return args


def tls_context(args: argparse.Namespace) -> ssl.SSLContext | None:
    """The server's TLS context from ``--ssl-certfile``/``--ssl-keyfile``, or None for TCP."""
    if args.ssl_certfile is None:
        return None
    return server_ssl_context(args.ssl_certfile, args.ssl_keyfile)


if __name__ == "__main__":
    args = parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        tls = tls_context(args)  # loaded here too with --workers: a bad file fails at once
    except OSError as exc:  # ssl.SSLError is an OSError
        print(f"error: cannot load the certificate: {exc}", file=sys.stderr)
        sys.exit(1)
    if args.workers > 1:
        extra = ["--banner"] if args.banner else []
        if args.ssl_certfile:
            extra += ["--ssl-certfile", os.path.abspath(args.ssl_certfile)]
        if args.ssl_keyfile:
            extra += ["--ssl-keyfile", os.path.abspath(args.ssl_keyfile)]
        extra += ["--host", args.host, "--grace", str(args.grace)]
        extra += ["--max-connections", str(args.max_connections)]
        extra += ["--idle-timeout", str(args.idle_timeout)]
        worker = python_worker_argv(os.path.abspath(__file__), *extra)
        sys.exit(
            run_workers(
                worker,
                workers=args.workers,
                host=args.host,
                port=args.port,
                grace=args.grace,
                scheme="tls" if tls is not None else "tcp",
            )
        )
    try:
        runtime.run(main, args, tls, config=runtime.RuntimeConfig(shutdown_grace=args.grace))
    except OSError as exc:
        print(f"error: cannot serve on {args.host}:{args.port}: {exc}", file=sys.stderr)
        sys.exit(1)
