"""The reactor under the streams: many connections, parking, closing, resets, half-close."""

from __future__ import annotations

import os
import select
import socket
import struct

import pytest
import trio
import trio.testing

import runtime
from runtime.net import TcpListener, TcpStream, UdpSocket, UnixListener, UnixStream
from runtime.net._reactor import READ, EpollReactor, current_reactor

# The backend this run must get: epoll on Linux unless TRIO_RUNTIME_REACTOR=trio forces the
# fallback (CI runs the suite both ways).
EXPECTED_BACKEND = (
    "epoll"
    if hasattr(select, "epoll") and os.environ.get("TRIO_RUNTIME_REACTOR", "") != "trio"
    else "trio"
)

epoll_only = pytest.mark.skipif(
    EXPECTED_BACKEND != "epoll",
    reason="reads the epoll reactor's internals; this run uses the fallback reactor",
)


def epoll_reactor() -> EpollReactor:
    """The current reactor, which an ``epoll_only`` test knows to be the epoll one."""
    reactor = current_reactor()
    assert isinstance(reactor, EpollReactor)
    return reactor


async def echo_once(stream: TcpStream) -> None:
    async with stream:
        while data := await stream.receive_some():
            await stream.send_all(data)


async def serve_echo(listener: TcpListener, nursery: trio.Nursery) -> None:
    while True:
        for stream in await listener.accept_batch():
            nursery.start_soon(echo_once, stream)


@pytest.mark.open_files(2000)  # both ends of every connection are in this process
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
    assert stats.backend == EXPECTED_BACKEND
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
    reactor = current_reactor()
    got: list[bytes] = []
    with trio.CancelScope() as scope:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(read_into, b, got)
            await trio.testing.wait_all_tasks_blocked()
            assert got == []  # blocked: there was nothing to read
            if isinstance(reactor, EpollReactor):  # alone, so it leads (followers are parked)
                assert reactor._leader_reg is b._reg
                assert reactor.statistics().parked == 0
            scope.cancel()
    assert scope.cancelled_caught
    assert got == []
    if isinstance(reactor, EpollReactor):
        assert reactor._leader is None and reactor._leader_reg is None
    await a.send_all(b"after cancel")
    assert await b.receive_some() == b"after cancel"
    await a.aclose()
    await b.aclose()


@epoll_only
async def test_leader_cancelled_hands_off_to_the_driver() -> None:
    a1, b1 = await connected_pair()
    a2, b2 = await connected_pair()
    got: list[bytes] = []
    scope = trio.CancelScope()
    reactor = epoll_reactor()
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


@epoll_only
async def test_an_accept_loop_never_leads() -> None:
    """A listener waits through Trio, so the one connection's task polls for itself."""
    reactor = epoll_reactor()
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


def socketpair_on_fd(fd: int, attempts: int = 256) -> tuple[socket.socket, socket.socket]:
    """A connected socketpair one of whose ends has the file descriptor number ``fd``.

    The kernel hands out the lowest free number, so keep pairs open (filling lower holes)
    until ``fd`` comes up; the spares are closed again. Returns (the end on ``fd``, its peer).
    """
    spares: list[socket.socket] = []
    try:
        for _ in range(attempts):
            x, y = socket.socketpair()
            if x.fileno() == fd:
                return x, y
            if y.fileno() == fd:
                return y, x
            spares += (x, y)
        pytest.fail(f"fd {fd} was not handed out again within {attempts} socketpairs")
    finally:
        for spare in spares:
            spare.close()


@pytest.mark.parametrize("role", ["leader", "follower"])
async def test_a_reused_fd_number_never_wakes_the_old_waiter(role: str) -> None:
    """A task parked on a socket that closes, while a new socket takes over its fd number.

    The old waiter must end with ClosedResourceError (not with the new socket's data, not
    with EOF, not hanging), and the new socket's events must reach the new stream only.
    """
    reactor = current_reactor()
    a, b = await connected_pair()
    c, d = await connected_pair()  # d: a bystander reader that leads when b must follow
    old_outcome: list[object] = []
    new_got: list[bytes] = []
    bystander_got: list[bytes] = []

    async def old_waiter() -> None:
        try:
            old_outcome.append(await b.receive_some())
        except (trio.ClosedResourceError, trio.BrokenResourceError) as exc:
            old_outcome.append(type(exc))

    with trio.fail_after(10):  # a hang guard only: every step below is event-driven
        async with trio.open_nursery() as nursery:
            if role == "follower":
                nursery.start_soon(read_into, d, bystander_got)
                await trio.testing.wait_all_tasks_blocked()
            nursery.start_soon(old_waiter)
            await trio.testing.wait_all_tasks_blocked()
            if isinstance(reactor, EpollReactor):
                if role == "leader":
                    assert reactor._leader_reg is b._reg
                else:
                    assert b._reg.waiters[READ] is not None
                    assert reactor._leader_reg is d._reg
            old_fd = b.socket.fileno()
            old_reg = b._reg
            # No checkpoint from here to the wait below: the old waiter cannot run before its
            # fd number belongs to a new, readable socket.
            b.close()
            new_sock, new_peer = socketpair_on_fd(old_fd)
            reused = UnixStream(new_sock)
            assert reused.socket.fileno() == old_fd
            new_peer.send(b"for the new owner")  # the reused fd number is readable now
            a.socket.send(b"for the old owner, who is gone")
            await trio.testing.wait_all_tasks_blocked()
            assert old_outcome == [trio.ClosedResourceError]
            assert old_reg.closed and old_reg is not reused._reg
            if isinstance(reactor, EpollReactor):
                assert reactor._regs[old_fd] is reused._reg
            assert await reused.receive_some() == b"for the new owner"
            # Parked on the reused number now: the next edge wakes the new stream's reader.
            nursery.start_soon(read_into, reused, new_got)
            await trio.testing.wait_all_tasks_blocked()
            assert new_got == []
            new_peer.send(b"second, through the reactor")
            await trio.testing.wait_all_tasks_blocked()
            assert new_got == [b"second, through the reactor"]
            await c.send_all(b"bystander")
    assert old_outcome == [trio.ClosedResourceError]
    assert bystander_got == ([b"bystander"] if role == "follower" else [])
    new_peer.close()
    for s in (reused, a, c, d):
        await s.aclose()


