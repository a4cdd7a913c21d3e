"""Regression tests for server bugs found by trying the core adversarially.

Each test here failed before its fix. They cover: the connection cap across several listeners,
the idle timeout during a long write that makes progress, a peer reset inside a handler's
nursery, every errno accept can raise, and the fallback reactor's drain.
"""

from __future__ import annotations

import errno
import functools
import logging
import socket
import struct
from collections.abc import Iterator, Sequence

import pytest
import trio
import trio.testing

import runtime
from runtime.net import (
    RESOURCE_ACCEPT_ERRORS,
    TRANSIENT_ACCEPT_ERRORS,
    Connection,
    Server,
    ServerConfig,
    TcpListener,
    TcpStream,
    UnixStream,
    serve,
)
from runtime.net._reactor import FallbackReactor
from runtime.testing import MemoryConnection, MemoryListener


async def echo(stream: Connection) -> None:
    while data := await stream.receive_some():
        await stream.send_all(data)


# -- bug 1: the cap holds across listeners, and every listener resumes ----------------------


async def test_the_cap_holds_across_two_listeners_and_both_resume() -> None:
    releases: list[trio.Event] = []
    peak = 0

    async def hold(stream: Connection) -> None:
        nonlocal peak
        peak = max(peak, server.statistics().active)
        release = trio.Event()
        releases.append(release)
        await release.wait()
        await stream.send_all(b"served")

    a, b = TcpListener.bind(), TcpListener.bind()
    server = Server(hold, [a, b], ServerConfig(max_connections=1))
    replies: list[bytes] = []

    async def client(port: int) -> None:
        stream = await TcpStream.connect("127.0.0.1", port)
        async with stream:
            replies.append(await stream.receive_some())

    async with trio.open_nursery() as nursery:
        await nursery.start(server.serve)
        async with trio.open_nursery() as clients:
            clients.start_soon(client, a.port)
            await trio.testing.wait_all_tasks_blocked()
            assert len(releases) == 1
            # The cap is full. Connects to both listeners wait in the kernel's backlog.
            clients.start_soon(client, b.port)
            clients.start_soon(client, a.port)
            await trio.testing.wait_all_tasks_blocked()
            assert server.statistics().active == 1
            assert len(releases) == 1, "a listener let a connection in over the cap"
            for expected in (2, 3):
                releases[-1].set()
                with trio.fail_after(5):
                    while len(releases) < expected:
                        await trio.testing.wait_all_tasks_blocked()
                        await trio.sleep(0)  # the next accept needs a scheduler pass
                assert server.statistics().active == 1
            releases[-1].set()
        server.drain()
    assert peak == 1
    assert replies == [b"served"] * 3


async def test_memory_listeners_share_the_cap_too() -> None:
    started = 0
    release = trio.Event()

    async def hold(stream: Connection) -> None:
        nonlocal started
        started += 1
        await release.wait()

    listeners = [MemoryListener(), MemoryListener()]
    server = Server(hold, listeners, ServerConfig(max_connections=3, accept_batch=8))
    clients: list[MemoryConnection] = []
    async with trio.open_nursery() as nursery:
        await nursery.start(server.serve)
        for i in range(8):
            clients.append(await listeners[i % 2].connect())
        await trio.testing.wait_all_tasks_blocked()
        stats = server.statistics()
        assert started == 3
        assert stats.active == 3
        assert stats.active + stats.pending <= 3 + 8  # the rest wait in the backlogs
        release.set()
        with trio.fail_after(5):
            while started < 8:
                await trio.testing.wait_all_tasks_blocked()
                await trio.sleep(0)
        server.drain()
    assert server.statistics().accepted == 8


# -- bug 4: a long write that makes progress is never idle ----------------------------------


async def test_idle_timeout_spares_a_large_write_to_a_steady_reader(
    autojump_clock: trio.abc.Clock,
) -> None:
    payload = b"x" * (8 << 20)
    ours, theirs = UnixStream.pair()
    listener = _OneShotListener(ours)
    received = 0

    async def send_big(stream: Connection) -> None:
        await stream.send_all(payload)

    config = ServerConfig(idle_timeout=0.3)
    async with trio.open_nursery() as nursery:
        server = await nursery.start(functools.partial(serve, config=config), send_big, [listener])
        while chunk := await theirs.receive_some(65536):
            received += len(chunk)
            await trio.sleep(0.05)  # a slow but steady reader: 64 KiB every 50 ms
        server.drain()
    assert received == len(payload)
    assert server.statistics().idle_closed == 0
    await theirs.aclose()


