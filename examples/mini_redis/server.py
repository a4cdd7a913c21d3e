"""mini-redis: a Redis server on the runtime, good enough for redis-cli, redis-py and
redis-benchmark.

Run it:
    python examples/mini_redis/server.py --port 6380
    redis-cli -p 6380 set greeting hello
    redis-benchmark -p 6380 -t ping,set,get -q

It prints ``listening on tcp://HOST:PORT`` when ready. SIGINT or SIGTERM drains: the server
stops accepting, every connection gets the replies to the commands it already sent, and the
process exits 0.

Each connection is a :class:`Session` on a ``Framed(stream, CommandCodec())``: decode every
command already buffered, append each reply to the write buffer, then send them all at once.
A pipelined burst of 16 commands is one read and one send. Replies go out every 64 KiB even
in a long burst, so a client that sends and never reads is slowed down by TCP, not buffered
without bound. A subscribed connection also has one task per channel that copies messages
from the channel's broadcast ring to the socket; a lock keeps its writes and the replies in
order. A protocol error gets ``-ERR Protocol error: ...`` and the connection is closed; an
unknown command gets ``-ERR unknown command ...`` and the connection stays open.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

import attrs
import trio

if __package__ in (None, ""):  # run as a script: make the folder importable as a package
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import runtime
from mini_redis import resp
from mini_redis.commands import COMMANDS, SUBSCRIBED_ONLY
from mini_redis.db import CommandError, Db
from runtime.io import Framed, FrameError
from runtime.net import Connection, ServerConfig, TcpListener, serve
from runtime.net.abc import format_address
from runtime.sync import EndOfChannel, Lagged, broadcast

logger = logging.getLogger("mini_redis")

WRITE_HIGH_WATER = 65536
"""Bytes of replies buffered before they are sent even in the middle of a burst."""


@attrs.define(eq=False)
class Session:
    """One connection: its framing, its subscriptions, and how it is dropped."""

    db: Db
    framed: Framed[list[bytes], resp.Reply]
    peer: str
    nursery: trio.Nursery
    scope: trio.CancelScope
    subscriptions: dict[bytes, broadcast.Receiver[bytes]] = attrs.field(factory=dict)
    pending_bytes: int = 0
    quitting: bool = False
    dropped: bool = False
    write_lock: trio.Lock = attrs.field(factory=trio.Lock)

    async def flush(self) -> None:
        """Send the write buffer; the lock orders it with the pub/sub writers' sends."""
        try:
            self.write_lock.acquire_nowait()
        except trio.WouldBlock:
            await self.write_lock.acquire()
        try:
            await self.framed.flush()
        finally:
            self.write_lock.release()

    def subscribe(self, name: bytes) -> int:
        """Subscribe to ``name`` (once); how many channels this connection is subscribed to."""
        if name not in self.subscriptions:
            receiver = self.db.subscribe(name, self)
            self.subscriptions[name] = receiver
            self.nursery.start_soon(self._forward, receiver)
        return len(self.subscriptions)

    def unsubscribe(self, name: bytes) -> int:
        """Unsubscribe from ``name``; how many subscriptions are left."""
        if self.subscriptions.pop(name, None) is not None:
            self.db.unsubscribe(name, self)
        return len(self.subscriptions)

    def drop(self, reason: str) -> None:
        """Close this connection: it stopped reading its messages."""
        if not self.dropped:
            self.dropped = True
            logger.warning("dropping subscriber %s: %s", self.peer, reason)
            self.scope.cancel()

    async def _forward(self, receiver: broadcast.Receiver[bytes]) -> None:
        """Copy one subscription's messages to the socket, as many per send as are ready."""
        buffer = self.framed.write_buffer
        while True:
            try:
                message = await receiver.recv()
                size = len(message)
                buffer += message
                while len(buffer) < WRITE_HIGH_WATER:
                    message = receiver.try_recv()
                    size += len(message)
                    buffer += message
            except trio.WouldBlock:
                pass
            except Lagged as lagged:
                self.drop(f"lost {lagged.missed} messages")
                return
            except (EndOfChannel, trio.ClosedResourceError):
                return  # unsubscribed
            await self.flush()
            self.pending_bytes -= size


