"""The reactor under the streams: many connections, parking, closing, resets, half-close."""

from __future__ import annotations

import os
import socket
import struct

import pytest
import trio
import trio.testing

import runtime
from runtime.net import TcpListener, TcpStream, UdpSocket, UnixListener, UnixStream
from runtime.net._reactor import READ, EpollReactor, current_reactor


async def echo_once(stream: TcpStream) -> None:
    async with stream:
        while data := await stream.receive_some():
            await stream.send_all(data)


async def serve_echo(listener: TcpListener, nursery: trio.Nursery) -> None:
    while True:
        for stream in await listener.accept_batch():
            nursery.start_soon(echo_once, stream)


async def test_thousand_concurrent_connections() -> None:
    count = 1000
    async with runtime.open_runtime(runtime.RuntimeConfig(handle_signals=False)):
        listener = TcpListener.bind("127.0.0.1", 0)
        results: list[bytes] = []

        async def client(i: int) -> None:
            stream = await TcpStream.connect("127.0.0.1", listener.port)
            async with stream:
                message = b"hello %d\n" % i
                await stream.send_all(message)
                got = b""
                while len(got) < len(message):
                    got += await stream.receive_some()
                results.append(got)

        async with trio.open_nursery() as server:
            server.start_soon(serve_echo, listener, server)
            async with trio.open_nursery() as clients:
                for i in range(count):
                    clients.start_soon(client, i)
            stats = current_reactor().statistics()
            server.cancel_scope.cancel()
        await listener.aclose()
    assert sorted(results) == sorted(b"hello %d\n" % i for i in range(count))
    assert stats.backend == "epoll"
    assert stats.wakeups > 0
    assert stats.events_per_wakeup >= 1


async def connected_pair() -> tuple[TcpStream, TcpStream]:
    listener = TcpListener.bind("127.0.0.1", 0)
    async with trio.open_nursery() as nursery:
        accepted: list[TcpStream] = []

        async def accept() -> None:
            accepted.append(await listener.accept())

        nursery.start_soon(accept)
        client = await TcpStream.connect("127.0.0.1", listener.port)
    await listener.aclose()
    return client, accepted[0]


async def test_cancel_while_parked_loses_nothing() -> None:
    a, b = await connected_pair()
    with trio.CancelScope() as scope:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(b.receive_some)
            await trio.testing.wait_all_tasks_blocked()
            assert current_reactor().statistics().parked + 1 >= 1
            scope.cancel()
    assert scope.cancelled_caught
    await a.send_all(b"after cancel")
    assert await b.receive_some() == b"after cancel"
    await a.aclose()
    await b.aclose()


async def test_leader_cancelled_hands_off_to_the_driver() -> None:
    a1, b1 = await connected_pair()
    a2, b2 = await connected_pair()
    got: list[bytes] = []
    scope = trio.CancelScope()
    reactor = current_reactor()
    assert isinstance(reactor, EpollReactor)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(leader_then_cancelled, b1, scope)  # parks first: the leader
        await trio.testing.wait_all_tasks_blocked()
        assert reactor._leader is not None and reactor._leader is not reactor._driver
        nursery.start_soon(read_into, b2, got)  # parks second: a follower
        await trio.testing.wait_all_tasks_blocked()
        assert reactor.statistics().parked == 1
        scope.cancel()  # the leader leaves; the driver must take over polling
        await trio.testing.wait_all_tasks_blocked()
        assert reactor.statistics().parked == 1
        assert reactor._leader is reactor._driver
        await a2.send_all(b"to the follower")
    assert got == [b"to the follower"]
    # Nobody is parked any more: the driver goes idle, and the next task to park leads.
    await trio.testing.wait_all_tasks_blocked()
    assert reactor._leader is None and reactor._driver_idle
    async with trio.open_nursery() as nursery:
        nursery.start_soon(read_into, b1, got)
        await trio.testing.wait_all_tasks_blocked()
        assert reactor._leader is not None and reactor._leader is not reactor._driver
        await a1.send_all(b"solo again")
    assert got == [b"to the follower", b"solo again"]
    for s in (a1, b1, a2, b2):
        await s.aclose()


async def test_an_accept_loop_never_leads() -> None:
    """A listener waits through Trio, so the one connection's task polls for itself."""
    reactor = current_reactor()
    assert isinstance(reactor, EpollReactor)
    listener = TcpListener.bind("127.0.0.1", 0)
    port = listener.port
    async with trio.open_nursery() as nursery:
        nursery.start_soon(serve_echo, listener, nursery)
        await trio.testing.wait_all_tasks_blocked()
        assert reactor._leader is None  # the accept loop is parked, but not in the reactor
        client = await TcpStream.connect("127.0.0.1", port)
        await client.send_all(b"ping")
        assert await client.receive_some() == b"ping"
        await trio.testing.wait_all_tasks_blocked()
        # In the reactor now: the echo handler only (the client is not reading).
        in_reactor = [*reactor._parked, reactor._leader]
        assert not any(task is not None and "serve_echo" in task.name for task in in_reactor)
        assert any(task is not None and "echo_once" in task.name for task in in_reactor)
        await client.aclose()
        nursery.cancel_scope.cancel()
    await listener.aclose()