# -- bug 5: a reset is a normal end, also inside a handler's nursery -----------------------


def _reset(stream: TcpStream) -> None:
    stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    stream.close()


async def test_a_reset_inside_a_handler_nursery_is_broken_not_errored(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="runtime.net.server")
    listener = TcpListener.bind()
    ready = trio.Event()

    async def chatty(stream: Connection) -> None:
        async def writer() -> None:
            ready.set()
            while True:
                await stream.send_all(b"tick" * 4096)

        async with trio.open_nursery() as nursery:  # like the chat example
            nursery.start_soon(writer)
            while await stream.receive_some():
                pass
            raise trio.BrokenResourceError("peer went away")  # both tasks see the reset

    async with trio.open_nursery() as nursery:
        server = await nursery.start(serve, chatty, [listener])
        client = await TcpStream.connect("127.0.0.1", listener.port)
        client_port = client.local_address[1]  # type: ignore[index]
        await ready.wait()
        await client.receive_some(10)
        _reset(client)
        with trio.fail_after(5):
            await server.wait_idle()
        server.drain()
    stats = server.statistics()
    assert (stats.broken, stats.errored) == (1, 0)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    lost = [r.getMessage() for r in caplog.records if "connection lost" in r.getMessage()]
    assert len(lost) == 1
    assert f"127.0.0.1:{client_port}" in lost[0]  # the address captured at accept


async def test_connection_reset_error_from_a_handler_counts_as_broken() -> None:
    listener = MemoryListener()

    async def handler(stream: Connection) -> None:
        raise ExceptionGroup("two", [ConnectionResetError(), BrokenPipeError()])

    async with trio.open_nursery() as nursery:
        server = await nursery.start(serve, handler, [listener])
        client = await listener.connect()
        assert await client.receive_some() == b""
        await trio.testing.wait_all_tasks_blocked()
        server.drain()
    assert (server.statistics().broken, server.statistics().errored) == (1, 0)


async def test_a_real_bug_inside_a_group_is_still_an_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, logger="runtime.net.server")
    listener = MemoryListener()

    async def handler(stream: Connection) -> None:
        raise ExceptionGroup("mixed", [ConnectionResetError(), KeyError("bug")])

    async with trio.open_nursery() as nursery:
        server = await nursery.start(serve, handler, [listener])
        client = await listener.connect()
        assert await client.receive_some() == b""
        await trio.testing.wait_all_tasks_blocked()
        server.drain()
    assert server.statistics().errored == 1
    assert "127.0.0.2:" in caplog.records[0].getMessage()


# -- bug 9: nothing an accept raises stops the server --------------------------------------


class _ScriptedListener:
    """Raises the scripted errors one per call, then hands out one connection per call."""

    def __init__(self, errors: Sequence[BaseException], connections: list[Connection]) -> None:
        self.errors = list(errors)
        self.connections = connections
        self.calls: list[float] = []
        self.closed = trio.Event()

    async def accept_batch(self, max_batch: int = 64) -> list[Connection]:
        self.calls.append(trio.current_time())
        if self.errors:
            raise self.errors.pop(0)
        if self.connections:
            return [self.connections.pop(0)]
        await self.closed.wait()
        raise trio.ClosedResourceError

    async def aclose(self) -> None:
        self.closed.set()
        await trio.lowlevel.checkpoint()


class _OneShotListener(_ScriptedListener):
    def __init__(self, connection: Connection) -> None:
        super().__init__([], [connection])


_EVERY_ERRNO = sorted(TRANSIENT_ACCEPT_ERRORS | RESOURCE_ACCEPT_ERRORS | {errno.EBADF})


@pytest.mark.parametrize("code", _EVERY_ERRNO, ids=errno.errorcode.get)
async def test_every_accept_errno_from_a_listener_leaves_the_server_serving(
    code: int, autojump_clock: trio.abc.Clock
) -> None:
    ours, theirs = UnixStream.pair()
    listener = _ScriptedListener([OSError(code, "injected")] * 3, [ours])
    async with trio.open_nursery() as nursery:
        server = await nursery.start(serve, echo, [listener])
        await theirs.send_all(b"still here")
        assert await theirs.receive_some() == b"still here"
        stats = server.statistics()
        if code in TRANSIENT_ACCEPT_ERRORS:
            assert (stats.accept_skipped, stats.accept_errors) == (3, 0)
        else:
            assert (stats.accept_skipped, stats.accept_errors) == (0, 3)
        await theirs.aclose()
        server.drain()


