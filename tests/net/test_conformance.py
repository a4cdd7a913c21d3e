"""Trio's own conformance suites, which we did not write, run against every stream type.

They assert Trio's checkpoint contract (every operation a schedule point), so they run with a
cooperative budget of 1, the setting that gives Trio's behaviour back.
"""

from __future__ import annotations

import os
import select
import socket
import ssl
import sys

import pytest
import trio
import trio.testing
import trustme

from runtime.net import TcpListener, TcpStream, UnixStream
from runtime.net._reactor import EpollReactor, FallbackReactor, Reactor, current_reactor
from runtime.net._stream import SocketStream

pytestmark = pytest.mark.usefixtures("trio_checkpoints")

FORCED_FALLBACK = os.environ.get("TRIO_RUNTIME_REACTOR", "") == "trio"
HAS_EPOLL = hasattr(select, "epoll")
# The streams run on both reactors in every run: the epoll one (where this run has it) and a
# FallbackReactor made for the test.
KINDS = [
    pytest.param(
        "epoll",
        marks=pytest.mark.skipif(
            FORCED_FALLBACK or not HAS_EPOLL,
            reason="no epoll reactor in this run (TRIO_RUNTIME_REACTOR=trio or not Linux)",
        ),
    ),
    "fallback",
]


def _reactor(kind: str) -> Reactor:
    if kind == "fallback":
        return FallbackReactor()
    reactor = current_reactor()
    assert isinstance(reactor, EpollReactor)
    return reactor


def _fill(sock: socket.socket) -> None:
    for chunk in (b"x" * 65536, b"x"):  # small sends can still fit the tail of the last skb
        try:
            while True:
                sock.send(chunk)
        except BlockingIOError:
            pass


def _stuck(sock: socket.socket) -> bool:
    poller = select.poll()
    poller.register(sock, select.POLLOUT)
    if poller.poll(0):
        return False
    try:
        sock.send(b"x")
    except BlockingIOError:
        return True
    return False


def _clog_both(a: SocketStream, b: SocketStream) -> None:
    """Fill both directions until neither side can send a single byte.

    Filling one side is not enough: data sent the other way carries ACKs that free space in
    the first side's send buffer, so repeat until both are stuck.
    """
    while True:
        _fill(a.socket)
        _fill(b.socket)
        if _stuck(a.socket) and _stuck(b.socket):
            return


SMALL_BUFFER = 4096


async def _tcp_pair(kind: str) -> tuple[TcpStream, TcpStream]:
    """A connected pair with small kernel buffers, fixed before the handshake.

    The receive window is negotiated at connect time; with default (auto-tuned) buffers the
    window keeps growing after a clog and the "clogged" sender becomes writable again.
    """
    reactor = _reactor(kind)
    listener = TcpListener.bind("127.0.0.1", 0)
    listener.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SMALL_BUFFER)
    client_sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    client_sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SMALL_BUFFER)
    client_sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SMALL_BUFFER)
    client_sock.connect(("127.0.0.1", listener.port))
    server = await listener.accept()
    server.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SMALL_BUFFER)
    await listener.aclose()
    client = TcpStream(client_sock, reactor=reactor)
    return client, server


async def _unix_pair(kind: str) -> tuple[UnixStream, UnixStream]:
    reactor = _reactor(kind)
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    return UnixStream(a, reactor=reactor), UnixStream(b, reactor=reactor)


@pytest.mark.parametrize("kind", KINDS)
async def test_tcp_stream_is_half_closeable(kind: str) -> None:
    async def maker() -> tuple[TcpStream, TcpStream]:
        return await _tcp_pair(kind)

    async def clogged() -> tuple[TcpStream, TcpStream]:
        a, b = await _tcp_pair(kind)
        _clog_both(a, b)
        return a, b

    await trio.testing.check_half_closeable_stream(maker, clogged)


@pytest.mark.parametrize("kind", KINDS)
async def test_unix_stream_is_half_closeable(kind: str) -> None:
    async def maker() -> tuple[UnixStream, UnixStream]:
        return await _unix_pair(kind)

    async def clogged() -> tuple[UnixStream, UnixStream]:
        a, b = await _unix_pair(kind)
        _clog_both(a, b)
        return a, b

    await trio.testing.check_half_closeable_stream(maker, clogged)


async def test_tls_over_tcp_stream_is_a_two_way_stream() -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("localhost")
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server_ctx)
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)

    async def maker() -> tuple[trio.SSLStream[TcpStream], trio.SSLStream[TcpStream]]:
        raw_client, raw_server = await _tcp_pair("fallback" if FORCED_FALLBACK else "epoll")
        client = trio.SSLStream(raw_client, client_ctx, server_hostname="localhost")
        server = trio.SSLStream(raw_server, server_ctx, server_side=True)
        return client, server

    # No clogged maker: clogging needs raw bytes written under the TLS layer, which would
    # corrupt the record stream. The clogged checks run on the TcpStream underneath above.
    await trio.testing.check_two_way_stream(maker, None)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="epoll is Linux only")
@pytest.mark.skipif(FORCED_FALLBACK, reason="TRIO_RUNTIME_REACTOR=trio selects the fallback")
async def test_epoll_is_the_backend_on_linux() -> None:
    assert isinstance(current_reactor(), EpollReactor)
    assert current_reactor().statistics().backend == "epoll"


@pytest.mark.skipif(not FORCED_FALLBACK, reason="only when TRIO_RUNTIME_REACTOR=trio is set")
async def test_trio_runtime_reactor_trio_selects_the_fallback() -> None:
    assert isinstance(current_reactor(), FallbackReactor)
    assert current_reactor().statistics().backend == "trio"
