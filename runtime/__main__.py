"""Command line: ``python -m runtime demo|serve|proxy|top`` (installed as ``trio-runtime``)."""

from __future__ import annotations

import argparse
import logging
import sys

from . import _demo, _serve


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="trio-runtime", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="serve the demo apps on loopback")
    demo.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    demo.add_argument("--port", type=int, default=0, help="echo port; 0 picks one (default)")
    demo.add_argument("--chat-port", type=int, default=0, help="chat port; 0 picks one")
    demo.add_argument("--http-port", type=int, default=0, help="HTTP port; 0 picks one")
    demo.add_argument(
        "--admin-port", type=int, default=0, help="admin port (metrics, tasks); 0 picks one"
    )
    demo.add_argument(
        "--grace", type=float, default=10.0, help="seconds to drain on shutdown (default 10)"
    )
    demo.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    proxy = sub.add_parser("proxy", help="run the reverse proxy from a TOML config")
    proxy.add_argument("--config", required=True, help="the proxy's TOML config file")
    proxy.add_argument("--check", action="store_true", help="validate the config and exit")
    proxy.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    serve = sub.add_parser(
        "serve",
        help="serve an ASGI app (Starlette, FastAPI...) on the runtime's HTTP server",
        description="Serve an ASGI app: python -m runtime serve main:app --port 8000",
    )
    _serve.add_arguments(serve)
    top = sub.add_parser("top", help="a live terminal view of a process's admin endpoint")
    top.add_argument("--admin", required=True, help="the admin endpoint, HOST:PORT")
    top.add_argument("--interval", default="1.0", help="seconds between polls (default 1)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point for ``python -m runtime`` and the ``trio-runtime`` script."""
    if argv is None:
        argv = sys.argv[1:]
    args = _parser().parse_args(argv)
    if args.command == "top":  # no logging setup: the terminal belongs to the view
        from .admin import _top

        return _top.main(["--admin", args.admin, "--interval", args.interval])
    logging.basicConfig(
        level=args.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if args.command == "demo":
        return _demo.run_demo(
            args.host,
            args.port,
            chat_port=args.chat_port,
            http_port=args.http_port,
            admin_port=args.admin_port,
            grace=args.grace,
        )
    if args.command == "serve":
        return _serve.run_serve(args, argv)
    if args.command == "proxy":
        from .proxy import run_proxy

        return run_proxy(args.config, check=args.check)
    return 2  # pragma: no cover - argparse rejects unknown commands


if __name__ == "__main__":
    sys.exit(main())
