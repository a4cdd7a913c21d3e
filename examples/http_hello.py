"""Hello, world over HTTP/1.1 on the runtime.

Run it:
    python examples/http_hello.py --port 8000
    python examples/http_hello.py --port 8000 --workers 2        # one process per core
    python examples/http_hello.py --port 8000 --parser auto      # httptools when installed

Then ``curl http://127.0.0.1:8000/`` answers ``Hello, world!``. It prints
``listening on http://HOST:PORT`` when ready. SIGINT or SIGTERM drains: the listener closes,
requests in flight finish (with ``Connection: close``), and the process exits 0.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

import runtime
from runtime.http import HttpConfig, Request, Response, Router, serve
from runtime.net import TcpListener, python_worker_argv, run_workers

router = Router()


@router.get("/")
async def hello(request: Request) -> Response:
    """``GET /`` (and ``HEAD /``): the greeting."""
    return Response.text("Hello, world!")


async def main(args: argparse.Namespace) -> None:
    listener = TcpListener.bind(args.host, args.port, reuse_port=args.reuse_port)
    host = f"[{args.host}]" if ":" in args.host else args.host
    print(f"listening on http://{host}:{listener.port}", flush=True)
    config = HttpConfig(parser=args.parser, name="http_hello")
    await serve(router, [listener], config=config)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="HTTP hello server on trio-runtime.")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=0, help="port; 0 picks a free one (default)")
    p.add_argument("--workers", type=int, default=1, help="processes sharing the port")
    p.add_argument(
        "--parser",
        choices=("h11", "httptools", "auto"),
        default="h11",
        help="request parser (default h11; auto uses httptools when installed)",
    )
    p.add_argument("--grace", type=float, default=10.0, help="seconds to drain on shutdown")
    p.add_argument("--log-level", default="WARNING", help="logging level (default WARNING)")
    p.add_argument("--reuse-port", action="store_true", help=argparse.SUPPRESS)
    return p.parse_args(argv)


if __name__ == "__main__":
    args = parse_args()
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(message)s"
    )
    if args.workers > 1:
        extra = ["--host", args.host, "--grace", str(args.grace), "--parser", args.parser]
        extra += ["--log-level", args.log_level]
        worker = python_worker_argv(os.path.abspath(__file__), *extra)
        sys.exit(
            run_workers(
                worker,
                workers=args.workers,
                host=args.host,
                port=args.port,
                grace=args.grace,
                scheme="http",
            )
        )
    try:
        runtime.run(main, args, config=runtime.RuntimeConfig(shutdown_grace=args.grace))
    except OSError as exc:
        print(f"error: cannot serve on {args.host}:{args.port}: {exc}", file=sys.stderr)
        sys.exit(1)
