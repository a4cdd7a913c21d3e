"""TLS: a :class:`~runtime.net.abc.Connection` over ``trio.SSLStream``, and context helpers.

Trio's ``SSLStream`` does the protocol work over any ``trio.abc.Stream``. What this module adds
is what a server needs around it:

* :class:`TlsConnection` carries the transport's addresses, forwards the activity hook to the
  transport (so every partial socket read and write counts as activity), ends its input at a
  drain (the handler sees end-of-stream; the TLS session stays intact) and closes gracefully
  by sending ``close_notify`` before the transport's own lingering close.
* :func:`tls_accept` and :func:`tls_connect` finish the handshake under a deadline (a
  handshake is a read from an untrusted peer like any other) and close the transport on any
  failure, cancellation included.
* The context helpers refuse anything older than TLS 1.2.

``SSLStream`` cannot half-close (TLS has no such thing), so a TlsConnection is a
``Connection`` but not a ``HalfCloseableConnection``.
"""

from __future__ import annotations

import ssl
from typing import Generic, TypeVar

import trio

from ..time import move_on_after, timeout
from .abc import Connection, Touchable

DEFAULT_HANDSHAKE_TIMEOUT = 10.0
"""Seconds a TLS handshake may take before the connection is dropped."""

C = TypeVar("C", bound=Connection)


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


class TlsConnection(Connection, Generic[C]):
    """A TLS session over another Connection (usually a :class:`~runtime.net.TcpStream`).

    Make one with :func:`tls_accept` or :func:`tls_connect` (or a
    :class:`~runtime.net.TlsConnector`); both return it with the handshake done.

    Attributes:
        ssl_stream: the ``trio.SSLStream`` doing the work (for ``selected_alpn_protocol()``,
            ``getpeercert()`` and the rest of its API).
        transport: the Connection underneath.
        peer_address: the transport's peer address.
        local_address: the transport's local address.
    """

    __slots__ = (
        "_input_ended",
        "_receiving",
        "local_address",
        "peer_address",
        "ssl_stream",
        "transport",
    )

    def __init__(self, ssl_stream: trio.SSLStream[C]) -> None:
        self.ssl_stream = ssl_stream
        self.transport: C = ssl_stream.transport_stream
        self.peer_address = self.transport.peer_address
        self.local_address = self.transport.local_address
        self._input_ended = False
        self._receiving: trio.CancelScope | None = None

    @property
    def idle(self) -> Touchable | None:
        """The activity hook; it lives on the transport, so every partial read and write
        of the encrypted bytes touches it."""
        return self.transport.idle

    @idle.setter
    def idle(self, value: Touchable | None) -> None:
        self.transport.idle = value

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        """Receive decrypted bytes; ``b""`` at end of stream, and after :meth:`end_input`.

        Raises:
            trio.BrokenResourceError: the peer reset, or broke the TLS protocol.
            trio.ClosedResourceError: this connection was closed.
            trio.BusyResourceError: another task is receiving.
        """
        if self._input_ended:
            await trio.lowlevel.checkpoint()
            return b""
        # end_input() cancels this scope. Cancelling a receive is safe once the handshake is
        # done (Trio's SSLStream keeps what it has read), so the session stays usable for
        # the close_notify of a graceful close.
        with trio.CancelScope() as self._receiving:
            return bytes(await self.ssl_stream.receive_some(max_bytes))
        return b""  # cancelled by end_input()

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        """Encrypt and send all of ``data``.

        Cancellation: as ``trio.SSLStream.send_all``: a cancelled call leaves the TLS
        session unusable; close it.
        """
        await self.ssl_stream.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        """See ``trio.abc.SendStream.wait_send_all_might_not_block``."""
        await self.ssl_stream.wait_send_all_might_not_block()

    def end_input(self) -> None:
        """Reads return ``b""`` from now on; a parked reader wakes at once.

        Unlike a TCP stream, records that arrive after this are not read: reading to the
        transport's end would leave the TLS session unable to send ``close_notify``.
        """
        self._input_ended = True
        if self._receiving is not None:
            self._receiving.cancel()

    async def aclose_gracefully(self, linger: float = 2.0) -> None:
        """Send ``close_notify``, then let the transport close gracefully; all within
        ``linger`` seconds.

        Cancellation: not shielded (see :meth:`SocketStream.aclose_gracefully`); a cancel
        closes the transport at once.
        """
        deadline = trio.current_time() + linger
        try:
            with move_on_after(linger):
                try:
                    # unwrap() sends close_notify and waits for the peer's, which many
                    # clients never send: the linger bounds it; the transport's own
                    # lingering close comes next.
                    await self.ssl_stream.unwrap()
                except (
                    trio.BrokenResourceError,
                    trio.ClosedResourceError,
                    trio.BusyResourceError,
                    ssl.SSLError,
                ):
                    pass
            remaining = deadline - trio.current_time()
            if remaining > 0:
                await self.transport.aclose_gracefully(remaining)
        finally:
            self.transport.close()

    def close(self) -> None:
        """Close the transport at once (no ``close_notify``)."""
        self.transport.close()

    async def aclose(self) -> None:
        """Send ``close_notify`` if possible, then close the transport (``SSLStream.aclose``)."""
        try:
            await self.ssl_stream.aclose()
        finally:
            self.transport.close()

    def selected_alpn_protocol(self) -> str | None:
        """The ALPN protocol both sides agreed on, or None."""
        protocol: str | None = self.ssl_stream.selected_alpn_protocol()
        return protocol


