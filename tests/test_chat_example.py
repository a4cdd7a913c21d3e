"""The chat example: a room on LinesCodec + broadcast, where a stuck reader can't stall others."""

from __future__ import annotations

import importlib.util
import socket
import sys
from pathlib import Path
from types import ModuleType

import trio
import trio.testing

from runtime.io import Framed, LinesCodec
from runtime.net import Server, TcpListener, TcpStream

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "chat_server.py"


def load_chat() -> ModuleType:
    spec = importlib.util.spec_from_file_location("chat_server_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


chat = load_chat()


async def connect(port: int, rcvbuf: int | None = None) -> Framed[str, str]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf is not None:  # before connect: the receive window is negotiated at connect
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.connect(("127.0.0.1", port))
    return Framed(TcpStream(sock), LinesCodec(8192))  # type: ignore[return-value]


async def read_until(framed: Framed[str, str], predicate: object) -> list[str]:
    lines = []
    async for line in framed:
        lines.append(line)
        if predicate(line):  # type: ignore[operator]
            break
    return lines


async def test_three_clients_one_never_reads() -> None:
    room = chat.ChatRoom(backlog=32, max_line=2048, send_buffer=8192)
    listener = TcpListener.bind()
    server = Server(room.handle, [listener])
    async with trio.open_nursery() as nursery:
        await nursery.start(server.serve)
        alice = await connect(listener.port)
        await read_until(alice, lambda line: line.startswith("* welcome"))
        bob = await connect(listener.port)
        await read_until(bob, lambda line: line.startswith("* welcome"))
        stuck = await connect(listener.port, rcvbuf=4096)
        await trio.testing.wait_all_tasks_blocked()
        assert len(room.clients) == 3
        await alice.send("/nick alice")
        await bob.send("/nick bob")
        await read_until(alice, lambda line: "guest2 is now known as bob" in line)
        await read_until(bob, lambda line: "guest2 is now known as bob" in line)

        count = 300
        payload = "x" * 1000
        got_by_bob: list[str] = []
        got_by_alice: list[str] = []
        everything_bob_saw: list[str] = []

        async def alice_talks() -> None:
            for i in range(count):
                await alice.send(f"{i} {payload}")

        async def collect(framed: Framed[str, str], into: list[str]) -> None:
            async for line in framed:
                if framed is bob:
                    everything_bob_saw.append(line)
                if line.startswith("<alice>"):
                    into.append(line)
                    if len(into) == count:
                        return

        async with trio.open_nursery() as talk:
            talk.start_soon(alice_talks)
            talk.start_soon(collect, bob, got_by_bob)
            talk.start_soon(collect, alice, got_by_alice)
        assert got_by_bob == [f"<alice> {i} {payload}" for i in range(count)]
        assert got_by_alice == got_by_bob
        await trio.testing.wait_all_tasks_blocked()
        assert sorted(room.clients) == ["alice", "bob"]  # the stuck one was dropped
        await bob.send("/who")
        lines = await read_until(bob, lambda line: line.startswith("* here:"))
        assert lines[-1] == "* here: alice, bob"
        assert "* guest3 left" in everything_bob_saw + lines
        # the stuck client's connection was closed: reading now ends, after what was buffered
        stuck_lines = []
        try:
            async for line in stuck:
                stuck_lines.append(line)
        except trio.BrokenResourceError:
            pass
        assert len(stuck_lines) < count
        for framed in (alice, bob, stuck):
            await framed.aclose()
        server.drain()


async def test_overlong_line_gets_an_error_and_is_disconnected() -> None:
    room = chat.ChatRoom(max_line=64)
    listener = TcpListener.bind()
    server = Server(room.handle, [listener])
    async with trio.open_nursery() as nursery:
        await nursery.start(server.serve)
        client = await connect(listener.port)
        await read_until(client, lambda line: line.startswith("* welcome"))
        await client.stream.send_all(b"y" * 500 + b"\n")
        lines = [line async for line in client]
        assert any("line exceeds 64 bytes" in line for line in lines)
        await client.aclose()
        server.drain()


async def test_bad_nick_is_refused() -> None:
    room = chat.ChatRoom()
    listener = TcpListener.bind()
    server = Server(room.handle, [listener])
    async with trio.open_nursery() as nursery:
        await nursery.start(server.serve)
        client = await connect(listener.port)
        await read_until(client, lambda line: line.startswith("* welcome"))
        await client.send("/nick not a nick!")
        lines = await read_until(client, lambda line: line.startswith("* error"))
        assert "nicks are 1-32 letters" in lines[-1]
        await client.send("/quit")
        assert [line async for line in client] == []
        await client.aclose()
        server.drain()
