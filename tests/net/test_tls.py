"""TLS helpers: contexts with safe defaults, handshakes under a deadline."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
import trio
import trustme

from runtime.net import (
    TcpListener,
    client_ssl_context,
    server_ssl_context,
    tls_accept,
    tls_connect,
)


@pytest.fixture
def certs(tmp_path: Path) -> tuple[trustme.CA, Path, Path]:
    ca = trustme.CA()
    cert = ca.issue_cert("localhost", "127.0.0.1")
    chain = tmp_path / "chain.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(chain))
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    return ca, chain, ca_file


async def test_tls_round_trip(certs: tuple[trustme.CA, Path, Path]) -> None:
    _, chain, ca_file = certs
    server_ctx = server_ssl_context(str(chain), alpn=["echo/1"])
    client_ctx = client_ssl_context(str(ca_file), alpn=["echo/1"])
    assert server_ctx.minimum_version >= ssl.TLSVersion.TLSv1_2
    listener = TcpListener.bind()

    async def server() -> None:
        tls = await tls_accept(await listener.accept(), server_ctx)
        assert tls.selected_alpn_protocol() == "echo/1"
        await tls.send_all(await tls.receive_some())
        await tls.aclose()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(server)
        client = await tls_connect("127.0.0.1", listener.port, client_ctx)
        await client.send_all(b"secret")
        assert await client.receive_some() == b"secret"
        await client.aclose()
    await listener.aclose()


async def test_untrusted_certificate_fails_the_handshake(
    certs: tuple[trustme.CA, Path, Path],
) -> None:
    _, chain, _ = certs
    listener = TcpListener.bind()
    other_ca = trustme.CA()
    client_ctx = ssl.create_default_context()
    other_ca.configure_trust(client_ctx)

    async def server() -> None:
        with pytest.raises(trio.BrokenResourceError):
            await tls_accept(await listener.accept(), server_ssl_context(str(chain)))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(server)
        with pytest.raises(trio.BrokenResourceError):
            await tls_connect("127.0.0.1", listener.port, client_ctx)
    await listener.aclose()


async def test_slow_handshake_times_out(
    certs: tuple[trustme.CA, Path, Path], autojump_clock: trio.abc.Clock
) -> None:
    _, chain, _ = certs
    listener = TcpListener.bind()
    async with trio.open_nursery() as nursery:

        async def silent_client() -> None:
            stream = await trio.open_tcp_stream("127.0.0.1", listener.port)
            await trio.sleep(60)  # never says hello (mock time)
            await stream.aclose()

        nursery.start_soon(silent_client)
        with pytest.raises(TimeoutError):
            await tls_accept(
                await listener.accept(), server_ssl_context(str(chain)), handshake_timeout=5
            )
    await listener.aclose()
