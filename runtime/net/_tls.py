"""TLS: ``trio.SSLStream`` over the runtime's streams, with sane context helpers.

Trio's ``SSLStream`` works over any ``trio.abc.Stream``; ours qualify, so there is no TLS
stream class here, only helpers that build contexts with safe defaults and do the handshake
under a deadline (a handshake is a read from an untrusted peer like any other).
"""

from __future__ import annotations

import ssl

import trio

from ..time import timeout
from ._stream import TcpStream

DEFAULT_HANDSHAKE_TIMEOUT = 10.0
"""Seconds a TLS handshake may take before the connection is dropped."""


def server_ssl_context(
    certfile: str, keyfile: str | None = None, *, alpn: list[str] | None = None
) -> ssl.SSLContext:
    """A server context: TLS 1.2+, the certificate chain loaded, optional ALPN protocols."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(certfile, keyfile)
    if alpn:
        ctx.set_alpn_protocols(alpn)
    return ctx


def client_ssl_context(
    cafile: str | None = None, *, alpn: list[str] | None = None
) -> ssl.SSLContext:
    """A client context: TLS 1.2+, certificate and host name verification on.

    Args:
        cafile: Trust these CAs instead of the system store (e.g. a test CA).
        alpn: ALPN protocols to offer, e.g. ``["h2", "http/1.1"]``.
    """
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=cafile)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if alpn:
        ctx.set_alpn_protocols(alpn)
    return ctx


async def tls_connect(
    host: str,
    port: int,
    ssl_context: ssl.SSLContext,
    *,
    server_hostname: str | None = None,
    handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT,
) -> trio.SSLStream[TcpStream]:
    """Connect over TCP and complete a TLS handshake within ``handshake_timeout``.

    Raises:
        OSError: the TCP connection failed.
        trio.BrokenResourceError: the handshake failed (bad certificate, protocol error).
        runtime.time.Elapsed: the handshake took longer than ``handshake_timeout`` (a
            ``TimeoutError``).
    """
    stream = await TcpStream.connect(host, port)
    tls = trio.SSLStream(stream, ssl_context, server_hostname=server_hostname or host)
    return await _handshake(tls, handshake_timeout)


async def tls_accept(
    stream: TcpStream,
    ssl_context: ssl.SSLContext,
    *,
    handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT,
) -> trio.SSLStream[TcpStream]:
    """Wrap an accepted stream in TLS and finish the handshake within ``handshake_timeout``.

    Raises:
        trio.BrokenResourceError: the handshake failed.
        runtime.time.Elapsed: the peer was too slow (a ``TimeoutError``).
    """
    tls = trio.SSLStream(stream, ssl_context, server_side=True)
    return await _handshake(tls, handshake_timeout)


async def _handshake(
    tls: trio.SSLStream[TcpStream], handshake_timeout: float
) -> trio.SSLStream[TcpStream]:
    """Finish the handshake within the deadline, or close the connection underneath."""
    try:
        with timeout(handshake_timeout):
            await tls.do_handshake()
    except BaseException:
        await trio.aclose_forcefully(tls.transport_stream)
        raise
    return tls
