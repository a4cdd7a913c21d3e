"""The transport seam: every Connection type honours the protocol, and the Server runs on any.

The same handler is served over TCP, over a Unix socket and over the in-memory transport that
the simulation will build on; Trio's own conformance suite checks the in-memory connection.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import trio
import trio.testing

from runtime.net import (
    Connection,
    HalfCloseableConnection,
    Server,
    ServerConfig,
    TcpConnector,
    TcpListener,
    TcpStream,
    TlsConnection,
    UnixConnector,
    UnixListener,
    UnixStream,
)
from runtime.net.abc import Connector, Listener, format_address
from runtime.testing import MemoryConnection, MemoryListener, memory_connection_pair


async def echo(conn: Connection) -> None:
    while data := await conn.receive_some():
        await conn.send_all(data)


async def test_memory_connection_is_half_closeable(trio_checkpoints: None) -> None:
    async def maker() -> tuple[MemoryConnection, MemoryConnection]:
        return memory_connection_pair()

    async def clogged() -> tuple[MemoryConnection, MemoryConnection]:
        return memory_connection_pair(buffer=1)

    await trio.testing.check_half_closeable_stream(maker, None)
    a, b = await clogged()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(a.send_all, b"xyz")  # waits: the buffer holds one byte
        await trio.testing.wait_all_tasks_blocked()
        assert await b.receive_some() == b"x"
        assert await b.receive_some() == b"y"
        assert await b.receive_some() == b"z"


def test_every_shipped_type_implements_the_protocols() -> None:
    assert issubclass(TcpStream, HalfCloseableConnection)
    assert issubclass(UnixStream, HalfCloseableConnection)
    assert issubclass(MemoryConnection, HalfCloseableConnection)
    assert issubclass(TlsConnection, Connection)
    assert not issubclass(TlsConnection, HalfCloseableConnection)  # TLS has no half-close
    listeners: list[Listener[Connection]] = [MemoryListener()]
    connectors: list[Connector[Connection]] = [TcpConnector(), UnixConnector("/nowhere")]
    assert listeners and connectors  # the annotations above are checked by mypy in CI


@pytest.mark.parametrize("transport", ["tcp", "unix", "memory"])
async def test_the_same_handler_serves_every_transport(transport: str, tmp_path: Path) -> None:
    listener: Listener[Connection]
    if transport == "tcp":
        tcp = TcpListener.bind()
        listener = tcp

        async def connect() -> Connection:
            return await TcpConnector().connect("127.0.0.1", tcp.port)
    elif transport == "unix":
        path = str(tmp_path / "sock")
        listener = UnixListener.bind(path)

        async def connect() -> Connection:
            return await UnixConnector(path).connect()
    else:
        memory = MemoryListener(("10.0.0.1", 80))
        listener = memory

        async def connect() -> Connection:
            return await memory.connect(("10.0.0.9", 5555))

    seen: list[tuple[object, object]] = []

    async def handler(conn: Connection) -> None:
        seen.append((conn.peer_address, conn.local_address))
        await echo(conn)

    server: Server[Connection] = Server(handler, [listener], ServerConfig(idle_timeout=None))
    async with trio.open_nursery() as nursery:
        await nursery.start(server.serve)
        client = await connect()
        await client.send_all(b"same handler")
        assert await client.receive_some() == b"same handler"
        server.drain()
        assert await client.receive_some() == b""  # drained: the server closed its side
        await client.aclose()
    ((peer, local),) = seen
    if transport == "tcp":
        assert peer == client.local_address and local == client.peer_address
    elif transport == "memory":
        assert (peer, local) == (("10.0.0.9", 5555), ("10.0.0.1", 80))
    stats = server.statistics()
    assert (stats.accepted, stats.errored, stats.broken) == (1, 0, 0)


async def test_the_peer_address_survives_a_reset() -> None:
    listener = TcpListener.bind()
    client = socket.create_connection(("127.0.0.1", listener.port))
    (stream,) = await listener.accept_batch(1)
    client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    address = client.getsockname()
    client.close()
    assert stream.peer_address == address
    with pytest.raises(trio.BrokenResourceError):
        await stream.receive_some()
    assert format_address(stream.peer_address) == f"127.0.0.1:{address[1]}"
    await stream.aclose()
    await listener.aclose()


def test_format_address() -> None:
    assert format_address(("::1", 80, 0, 0)) == "[::1]:80"
    assert format_address(("127.0.0.1", 80)) == "127.0.0.1:80"
    assert format_address("/run/app.sock") == "/run/app.sock"
    assert format_address("") == "<unknown>"
    assert format_address(None) == "<unknown>"


async def test_send_all_counts_bytes_of_a_memoryview_of_wider_items() -> None:
    import array

    a, b = UnixStream.pair()
    data = memoryview(array.array("I", range(200_000)))  # 800 KB: needs several sends
    got = bytearray()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(a.send_all, data)
        while len(got) < data.nbytes:
            got += await b.receive_some()
    assert bytes(got) == data.tobytes()
    await a.aclose()
    await b.aclose()


async def test_memory_connection_lingers_so_a_writing_peer_reads_the_reply(
    autojump_clock: trio.abc.Clock,
) -> None:
    client, server = memory_connection_pair(buffer=1024)
    received: list[bytes] = []

    async def refuse() -> None:
        await server.send_all(b"413 too large")
        await server.aclose_gracefully(linger=5.0)  # the client still writes meanwhile

    async def upload() -> None:
        # 64 KiB into a 1 KiB pipe: the server discards it while it lingers, so the upload
        # finishes without BrokenResourceError, as it would against a lingering TCP close.
        for _ in range(64):
            await client.send_all(b"x" * 1024)
        await client.send_eof()
        while data := await client.receive_some():
            received.append(data)
        await client.aclose()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(refuse)
        nursery.start_soon(upload)
    assert b"".join(received) == b"413 too large"
    assert trio.current_time() < 5.0  # ended when the client closed, not at the linger
