"""The echo servers that benchmarks/echo.py compares. Each prints its listening line.

--impl runtime-bare  a bare accept loop on the runtime's streams, without the Server (the
                    "runtime" row of benchmarks/echo.py is examples/echo_server.py itself)
--impl trio          plain trio.serve_tcp + SocketStream, the baseline
--impl asyncio       asyncio streams
--impl uvloop        asyncio streams on uvloop
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import signal
import sys

import trio


async def trio_server(port: int) -> None:
    async def handler(stream: trio.SocketStream) -> None:
        try:
            while data := await stream.receive_some(65536):
                await stream.send_all(data)
        except trio.BrokenResourceError:
            pass

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(
            functools.partial(trio.serve_tcp, host="127.0.0.1"), handler, port
        )
        print(f"listening on tcp://127.0.0.1:{listeners[0].socket.getsockname()[1]}", flush=True)


def run_runtime(port: int) -> None:
    import runtime
    from runtime.net import TcpListener, TcpStream

    async def handler(stream: TcpStream) -> None:
        async with stream:
            try:
                while data := await stream.receive_some(65536):
                    await stream.send_all(data)
            except trio.BrokenResourceError:
                pass

    async def accept_loop(listener: TcpListener, nursery: trio.Nursery) -> None:
        while True:
            for stream in await listener.accept_batch():
                nursery.start_soon(handler, stream)

    async def main() -> None:
        listener = TcpListener.bind("127.0.0.1", port)
        print(f"listening on tcp://127.0.0.1:{listener.port}", flush=True)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(accept_loop, listener, nursery)
            await runtime.current().shutdown_requested()  # SIGTERM: stop, no drain
            nursery.cancel_scope.cancel()

    runtime.run(main, config=runtime.RuntimeConfig(shutdown_grace=5.0))


async def asyncio_server(port: int) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass
        writer.close()

    server = await asyncio.start_server(handler, "127.0.0.1", port, backlog=1024)
    print(f"listening on tcp://127.0.0.1:{server.sockets[0].getsockname()[1]}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--impl", required=True, choices=["runtime-bare", "trio", "asyncio", "uvloop"])
    p.add_argument("--port", type=int, default=0)
    args = p.parse_args()
    if args.impl == "runtime-bare":
        run_runtime(args.port)
    elif args.impl == "trio":
        try:
            trio.run(trio_server, args.port)
        except KeyboardInterrupt:
            pass
    elif args.impl == "asyncio":
        asyncio.run(asyncio_server(args.port))
    else:
        import uvloop

        uvloop.run(asyncio_server(args.port))
    sys.exit(0)


if __name__ == "__main__":
    main()
