"""A line-based chat room: LinesCodec for framing, a broadcast channel for the room.

Run it, then connect with ``nc 127.0.0.1 PORT`` from two terminals:
    python examples/chat_server.py --port 7001

Commands: ``/nick NAME``, ``/who``, ``/quit``. Everything else is said to the room.

Every client has a reader task (lines in) and a writer task (room out). The room is one
broadcast channel; each writer is a subscriber, so a message is stored once however many
clients there are, and the sender never waits for a slow client. A client whose backlog
reaches the channel's capacity (it stopped reading, so its writer is stuck) is dropped, and
nobody else notices. Lines longer than ``--max-line`` get an error and close the connection.
"""

from __future__ import annotations

import argparse
import logging
import re
import socket
import sys

import attrs
import trio

import runtime
from runtime.io import Framed, FrameError, LinesCodec
from runtime.net import ServerConfig, TcpListener, TcpStream, serve
from runtime.sync import EndOfChannel, Lagged, broadcast

logger = logging.getLogger("chat")

NICK = re.compile(r"^[A-Za-z0-9_-]{1,32}$")


@attrs.frozen
class Message:
    """One line for the room; ``to`` set means a private reply to that client only."""

    text: str
    to: Client | None = None


@attrs.define(eq=False)
class Client:
    nick: str
    scope: trio.CancelScope = attrs.field(factory=trio.CancelScope)
    sending: bool = False  # the writer is inside send_all (blocked, if we can see it)
    dropped: bool = False
    wrote: trio.Event = attrs.field(factory=trio.Event)  # set (and replaced) after each write


class ChatRoom:
    """The room: who is here, and the broadcast channel they all read.

    Args:
        backlog: Messages a client may fall behind before it is dropped.
        max_line: Longest line a client may send, in bytes.
        send_buffer: Kernel send buffer per client (``SO_SNDBUF``), so that a client that
            stops reading costs a bounded amount of memory before its backlog fills.
    """

    def __init__(self, backlog: int = 64, max_line: int = 1024, send_buffer: int = 32768):
        self.sender, first = broadcast.channel[Message](backlog, name="chat")
        first.close()  # subscribers come and go with clients
        self.backlog = backlog
        self.max_line = max_line
        self.send_buffer = send_buffer
        self.clients: dict[str, tuple[Client, broadcast.Receiver[Message]]] = {}
        self._guests = 0

    async def say(self, text: str, to: Client | None = None) -> None:
        """Send a line to the room (or to one client), then drop clients that are stuck.

        Stuck means: the backlog is full *and* the writer is blocked in ``send_all`` (the
        client stopped reading). A writer that is merely waiting for its turn is not stuck.
        """
        await self.sender.send(Message(text, to))
        for client, receiver in list(self.clients.values()):
            if receiver.pending() >= self.backlog and client.sending and not client.dropped:
                client.dropped = True
                client.scope.cancel()
                logger.warning("dropping %s: %d messages behind", client.nick, self.backlog)

    def join(self) -> tuple[Client, broadcast.Receiver[Message]]:
        self._guests += 1
        client = Client(f"guest{self._guests}")
        receiver = self.sender.subscribe()
        self.clients[client.nick] = (client, receiver)
        return client, receiver

    def leave(self, client: Client) -> None:
        entry = self.clients.pop(client.nick, None)
        if entry is not None:
            entry[1].close()

    def rename(self, client: Client, nick: str) -> str | None:
        """Give ``client`` a new nick; returns an error text, or None when it worked."""
        if not NICK.match(nick):
            return "nicks are 1-32 letters, digits, '_' or '-'"
        if nick in self.clients:
            return f"{nick} is taken"
        self.clients[nick] = self.clients.pop(client.nick)
        client.nick = nick
        return None

    async def handle(self, stream: TcpStream) -> None:
        """Serve one client until it quits, disconnects, is dropped, or the server drains."""
        stream.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.send_buffer)
        framed = Framed(stream, LinesCodec(self.max_line))
        client, receiver = self.join()
        try:
            with client.scope:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._write, stream, client, receiver)
                    await self.say(f"* {client.nick} joined")
                    await self.say(
                        f"* welcome, {client.nick}. Commands: /nick NAME, /who, /quit", client
                    )
                    await self._read(framed, client)
                    with trio.move_on_after(1):  # let the writer deliver our last replies
                        while receiver.pending() or client.sending:
                            await client.wrote.wait()
                    nursery.cancel_scope.cancel()
        finally:
            self.leave(client)
            with trio.move_on_after(1, shield=True):  # shielded, and bounded
                await self.say(f"* {client.nick} left")

    async def _read(self, framed: Framed[str, str], client: Client) -> None:
        try:
            async for line in framed:
                if line == "/quit":
                    return
                if line == "/who":
                    await self.say("* here: " + ", ".join(sorted(self.clients)), client)
                elif line.startswith("/nick "):
                    old = client.nick
                    error = self.rename(client, line[6:].strip())
                    if error:
                        await self.say(f"* error: {error}", client)
                    else:
                        await self.say(f"* {old} is now known as {client.nick}")
                else:
                    await self.say(f"<{client.nick}> {line}")
                await runtime.yield_now()  # one line per turn: writers keep up with a burst
        except FrameError as exc:
            await self.say(f"* error: {exc}", client)

    async def _write(
        self, stream: TcpStream, client: Client, receiver: broadcast.Receiver[Message]
    ) -> None:
        codec = LinesCodec(max(self.max_line * 2, 4096))
        while True:
            try:
                message = await receiver.recv()
            except Lagged:
                return  # say() drops laggards before this can happen; be safe anyway
            except EndOfChannel:
                return
            if message.to is None or message.to is client:
                client.sending = True
                await stream.send_all(codec.encode(message.text))
                client.sending = False
            client.wrote.set()
            client.wrote = trio.Event()


async def main(args: argparse.Namespace) -> None:
    room = ChatRoom(backlog=args.backlog, max_line=args.max_line)
    listener = TcpListener.bind(args.host, args.port)
    host = f"[{args.host}]" if ":" in args.host else args.host
    print(f"listening on tcp://{host}:{listener.port}", flush=True)
    await serve(room.handle, [listener], config=ServerConfig(idle_timeout=600, name="chat"))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Line-based chat on trio-runtime.")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=0, help="port; 0 picks a free one (default)")
    p.add_argument("--backlog", type=int, default=64, help="messages before a client is dropped")
    p.add_argument("--max-line", type=int, default=1024, help="longest line, in bytes")
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