async def test_an_unexpected_exception_from_a_listener_is_logged_and_survived(
    autojump_clock: trio.abc.Clock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="runtime.net.server")
    ours, theirs = UnixStream.pair()
    listener = _ScriptedListener([RuntimeError("listener bug")], [ours])
    async with trio.open_nursery() as nursery:
        server = await nursery.start(serve, echo, [listener])
        await theirs.send_all(b"ok")
        assert await theirs.receive_some() == b"ok"
        await theirs.aclose()
        server.drain()
    assert caplog.records[0].exc_info is not None


class _FailingSocket(socket.socket):
    """A listening socket whose accept() raises ``code`` the first ``times`` calls."""

    code = errno.ECONNABORTED
    times = 1

    def accept(self) -> tuple[socket.socket, object]:
        if self.times:
            self.times -= 1
            raise OSError(self.code, "injected")
        return super().accept()


def _failing_listener(code: int, times: int) -> TcpListener:
    sock = _FailingSocket(socket.AF_INET, socket.SOCK_STREAM)
    sock.code, sock.times = code, times
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    return TcpListener(sock)


@pytest.mark.parametrize("code", _EVERY_ERRNO, ids=errno.errorcode.get)
async def test_every_accept_errno_from_the_socket_leaves_the_server_serving(
    code: int, autojump_clock: trio.abc.Clock
) -> None:
    listener = _failing_listener(code, 2)
    async with trio.open_nursery() as nursery:
        server = await nursery.start(serve, echo, [listener])
        client = await TcpStream.connect("127.0.0.1", listener.port)
        await client.send_all(b"still here")
        assert await client.receive_some() == b"still here"
        await client.aclose()
        server.drain()
    stats = server.statistics()
    if code in TRANSIENT_ACCEPT_ERRORS:
        assert listener.skipped_errors == 2 and stats.accept_errors == 0
    else:
        assert stats.accept_errors == 2


async def test_a_persistent_enobufs_backs_off_instead_of_spinning(
    autojump_clock: trio.abc.Clock,
) -> None:
    listener = _failing_listener(errno.ENOBUFS, 10**9)
    config = ServerConfig(accept_backoff=0.1, accept_backoff_max=1.0)
    ticks = 0

    async def neighbour() -> None:  # starves if the accept loop never yields
        nonlocal ticks
        while True:
            ticks += 1
            await trio.sleep(0.5)

    async with trio.open_nursery() as nursery:
        server = await nursery.start(functools.partial(serve, config=config), echo, [listener])
        nursery.start_soon(neighbour)
        # A client is waiting, so the socket is readable and every accept fails.
        pending = socket.create_connection(("127.0.0.1", listener.port))
        await trio.sleep(10)
        errors = server.statistics().accept_errors
        server.drain()
        nursery.cancel_scope.cancel()
    pending.close()
    assert 5 <= errors <= 16  # 0.1, 0.2, 0.4, 0.8, then 1 s apart for 10 s
    assert ticks >= 19


async def test_a_persistent_transient_error_still_yields(autojump_clock: trio.abc.Clock) -> None:
    listener = _failing_listener(errno.ECONNABORTED, 10**9)
    ticks = 0

    async def neighbour() -> None:
        nonlocal ticks
        while ticks < 50:
            ticks += 1
            await trio.sleep(0)

    async with trio.open_nursery() as nursery:
        server = await nursery.start(serve, echo, [listener])
        pending = socket.create_connection(("127.0.0.1", listener.port))
        with trio.fail_after(5):
            await neighbour()
        server.drain()
    pending.close()
    assert ticks == 50


# -- bug 10: the fallback reactor finishes a drain -----------------------------------------


def _fallback_listener(reactor: FallbackReactor) -> TcpListener:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    return TcpListener(sock, reactor=reactor)


async def test_the_fallback_reactor_wakes_an_idle_reader_at_drain(
    autojump_clock: trio.abc.Clock,
) -> None:
    listener = _fallback_listener(FallbackReactor())
    async with trio.open_nursery() as nursery:
        server = await nursery.start(serve, echo, [listener])
        client = await TcpStream.connect("127.0.0.1", listener.port)
        await client.send_all(b"hello")
        assert await client.receive_some() == b"hello"
        await trio.testing.wait_all_tasks_blocked()
        assert server.statistics().active == 1
        with trio.fail_after(1):  # the idle client's handler must see end-of-input
            server.drain()
            assert await client.receive_some() == b""  # the server's half-close
            await client.aclose()
            await server.wait_idle()


