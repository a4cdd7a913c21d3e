"""TLS through the Server: the same cap, idle timeout, handshake deadline and drain as TCP.

Every failure path ends with the transport closed: the reactor's count of registered sockets
is back where it started, and the server has no active connection.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio
import trio.testing
import trustme

from runtime.net import (
    Connection,
    Server,
    ServerConfig,
    TcpConnector,
    TcpListener,
    TcpStream,
    TlsConnection,
    TlsConnector,
    client_ssl_context,
    current_reactor,
    server_ssl_context,
)


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def server_ctx(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> ssl.SSLContext:
    chain = tmp_path_factory.mktemp("tls") / "chain.pem"
    ca.issue_cert("localhost", "127.0.0.1").private_key_and_cert_chain_pem.write_to_path(
        str(chain)
    )
    return server_ssl_context(str(chain), alpn=["echo/1"])


@pytest.fixture
def client_ctx(ca: trustme.CA, tmp_path: Path) -> ssl.SSLContext:
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    return client_ssl_context(str(ca_file), alpn=["echo/1"])


async def echo(conn: Connection) -> None:
    while data := await conn.receive_some():
        await conn.send_all(data)


class Running:
    def __init__(self, server: Server[Connection], listener: TcpListener) -> None:
        self.server = server
        self.port = listener.port


@pytest.fixture
async def tls_server(server_ctx: ssl.SSLContext) -> AsyncIterator[Running]:
    listener = TcpListener.bind()
    config = ServerConfig(handshake_timeout=2.0, idle_timeout=30.0)
    server: Server[Connection] = Server(echo, [listener], config, tls=server_ctx)
    async with trio.open_nursery() as nursery:
        await nursery.start(server.serve)
        yield Running(server, listener)
        server.drain()


def registered() -> int:
    return current_reactor().statistics().registered


async def settled(running: Running) -> None:
    with trio.fail_after(5):
        await running.server.wait_idle()
    await trio.testing.wait_all_tasks_blocked()


async def test_tls_round_trip_through_the_server(
    tls_server: Running, client_ctx: ssl.SSLContext
) -> None:
    conn = await TlsConnector(client_ctx).connect("127.0.0.1", tls_server.port)
    assert isinstance(conn, TlsConnection)
    assert conn.selected_alpn_protocol() == "echo/1"
    assert conn.peer_address == ("127.0.0.1", tls_server.port)
    await conn.send_all(b"secret")
    assert await conn.receive_some() == b"secret"
    await conn.aclose()
    await settled(tls_server)
    assert tls_server.server.statistics().tls_failed == 0


async def test_drain_over_tls_ends_with_close_notify(
    tls_server: Running, client_ctx: ssl.SSLContext
) -> None:
    conn = await TlsConnector(client_ctx).connect("127.0.0.1", tls_server.port)
    await conn.send_all(b"in flight")
    assert await conn.receive_some() == b"in flight"
    tls_server.server.drain()
    with trio.fail_after(5):
        assert await conn.receive_some() == b""  # a clean close_notify, not a ragged EOF
    await conn.aclose()
    await settled(tls_server)
    assert tls_server.server.statistics().broken == 0


async def _refused(running: Running, connector: TlsConnector[TcpStream]) -> None:
    before = registered()
    with pytest.raises(trio.BrokenResourceError):
        await connector.connect("127.0.0.1", running.port)
    await settled(running)
    assert running.server.statistics().tls_failed == 1
    assert registered() == before  # both transports are closed


async def test_untrusted_certificate_is_refused(tls_server: Running) -> None:
    stranger = client_ssl_context()
    trustme.CA().configure_trust(stranger)
    await _refused(tls_server, TlsConnector(stranger))


async def test_host_name_mismatch_is_refused(
    tls_server: Running, client_ctx: ssl.SSLContext
) -> None:
    await _refused(tls_server, TlsConnector(client_ctx, server_hostname="other.example"))


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
async def test_tls_older_than_1_2_is_refused(tls_server: Running, ca: trustme.CA) -> None:
    old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ca.configure_trust(old)
    old.set_ciphers("DEFAULT:@SECLEVEL=0")
    old.minimum_version = ssl.TLSVersion.TLSv1
    old.maximum_version = ssl.TLSVersion.TLSv1_1
    await _refused(tls_server, TlsConnector(old))


async def test_a_client_that_stalls_mid_handshake_is_cut(
    server_ctx: ssl.SSLContext, autojump_clock: trio.abc.Clock
) -> None:
    listener = TcpListener.bind()
    server: Server[Connection] = Server(
        echo, [listener], ServerConfig(handshake_timeout=2.0), tls=server_ctx
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(server.serve)
        raw = await TcpConnector().connect("127.0.0.1", listener.port)
        await raw.send_all(b"\x16\x03\x01\x00\xff")  # the start of a ClientHello, then nothing
        start = trio.current_time()
        assert await raw.receive_some() == b""  # the server gave up and closed
        assert trio.current_time() - start == pytest.approx(2.0, abs=0.05)
        await raw.aclose()
        await server.wait_idle()
        assert server.statistics().tls_failed == 1
        server.drain()


@pytest.mark.parametrize("how", ["drain", "cancel"])
async def test_a_handshake_in_progress_ends_at_a_drain_or_cancel(
    how: str, server_ctx: ssl.SSLContext, autojump_clock: trio.abc.Clock
) -> None:
    listener = TcpListener.bind()
    server: Server[Connection] = Server(
        echo, [listener], ServerConfig(handshake_timeout=60.0), tls=server_ctx
    )
    raw = None
    async with trio.open_nursery() as nursery:
        await nursery.start(server.serve)
        raw = await TcpConnector().connect("127.0.0.1", listener.port)
        await raw.send_all(b"\x16\x03\x01")  # stalls mid-handshake
        await trio.testing.wait_all_tasks_blocked()
        assert server.statistics().active == 1
        before = registered()
        if how == "drain":
            server.drain()
        else:
            nursery.cancel_scope.cancel()
    assert trio.current_time() < 1.0  # neither waited for the handshake deadline
    assert registered() == before - 1  # the server's transport is closed
    with trio.fail_after(1):
        assert await raw.receive_some() == b""
    await raw.aclose()


async def test_tls_connection_is_a_two_way_stream(
    server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext, trio_checkpoints: None
) -> None:
    from runtime.net import tls_handshake

    async def maker() -> tuple[TlsConnection[TcpStream], TlsConnection[TcpStream]]:
        listener = TcpListener.bind()
        client_raw = await TcpConnector().connect("127.0.0.1", listener.port)
        server_raw = await listener.accept()
        await listener.aclose()
        client: TlsConnection[TcpStream] | None = None
        server: TlsConnection[TcpStream] | None = None

        async def hello_client() -> None:
            nonlocal client
            client = await tls_handshake(client_raw, client_ctx, server_hostname="localhost")

        async def hello_server() -> None:
            nonlocal server
            server = await tls_handshake(server_raw, server_ctx, server_side=True)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(hello_client)
            nursery.start_soon(hello_server)
        assert client is not None and server is not None
        return client, server

    await trio.testing.check_two_way_stream(maker, None)