class MiniRedis:
    """The server: one keyspace, and a handler for each connection.

    Args:
        db: The keyspace (a fresh one by default).
        codec: The command codec, with its limits (defaults: see :mod:`resp`).
    """

    def __init__(self, db: Db | None = None, codec: resp.CommandCodec | None = None) -> None:
        self.db = db if db is not None else Db()
        self.codec = codec if codec is not None else resp.CommandCodec()

    async def handle(self, stream: Connection) -> None:
        """Serve one connection until it closes, quits, is dropped, or the server drains."""
        framed: Framed[list[bytes], resp.Reply] = Framed(stream, self.codec)
        with trio.CancelScope() as scope:
            async with trio.open_nursery() as nursery:
                session = Session(self.db, framed, _peer(stream), nursery, scope)
                try:
                    await self._serve(session)
                finally:
                    for name in list(session.subscriptions):
                        session.unsubscribe(name)
                nursery.cancel_scope.cancel()

    async def _serve(self, session: Session) -> None:
        framed = session.framed
        buffer = framed.read_buffer
        decode = self.codec.decode
        out = framed.write_buffer
        try:
            command = await framed.receive()
            while command is not None:
                out += self.execute(session, command)
                if session.quitting:
                    break
                command = decode(buffer)
                if command is None or len(out) >= WRITE_HIGH_WATER:
                    await session.flush()
                    if command is None:
                        command = await framed.receive()
        except FrameError as exc:
            logger.info("closing %s: %s", session.peer, exc)
            out += resp.error(f"ERR {exc}")
        await session.flush()

    def execute(self, session: Session, command: list[bytes]) -> bytes:
        """Run one command; its reply, encoded (an error reply if it failed)."""
        name = command[0]
        entry = COMMANDS.get(name)
        if entry is None:
            name = name.upper()
            entry = COMMANDS.get(name)
            if entry is None:
                return _unknown(command)
        function, arity = entry
        if (len(command) != arity) if arity > 0 else (len(command) < -arity):
            return resp.error(f"ERR wrong number of arguments for '{_lower(name)}' command")
        if session.subscriptions and name not in SUBSCRIBED_ONLY:
            return resp.error(
                f"ERR Can't execute '{_lower(name)}': only SUBSCRIBE / UNSUBSCRIBE / PING / "
                "QUIT are allowed in this context"
            )
        try:
            return function(session, command[1:])
        except CommandError as exc:
            return resp.error(str(exc))


def _unknown(command: list[bytes]) -> bytes:
    words = " ".join(f"'{_clip(word)}'" for word in command[1:4])
    return resp.error(
        f"ERR unknown command '{_clip(command[0])}', with args beginning with: {words}"
    )


def _clip(word: bytes) -> str:
    return word[:64].decode(errors="replace")


def _lower(name: bytes) -> str:
    return name.decode(errors="replace").lower()


def _peer(stream: Connection) -> str:
    return format_address(stream.peer_address)


async def main(args: argparse.Namespace) -> None:
    server = MiniRedis(Db(backlog=args.backlog, max_pending=args.max_pending))
    listener = TcpListener.bind(args.host, args.port)
    host = f"[{args.host}]" if ":" in args.host else args.host
    print(f"listening on tcp://{host}:{listener.port}", flush=True)
    config = ServerConfig(
        max_connections=args.max_connections, idle_timeout=args.idle_timeout, name="mini-redis"
    )
    async with trio.open_nursery() as nursery:
        nursery.start_soon(server.db.serve_expiry)
        await serve(server.handle, [listener], config=config)
        nursery.cancel_scope.cancel()  # drained: stop the expiry task too


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="mini-redis on trio-runtime.")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=0, help="port; 0 picks a free one (default)")
    p.add_argument("--max-connections", type=int, default=10_000)
    p.add_argument(
        "--idle-timeout", type=float, default=300.0, help="seconds a silent client is kept"
    )
    p.add_argument(
        "--backlog", type=int, default=1024, help="messages a subscriber may fall behind"
    )
    p.add_argument(
        "--max-pending",
        type=int,
        default=8 * 1024 * 1024,
        help="bytes of messages a subscriber may fall behind",
    )
    p.add_argument("--grace", type=float, default=5.0, help="seconds to drain on shutdown")
    return p.parse_args(argv)


if __name__ == "__main__":
    args = parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        runtime.run(main, args, config=runtime.RuntimeConfig(shutdown_grace=args.grace))
    except OSError as exc:
        print(f"error: cannot serve on {args.host}:{args.port}: {exc}", file=sys.stderr)
        sys.exit(1)