async def leader_then_cancelled(stream: TcpStream, scope: trio.CancelScope) -> None:
    with scope:
        await stream.receive_some()


async def read_into(stream: TcpStream, out: list[bytes]) -> None:
    out.append(await stream.receive_some())


async def test_many_parked_readers_each_get_their_own_data() -> None:
    pairs = [await connected_pair() for _ in range(20)]
    got: dict[int, bytes] = {}

    async def reader(i: int, stream: TcpStream) -> None:
        got[i] = await stream.receive_some()

    async with trio.open_nursery() as nursery:
        for i, (_, server) in enumerate(pairs):
            nursery.start_soon(reader, i, server)
        await trio.testing.wait_all_tasks_blocked()
        for i, (client, _) in reversed(list(enumerate(pairs))):
            await client.send_all(b"%d" % i)
    assert got == {i: b"%d" % i for i in range(20)}
    for client, server in pairs:
        await client.aclose()
        await server.aclose()


async def test_close_wakes_a_parked_reader_with_closed_error() -> None:
    a, b = await connected_pair()
    async with trio.open_nursery() as nursery:

        async def reader() -> None:
            with pytest.raises(trio.ClosedResourceError):
                await b.receive_some()

        nursery.start_soon(reader)
        await trio.testing.wait_all_tasks_blocked()
        await b.aclose()
    await a.aclose()


async def test_closing_the_leaders_socket_wakes_the_leader() -> None:
    a, b = await connected_pair()
    c, d = await connected_pair()
    outcome: list[str] = []

    async def leader() -> None:
        try:
            await b.receive_some()
        except trio.ClosedResourceError:
            outcome.append("leader closed")

    async def follower() -> None:
        outcome.append((await d.receive_some()).decode())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(leader)
        await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(follower)
        await trio.testing.wait_all_tasks_blocked()
        await b.aclose()  # wakes the leader through the reactor's eventfd
        await trio.testing.wait_all_tasks_blocked()
        await c.send_all(b"follower still served")
    assert outcome == ["leader closed", "follower still served"]
    for s in (a, c, d):
        await s.aclose()


async def test_fd_reuse_after_close_never_wakes_the_old_owner() -> None:
    reactor = current_reactor()
    a, b = await connected_pair()
    old_fd = b.socket.fileno()
    old_reg = b._reg
    await b.aclose()
    # The kernel hands out the lowest free fd: the next socket reuses b's number.
    x, y = socket.socketpair()
    try:
        assert x.fileno() == old_fd or y.fileno() == old_fd
        reused = UnixStream(x if x.fileno() == old_fd else y)
        other = y if reused.socket is x else x
        assert reactor._regs[old_fd] is reused._reg  # type: ignore[union-attr]
        assert old_reg.closed and old_reg is not reused._reg
        await a.send_all(b"to the old peer, must not reach the new socket")
        other.send(b"for the new owner")
        assert await reused.receive_some() == b"for the new owner"
        await reused.aclose()
    finally:
        other.close()
        await a.aclose()


async def test_peer_reset_mid_read_is_broken_resource() -> None:
    a, b = await connected_pair()
    async with trio.open_nursery() as nursery:

        async def reader() -> None:
            with pytest.raises(trio.BrokenResourceError, match="reset"):
                await b.receive_some()

        nursery.start_soon(reader)
        await trio.testing.wait_all_tasks_blocked()
        a.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        a.close()  # RST
    await b.aclose()


async def test_data_then_reset_is_not_a_hang() -> None:
    """Data followed at once by a reset: the reader gets the data, then a clear error."""
    a, b = await connected_pair()
    outcome: list[object] = []

    async def reader() -> None:
        try:
            while data := await b.receive_some():
                outcome.append(data)
        except trio.BrokenResourceError:
            outcome.append("broken")
        else:
            outcome.append("eof")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(reader)
        await trio.testing.wait_all_tasks_blocked()
        a.socket.sendall(b"partial")
        a.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        a.close()  # RST right behind the data
    # Linux may drop the unread data on reset; either way the reader ends, never hangs.
    assert outcome[-1] in ("broken", "eof")
    assert all(item == b"partial" for item in outcome[:-1])
    await b.aclose()


