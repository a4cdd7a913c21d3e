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


def _need_nc() -> str:
    import os
    import shutil

    import pytest

    nc = shutil.which("nc")
    if nc is None:
        message = "needs nc: apt-get install netcat-openbsd"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return nc


def _readline(stream: object, deadline: float) -> str:
    import select
    import time

    remaining = deadline - time.monotonic()
    ready, _, _ = select.select([stream], [], [], max(remaining, 0))
    assert ready, "no line before the deadline"
    return stream.readline()  # type: ignore[attr-defined, no-any-return]


def test_the_tutorials_commands_drop_the_client_that_never_reads() -> None:
    """chat-server.md's Try it, command for command: two terminals, guest3 behind
    ``nc -d ... | sleep``, then ``seq 50000 | nc -N`` floods the room."""
    import subprocess
    import threading
    import time

    nc = _need_nc()
    deadline = time.monotonic() + 40
    server = subprocess.Popen(
        [sys.executable, str(EXAMPLE), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    started: list[subprocess.Popen[bytes]] = []
    try:
        line = _readline(server.stdout, deadline)
        port = line.strip().rsplit(":", 1)[1]
        assert line == f"listening on tcp://127.0.0.1:{port}\n"

        def terminal() -> subprocess.Popen[bytes]:
            # a terminal: connected, reading everything (into a drain), sending nothing
            proc = subprocess.Popen([nc, "-d", "127.0.0.1", port], stdout=subprocess.PIPE)
            started.append(proc)
            assert proc.stdout is not None
            while not (greeting := proc.stdout.readline()).startswith(b"* welcome"):
                assert greeting, "nc was not welcomed"  # (the join notice comes first)
            threading.Thread(target=proc.stdout.read, daemon=True).start()
            return proc

        terminal()
        terminal()
        # guest3, as `nc -d 127.0.0.1 7001 | sleep 600`: its welcome is read, then nothing
        stuck = subprocess.Popen([nc, "-d", "127.0.0.1", port], stdout=subprocess.PIPE)
        started.append(stuck)
        assert stuck.stdout is not None
        while not (line_in := stuck.stdout.readline()).startswith(b"* welcome"):
            assert line_in, "guest3 was not welcomed"
        assert line_in.startswith(b"* welcome, guest3.")
        flood = subprocess.run(
            f"seq 50000 | {nc} -N 127.0.0.1 {port} > /dev/null",
            shell=True,
            timeout=30,
            check=False,
        )
        assert flood.returncode == 0
        log = []
        while not any("dropping" in entry for entry in log):
            log.append(_readline(server.stderr, deadline))
        assert log[-1].rstrip().endswith("WARNING dropping guest3: 64 messages behind")
    finally:
        for proc in started:
            proc.kill()
            proc.wait()
        server.terminate()
        server.communicate(timeout=30)
    assert server.returncode == 0