async def tls_connect(
    host: str,
    port: int,
    ssl_context: ssl.SSLContext,
    *,
    server_hostname: str | None = None,
    handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT,
) -> TlsConnection[Connection]:
    """Connect over TCP and complete a TLS handshake within ``handshake_timeout``.

    Raises:
        OSError: the TCP connection failed.
        trio.BrokenResourceError: the handshake failed (bad certificate, protocol error).
        runtime.time.Elapsed: the handshake took longer than ``handshake_timeout`` (a
            ``TimeoutError``).
    """
    from ._connect import TcpConnector

    stream = await TcpConnector().connect(host, port)
    return await tls_handshake(
        stream,
        ssl_context,
        server_hostname=server_hostname or host,
        handshake_timeout=handshake_timeout,
    )


async def tls_accept(
    stream: C,
    ssl_context: ssl.SSLContext,
    *,
    handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT,
) -> TlsConnection[C]:
    """Wrap an accepted connection in TLS and finish the handshake within the deadline.

    Raises:
        trio.BrokenResourceError: the handshake failed; the transport is closed.
        runtime.time.Elapsed: the peer was too slow (a ``TimeoutError``); the transport is
            closed.

    Cancellation: a cancelled handshake closes the transport.
    """
    return await tls_handshake(
        stream, ssl_context, server_side=True, handshake_timeout=handshake_timeout
    )


async def tls_handshake(
    stream: C,
    ssl_context: ssl.SSLContext,
    *,
    server_side: bool = False,
    server_hostname: str | None = None,
    handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT,
) -> TlsConnection[C]:
    """Run a TLS handshake on ``stream`` within ``handshake_timeout``; close it on failure.

    The one handshake path of the server side (:func:`tls_accept`) and the client side
    (:func:`tls_connect`, :class:`~runtime.net.TlsConnector`).

    Raises:
        trio.BrokenResourceError: the handshake failed.
        runtime.time.Elapsed: the handshake took too long.

    Cancellation: a cancelled handshake closes the transport.
    """
    tls = trio.SSLStream(
        stream, ssl_context, server_side=server_side, server_hostname=server_hostname
    )
    try:
        with timeout(handshake_timeout):
            await tls.do_handshake()
    except BaseException:
        stream.close()
        raise
    return TlsConnection(tls)


__all__ = [
    "DEFAULT_HANDSHAKE_TIMEOUT",
    "TlsConnection",
    "client_ssl_context",
    "server_ssl_context",
    "tls_accept",
    "tls_connect",
    "tls_handshake",
]