@epoll_only
async def test_a_cancelled_follower_leaves_no_trace() -> None:
    reactor = epoll_reactor()
    a1, b1 = await connected_pair()
    a2, b2 = await connected_pair()
    got: list[bytes] = []
    follower_scope = trio.CancelScope()

    async def follower() -> None:
        with follower_scope:
            got.append(await b2.receive_some())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(read_into, b1, got)  # the leader
        await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(follower)
        await trio.testing.wait_all_tasks_blocked()
        assert reactor.statistics().parked == 1
        assert b2._reg.waiters[READ] is not None
        follower_scope.cancel()
        await trio.testing.wait_all_tasks_blocked()
        assert follower_scope.cancelled_caught
        assert reactor.statistics().parked == 0
        assert b2._reg.waiters[READ] is None
        await a1.send_all(b"leader")
    assert got == [b"leader"]
    await a2.send_all(b"after the cancel")  # nothing was consumed and nobody is busy on b2
    assert await b2.receive_some() == b"after the cancel"
    for s in (a1, b1, a2, b2):
        await s.aclose()


def reset(stream: TcpStream) -> None:
    """Close ``stream`` with a TCP reset (SO_LINGER 0) instead of a FIN."""
    stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    stream.close()


async def test_peer_reset_mid_read_is_broken_resource() -> None:
    a, b = await connected_pair()
    async with trio.open_nursery() as nursery:

        async def reader() -> None:
            with pytest.raises(trio.BrokenResourceError, match="reset"):
                await b.receive_some()

        nursery.start_soon(reader)
        await trio.testing.wait_all_tasks_blocked()
        reset(a)
    await b.aclose()


async def test_data_then_reset_is_the_data_then_broken() -> None:
    """Data followed at once by a reset: the reader gets the data, then BrokenResourceError.

    Never a clean end of stream: a reader that took b"" for the peer's FIN would treat a
    connection that died mid-conversation as one that finished.
    """
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
        reset(a)  # RST right behind the data
    # Linux keeps the data that arrived before the reset; the reset itself is the error.
    assert outcome == [b"partial", "broken"]
    await b.aclose()


async def test_a_reset_seen_by_the_reader_after_it_was_quiet_is_broken() -> None:
    """The reset arrives while nobody is parked; the next receive still reports it."""
    a, b = await connected_pair()
    reset(a)
    await trio.lowlevel.wait_readable(b.socket)  # the kernel has taken the RST in
    with pytest.raises(trio.BrokenResourceError, match="reset"):
        await b.receive_some()
    await b.aclose()


async def test_a_reset_seen_first_by_send_all_is_not_an_eof_for_the_reader() -> None:
    """A handler with a writer and a reader on one connection: the writer hits the reset first.

    The kernel reports a reset once (reading ECONNRESET clears it); after that recv() says 0.
    The reader must still not see a clean end of stream: the stream remembers the error.
    """
    a, b = await connected_pair()
    reset(a)
    await trio.lowlevel.wait_readable(b.socket)  # the kernel has taken the RST in
    with pytest.raises(trio.BrokenResourceError, match="reset"):
        await b.send_all(b"reply to a peer that is gone")
    try:
        data = await b.receive_some()
    except trio.BrokenResourceError:
        data = None
    assert data is None, f"receive_some after a reset returned {data!r}, not BrokenResourceError"
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


@epoll_only
async def test_reactor_is_closed_with_its_runtime() -> None:
    async with runtime.open_runtime(runtime.RuntimeConfig(handle_signals=False)):
        reactor = epoll_reactor()
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
    task = trio.lowlevel.current_task()
    schedule_points = task._schedule_points  # type: ignore[attr-defined]
    cancel_points = task._cancel_points  # type: ignore[attr-defined]
    assert await b.receive_some() == b"x" * 10
    # Not a schedule point (it did not yield), but still a cancellation point.
    assert task._schedule_points == schedule_points  # type: ignore[attr-defined]
    assert task._cancel_points == cancel_points + 1  # type: ignore[attr-defined]
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
