"""The peer WebSocket echo servers that benchmarks/ws.py compares. Each prints its listening line.

--impl trio-websocket  ``trio_websocket.serve_websocket``, one task per connection
--impl websockets      the ``websockets`` package's asyncio server

Both echo every message on any path, without compression (the client offers none) and
without keep-alive pings. The "ours" row of benchmarks/ws.py is examples/ws_echo.py itself.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any


def run_trio_websocket(port: int) -> None:
    import trio
    from trio_websocket import ConnectionClosed, WebSocketRequest, serve_websocket

    async def handler(request: WebSocketRequest) -> None:
        ws = await request.accept()
        try:
            while True:
                await ws.send_message(await ws.get_message())
        except ConnectionClosed:
            pass

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            server = await nursery.start(serve_websocket, handler, "127.0.0.1", port, None)
            print(f"listening on ws://127.0.0.1:{server.port}", flush=True)

    trio.run(main)


def run_websockets(port: int) -> None:
    from websockets.asyncio.server import ServerConnection, serve
    from websockets.exceptions import ConnectionClosed

    async def handler(ws: ServerConnection) -> None:
        try:
            async for message in ws:
                await ws.send(message)
        except ConnectionClosed:
            pass

    async def main() -> None:
        options: dict[str, Any] = {"ping_interval": None, "compression": None}
        async with serve(handler, "127.0.0.1", port, **options) as server:
            bound = next(iter(server.sockets)).getsockname()[1]
            print(f"listening on ws://127.0.0.1:{bound}", flush=True)
            await asyncio.Future()  # until SIGTERM kills the process

    asyncio.run(main())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--impl", choices=["trio-websocket", "websockets"], required=True)
    p.add_argument("--port", type=int, default=0)
    args = p.parse_args(argv)
    if args.impl == "trio-websocket":
        run_trio_websocket(args.port)
    else:
        run_websockets(args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
