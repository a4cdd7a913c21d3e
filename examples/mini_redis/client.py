"""A small async Redis client on the runtime: commands, pipelines and pub/sub.

Use it from code::

    async with await Client.connect("127.0.0.1", 6380) as redis:
        await redis.execute("SET", "greeting", "hello")
        print(await redis.execute("GET", "greeting"))          # b'hello'
        print(await redis.pipeline([("INCR", "n")] * 3))        # [1, 2, 3]

or from a shell, one command per run, printed the way redis-cli prints it:

    python examples/mini_redis/client.py --port 6380 set greeting hello
    python examples/mini_redis/client.py --port 6380 subscribe news     # prints messages

An error reply raises :class:`ReplyError`. Every call waits at most ``timeout`` seconds for
its reply (default 10 s), so a server that stops answering is an error, not a hang.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import AsyncIterator, Sequence
from types import TracebackType

import trio

if __package__ in (None, ""):  # run as a script: make the folder importable as a package
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import runtime
from mini_redis import resp
from runtime.io import Framed
from runtime.net import TcpStream
from runtime.time import timeout as deadline

Arg = bytes | str | int


class ReplyError(Exception):
    """The server answered with an error (``-ERR ...``); the message is its text."""


class Client:
    """One connection to a Redis server (ours or a real one)."""

    def __init__(self, stream: trio.abc.Stream, *, timeout: float = 10.0) -> None:
        self.framed: Framed[resp.Value, resp.Reply] = Framed(stream, resp.RespCodec())
        self.timeout = timeout

    @classmethod
    async def connect(cls, host: str = "127.0.0.1", port: int = 6379, **kw: float) -> Client:
        """Open a connection."""
        return cls(await TcpStream.connect(host, port), **kw)

    async def execute(self, *args: Arg) -> resp.Value:
        """Send one command and return its reply.

        Raises:
            ReplyError: the reply is an error.
            TimeoutError: no reply within ``timeout`` seconds.
        """
        (reply,) = await self.pipeline([args])
        return reply

    async def pipeline(self, commands: Sequence[Sequence[Arg]]) -> list[resp.Value]:
        """Send every command in one write, then read their replies in order.

        Raises:
            ReplyError: a reply is an error (the first one; all replies were read).
        """
        for command in commands:
            self.framed.feed([_word(arg) for arg in command])
        with deadline(self.timeout):
            await self.framed.flush()
            replies = [await self._reply() for _ in commands]
        for reply in replies:
            if isinstance(reply, resp.RespError):
                raise ReplyError(str(reply))
        return replies

    async def messages(self) -> AsyncIterator[tuple[bytes, bytes]]:
        """After SUBSCRIBE: ``(channel, message)`` for each message, until the connection ends.

        Waits without a deadline: a quiet channel is not an error.
        """
        while (push := await self.framed.receive()) is not None:
            if isinstance(push, list) and push[:1] == [b"message"]:
                channel, message = push[1], push[2]
                assert isinstance(channel, bytes) and isinstance(message, bytes)
                yield channel, message

    async def _reply(self) -> resp.Value:
        reply = await self.framed.receive()
        if reply is None:
            raise trio.BrokenResourceError("the server closed the connection")
        return reply

    async def aclose(self) -> None:
        await self.framed.aclose()

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


def _word(arg: Arg) -> bytes:
    if isinstance(arg, bytes):
        return arg
    return str(arg).encode()


def show(reply: resp.Value, indent: str = "") -> str:
    """A reply the way redis-cli prints it: ``OK``, ``(integer) 1``, ``"hello"``, ``(nil)``."""
    if isinstance(reply, resp.SimpleString):
        return str(reply)
    if isinstance(reply, resp.RespError):
        return f"(error) {reply}"
    if isinstance(reply, int):
        return f"(integer) {reply}"
    if isinstance(reply, bytes):
        return '"' + reply.decode(errors="backslashreplace").replace('"', '\\"') + '"'
    if isinstance(reply, list):
        if not reply:
            return "(empty array)"
        width = len(str(len(reply)))
        lines = []
        for i, item in enumerate(reply, 1):
            inner = show(item, indent + " " * (width + 2))
            lines.append(f"{indent if i > 1 else ''}{i:>{width}}) {inner}")
        return "\n".join(lines)
    return "(nil)"


async def main(args: argparse.Namespace) -> int:
    async with await Client.connect(args.host, args.port) as redis:
        try:
            reply = await redis.execute(*args.command)
        except ReplyError as exc:
            print(f"(error) {exc}")
            return 1
        print(show(reply), flush=True)
        if args.command[0].lower() == "subscribe":
            count = len(args.command) - 1
            for _ in range(count - 1):  # one confirmation per channel
                print(show(await redis._reply()), flush=True)
            async for channel, message in redis.messages():
                print(show([b"message", channel, message]), flush=True)
    return 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Send one command to a Redis server.")
    p.add_argument("--host", default="127.0.0.1", help="server address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=6379, help="server port (default 6379)")
    p.add_argument("command", nargs="+", help="the command and its arguments")
    return p.parse_args(argv)


if __name__ == "__main__":
    sys.exit(runtime.run(main, parse_args()))
