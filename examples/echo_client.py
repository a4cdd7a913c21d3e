"""An echo client that doubles as a load generator.

    python examples/echo_client.py --port 7000                          # one message
    python examples/echo_client.py --port 7000 --conns 64 --duration 5  # load
    python examples/echo_client.py --port 7000 --ssl-cafile client.pem  # over TLS

Each connection sends a ``--size``-byte message, waits for all of it to come back, and
repeats until ``--duration`` seconds have passed (or ``--count`` messages per connection).
A message bigger than the socket buffers is sent by a task of its own while this one reads
the echo: sending it all before reading would deadlock, since the server can't send its echo
back while nobody reads it, so it stops reading, and then our send can't finish either.
It prints messages per second and the p50 and p99 round-trip latency. With ``--ssl-cafile``
it speaks TLS and trusts only the CAs in that file; a failed handshake is one line on stderr
and exit status 1.
"""

from __future__ import annotations

import argparse
import ssl
import sys
import time

import trio

import runtime
from runtime.net import Connection, Connector, TcpConnector, TlsConnector, client_ssl_context

_ONE_TASK_SIZE = 64 * 1024  # a message this small fits in the socket buffers of both ends


class HandshakeFailed(Exception):
    """The TLS handshake failed: the message says why, in one line."""


class ServerClosed(Exception):
    """The server closed the connection before the whole echo came back."""


def connector(args: argparse.Namespace) -> Connector[Connection]:
    """Plain TCP, or TLS verified against ``--ssl-cafile`` and ``--server-hostname``."""
    if args.ssl_cafile is None:
        return TcpConnector()
    context = client_ssl_context(args.ssl_cafile)
    return TlsConnector(context, server_hostname=args.server_hostname)


async def connection(
    args: argparse.Namespace,
    connect: Connector[Connection],
    deadline: float,
    latencies: list[float],
) -> None:
    payload = b"x" * (args.size - 1) + b"\n"
    try:
        stream = await connect.connect(args.host, args.port)
    except trio.BrokenResourceError as exc:  # only a TLS handshake raises this here
        raise HandshakeFailed(
            f"TLS handshake with {args.host}:{args.port} failed: {handshake_failure(exc)}"
        ) from exc
    async with stream:
        # --duration bounds the whole run, a message in flight included.
        with trio.move_on_after(max(0.0, deadline - time.perf_counter())):
            for _ in range(args.count):
                start = time.perf_counter()
                if len(payload) <= _ONE_TASK_SIZE:
                    await stream.send_all(payload)  # fits in the buffers: send, then read
                    await receive_exactly(stream, len(payload), args)
                else:
                    async with trio.open_nursery() as nursery:  # send and read at once
                        nursery.start_soon(stream.send_all, payload)
                        await receive_exactly(stream, len(payload), args)
                latencies.append(time.perf_counter() - start)


async def receive_exactly(stream: Connection, size: int, args: argparse.Namespace) -> None:
    received = 0
    while received < size:
        try:
            data = await stream.receive_some()
        except trio.BrokenResourceError as exc:  # a reset
            raise ServerClosed(f"{args.host}:{args.port} reset the connection") from exc
        if not data:
            raise ServerClosed(
                f"{args.host}:{args.port} closed the connection before the echo came back"
            )
        received += len(data)


async def main(args: argparse.Namespace) -> dict[str, float]:
    latencies: list[float] = []
    start = time.perf_counter()
    deadline = start + args.duration
    connect = connector(args)
    async with runtime.JoinSet[None]() as tasks:
        for _ in range(args.conns):
            tasks.spawn(connection, args, connect, deadline, latencies)
        await tasks.join_all()
    elapsed = time.perf_counter() - start
    latencies.sort()
    n = len(latencies)
    result = {
        "messages": n,
        "msgs_per_s": n / elapsed if elapsed else 0.0,
        "p50_us": latencies[n // 2] * 1e6 if n else 0.0,
        "p99_us": latencies[min(n - 1, n * 99 // 100)] * 1e6 if n else 0.0,
    }
    print(
        f"{n} messages over {args.conns} connections in {elapsed:.2f}s: "
        f"{result['msgs_per_s']:.0f} msgs/s, p50 {result['p50_us']:.0f} us, "
        f"p99 {result['p99_us']:.0f} us",
        flush=True,
    )
    return result


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Echo client and load generator.")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--conns", type=int, default=1, help="concurrent connections")
    p.add_argument("--size", type=int, default=64, help="message size in bytes (>= 1)")
    p.add_argument("--duration", type=float, default=10.0, help="seconds to run at most")
    p.add_argument("--count", type=int, default=1, help="messages per connection at most")
    p.add_argument("--ssl-cafile", help="speak TLS, trusting the CA certificates in this file")
    p.add_argument("--server-hostname", help="the name to verify (default: --host)")
    args = p.parse_args(argv)
    if args.size < 1:
        p.error("--size must be at least 1")
    if args.server_hostname is None:
        args.server_hostname = args.host
    return args


def handshake_failure(exc: trio.BrokenResourceError) -> str:
    """Why a handshake failed, in one line that does not depend on the Python version."""
    cause = exc.__cause__
    if isinstance(cause, ssl.SSLCertVerificationError):
        return f"certificate verify failed: {cause.verify_message}"
    if isinstance(cause, ssl.SSLError) and cause.reason:
        return cause.reason
    return str(exc) or repr(exc)


if __name__ == "__main__":
    try:
        runtime.run(main, parse_args())
    except (HandshakeFailed, ServerClosed) as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
    except OSError as exc:  # nothing listens there, no route, ...
        print(f"error: cannot connect to the server: {exc}", file=sys.stderr)
        sys.exit(1)