# -- bug 13: a shutdown takes at most its grace, lingering close included -------------------


@pytest.mark.parametrize("how", ["grace expires", "second cancel"])
async def test_lingering_close_stays_within_the_shutdown_grace(
    how: str, autojump_clock: trio.abc.Clock
) -> None:
    listener = TcpListener.bind()
    config = ServerConfig(linger=30.0)  # far longer than the grace
    # The client reads but never closes: the server's lingering close would wait it out.
    async with runtime.open_runtime(runtime.RuntimeConfig(handle_signals=False)) as rt:
        runtime.spawn(functools.partial(serve, config=config), echo, [listener])
        await trio.testing.wait_all_tasks_blocked()
        client = await TcpStream.connect("127.0.0.1", listener.port)
        await client.send_all(b"x")
        assert await client.receive_some() == b"x"
        start = trio.current_time()
        rt.shutdown(grace=2.0)
        assert await client.receive_some() == b""  # drained; now the server lingers
        if how == "second cancel":
            await trio.sleep(0.5)
            rt.cancel()
    elapsed = trio.current_time() - start
    await client.aclose()
    limit = 2.0 if how == "grace expires" else 0.5
    assert elapsed == pytest.approx(limit, abs=0.05)


# -- the idle cut costs no scope per connection (spliced in when it fires) ------------------


@pytest.fixture(params=["spliced", "entered"])
def scope_mode(request: pytest.FixtureRequest) -> Iterator[str]:
    from runtime.rt import _scope

    before = _scope.FAST
    _scope.use_fast_path(request.param == "spliced")
    yield request.param
    _scope.use_fast_path(before)


async def test_idle_cut_in_both_scope_modes_leaves_neighbours_alone(
    scope_mode: str, autojump_clock: trio.abc.Clock
) -> None:
    listener = MemoryListener()
    ended: list[str] = []

    async def handler(conn: Connection) -> None:
        try:
            async with trio.open_nursery() as nursery:  # the cut reaches inside a nursery
                nursery.start_soon(trio.sleep_forever)
                while data := await conn.receive_some():
                    await conn.send_all(data)
        finally:
            ended.append("ended")

    config = ServerConfig(idle_timeout=1.0)
    async with trio.open_nursery() as nursery:
        server = await nursery.start(functools.partial(serve, config=config), handler, [listener])
        quiet = await listener.connect()
        busy = await listener.connect()
        for _ in range(10):  # busy keeps talking for 5 s; quiet says nothing
            await busy.send_all(b"x")
            assert await busy.receive_some() == b"x"
            await trio.sleep(0.5)
        assert await quiet.receive_some() == b""  # cut after 1-2 s of silence
        stats = server.statistics()
        assert (stats.idle_closed, stats.active, stats.errored) == (1, 1, 0)
        await busy.send_all(b"still served")
        assert await busy.receive_some() == b"still served"
        server.drain()
    assert ended == ["ended", "ended"]


# -- a signal right after the listening line finds the server draining ----------------------


def test_a_sigterm_as_serve_starts_drains_and_returns() -> None:
    import signal

    async def main() -> str:
        listener = TcpListener.bind()
        server: Server[Connection] = Server(echo, [listener])
        async with trio.open_nursery() as nursery:
            await nursery.start(server.serve)
            # The signal arrives now, with no checkpoint since serve() reported it started.
            # (_on_signal is what the runtime's signal watcher calls.)
            runtime.current()._on_signal(signal.SIGTERM)
        return "drained"

    # Before the fix the server's drain watcher was a task of its own that might not have
    # run yet, and the signal then found nothing draining and cancelled everything (about
    # half the time); the registration is now synchronous.
    for _ in range(8):
        assert runtime.run(main, config=runtime.RuntimeConfig(handle_signals=False)) == "drained"


async def test_on_shutdown_calls_back_once_and_can_be_unregistered() -> None:
    calls: list[str] = []
    async with runtime.open_runtime(runtime.RuntimeConfig(handle_signals=False)) as rt:
        rt.on_shutdown(lambda: calls.append("a"))
        unregister = rt.on_shutdown(lambda: calls.append("b"))
        unregister()
        rt.shutdown(grace=1)
        rt.shutdown(grace=1)  # a second call does not call back again
        rt.on_shutdown(lambda: calls.append("late"))  # after the start: called at once
    assert calls == ["a", "late"]
