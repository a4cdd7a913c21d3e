"""A WebSocket echo server: every text and binary message comes back, on any path.

Run it:
    python examples/ws_echo.py --port 9000

It prints ``listening on ws://HOST:PORT`` when ready. A plain HTTP request gets 426. SIGINT or
SIGTERM drains: every open WebSocket is closed with 1001, and the process exits 0.
"""

from __future__ import annotations

import argparse
import logging
import sys

import runtime
from runtime.http import HttpConfig, Request, Response, WebSocket, serve, websocket_endpoint
from runtime.net import TcpListener


async def echo(ws: WebSocket) -> None:
    """Send every message back until the client closes."""
    async for message in ws:
        await ws.send(message)


_upgrade = websocket_endpoint(echo)


async def app(request: Request) -> Response:
    """Any path: the WebSocket handshake (a plain request gets 426)."""
    return await _upgrade(request)


async def main(args: argparse.Namespace) -> None:
    listener = TcpListener.bind(args.host, args.port)
    host = f"[{args.host}]" if ":" in args.host else args.host
    print(f"listening on ws://{host}:{listener.port}", flush=True)
    await serve(app, [listener], config=HttpConfig(name="ws_echo"))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="WebSocket echo server on trio-runtime.")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=0, help="port; 0 picks a free one (default)")
    p.add_argument("--grace", type=float, default=10.0, help="seconds to drain on shutdown")
    p.add_argument("--log-level", default="WARNING", help="logging level (default WARNING)")
    return p.parse_args(argv)


if __name__ == "__main__":
    args = parse_args()
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(message)s"
    )
    try:
        runtime.run(main, args, config=runtime.RuntimeConfig(shutdown_grace=args.grace))
    except OSError as exc:
        print(f"error: cannot serve on {args.host}:{args.port}: {exc}", file=sys.stderr)
        sys.exit(1)