async def test_half_close() -> None:
    a, b = await connected_pair()
    await a.send_all(b"request")
    await a.send_eof()
    assert await b.receive_some() == b"request"
    assert await b.receive_some() == b""
    await b.send_all(b"response after the peer's EOF")
    assert await a.receive_some() == b"response after the peer's EOF"
    with pytest.raises(trio.ClosedResourceError):
        await a.send_all(b"more")
    await a.aclose()
    await b.aclose()


async def test_accept_batch_drains_the_queue_at_once() -> None:
    listener = TcpListener.bind("127.0.0.1", 0)
    clients = [socket.create_connection(("127.0.0.1", listener.port)) for _ in range(100)]
    try:
        first = await listener.accept_batch(max_batch=64)
        second = await listener.accept_batch(max_batch=64)
        assert len(first) == 64
        assert len(second) == 36
        for stream in first + second:
            await stream.aclose()
    finally:
        for c in clients:
            c.close()
        await listener.aclose()


async def test_reactor_statistics_count_registrations() -> None:
    reactor = current_reactor()
    before = reactor.statistics().registered
    a, b = await connected_pair()
    assert reactor.statistics().registered == before + 2
    await a.aclose()
    await b.aclose()
    assert reactor.statistics().registered == before


async def test_reactor_is_closed_with_its_runtime() -> None:
    async with runtime.open_runtime(runtime.RuntimeConfig(handle_signals=False)):
        reactor = current_reactor()
        assert isinstance(reactor, EpollReactor)
        epoll = reactor._epoll
    assert epoll.closed


async def test_udp_round_trip() -> None:
    async with UdpSocket.bind() as server, UdpSocket.bind() as client:
        await client.send_to(b"ping", server.address)
        data, sender = await server.recv_from()
        assert data == b"ping"
        await server.send_to(b"pong", sender)
        assert (await client.recv_from())[0] == b"pong"


async def test_unix_listener_and_stale_socket(tmp_path: os.PathLike[str]) -> None:
    path = os.path.join(tmp_path, "sock")
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(path)
    stale.close()  # a dead server's file
    listener = UnixListener.bind(path)
    client = await UnixStream.connect(path)
    server = await listener.accept()
    await client.send_all(b"over unix")
    assert await server.receive_some() == b"over unix"
    with pytest.raises(OSError, match="live listener"):
        UnixListener.bind(path)  # probes with a connect, which the live listener sees
    not_a_socket = os.path.join(tmp_path, "file")
    with open(not_a_socket, "w"):
        pass
    with pytest.raises(OSError, match="not a socket"):
        UnixListener.bind(not_a_socket)
    for s in (client, server, listener):
        await s.aclose()


async def test_receive_is_not_a_schedule_point_when_data_is_ready() -> None:
    a, b = await connected_pair()
    await a.send_all(b"x" * 10)
    await trio.testing.wait_all_tasks_blocked()
    with trio.testing.assert_no_checkpoints():
        pass
    task = trio.lowlevel.current_task()
    before = task._schedule_points  # type: ignore[attr-defined]
    assert await b.receive_some() == b"x" * 10
    assert task._schedule_points == before  # type: ignore[attr-defined]
    # A short read took everything: the next receive parks without an EAGAIN recv first.
    assert not b._reg.readiness & READ
    await a.aclose()
    await b.aclose()


async def test_data_and_fin_together_still_end_the_stream() -> None:
    """The FIN that arrives with the last data raises no edge of its own: not lost."""
    a, b = await connected_pair()
    got: list[bytes] = []

    async def reader() -> None:
        while data := await b.receive_some():
            got.append(data)
        got.append(b"<eof>")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(reader)
        await trio.testing.wait_all_tasks_blocked()
        a.socket.sendall(b"last words")  # data, then FIN, before the reader runs again
        a.socket.shutdown(socket.SHUT_WR)
    assert got == [b"last words", b"<eof>"]
    await a.aclose()
    await b.aclose()


async def test_data_after_a_short_read_wakes_the_reader() -> None:
    a, b = await connected_pair()
    await a.send_all(b"one")
    await trio.testing.wait_all_tasks_blocked()
    assert await b.receive_some() == b"one"
    assert not b._reg.readiness & READ
    async with trio.open_nursery() as nursery:

        async def later() -> None:
            await trio.testing.wait_all_tasks_blocked()
            await a.send_all(b"two")

        nursery.start_soon(later)
        assert await b.receive_some() == b"two"
    await a.aclose()
    await b.aclose()


async def test_end_input_after_a_short_read_returns_eof() -> None:
    a, b = await connected_pair()
    await a.send_all(b"req")
    await trio.testing.wait_all_tasks_blocked()
    assert await b.receive_some() == b"req"
    b.end_input()
    assert await b.receive_some() == b""
    await a.aclose()
    await b.aclose()
