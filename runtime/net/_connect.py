"""Connectors: the client side of the transport seam (see :mod:`runtime.net.abc`).

A client (the HTTP client's pool, the proxy's upstreams) takes a ``Connector`` and calls
``await connector.connect(host, port)``; which transport it gets is the caller's choice:

* :class:`TcpConnector`: TCP with Happy Eyeballs (through ``trio.open_tcp_stream``) and a
  connect deadline, returning a reactor-driven :class:`~runtime.net.TcpStream`.
* :class:`UnixConnector`: one Unix socket path, whatever host and port are asked for.
* :class:`TlsConnector`: TLS over any other Connector, with a handshake deadline and host
  name verification against the ``host`` asked for.
"""

from __future__ import annotations

import socket
import ssl
from typing import Any, Generic, TypeVar

import attrs
import trio

from ..time import timeout
from ._stream import TcpStream, UnixStream
from ._tls import DEFAULT_HANDSHAKE_TIMEOUT, TlsConnection, tls_handshake
from .abc import Connection, Connector

C = TypeVar("C", bound=Connection)

# Typed Any: mypy infers a field's type from its float default and would refuse Optional.
_optional_positive: Any = attrs.validators.optional(attrs.validators.gt(0.0))

DEFAULT_CONNECT_TIMEOUT = 10.0
"""Seconds a connect may take (all addresses tried) before it fails with ``Elapsed``."""


def _adopt(trio_stream: trio.SocketStream) -> socket.socket:
    """Take the stdlib socket out of a Trio stream (Trio forgets it)."""
    trio_sock = trio_stream.socket
    return socket.socket(trio_sock.family, trio_sock.type, trio_sock.proto, trio_sock.detach())


@attrs.frozen
class TcpConnector:
    """Open TCP connections on the runtime's reactor.

    Attributes:
        connect_timeout: Seconds for the whole connect, every address included; None waits
            as long as the OS does. Default 10 s.
        happy_eyeballs_delay: Seconds before the next address is tried in parallel
            (RFC 8305). Default 0.25 s, as Trio's.
        nodelay: Set ``TCP_NODELAY`` (default True: request/response protocols want it).
    """

    connect_timeout: float | None = attrs.field(
        default=DEFAULT_CONNECT_TIMEOUT, validator=_optional_positive
    )
    happy_eyeballs_delay: float = attrs.field(default=0.25, validator=attrs.validators.gt(0.0))
    nodelay: bool = True

    async def connect(self, host: str, port: int) -> TcpStream:
        """Connect to ``host:port``.

        Raises:
            OSError: no address could be connected to.
            runtime.time.Elapsed: ``connect_timeout`` passed (a ``TimeoutError``).

        Cancellation: a cancelled connect leaves no socket open.
        """
        if self.connect_timeout is None:
            trio_stream = await trio.open_tcp_stream(
                host, port, happy_eyeballs_delay=self.happy_eyeballs_delay
            )
        else:
            with timeout(self.connect_timeout):
                trio_stream = await trio.open_tcp_stream(
                    host, port, happy_eyeballs_delay=self.happy_eyeballs_delay
                )
        return TcpStream(_adopt(trio_stream), nodelay=self.nodelay)


@attrs.frozen
class UnixConnector:
    """Connect to one Unix socket, whatever ``host`` and ``port`` are asked for.

    Attributes:
        path: The socket's filesystem path.
    """

    path: str

    async def connect(self, host: str = "", port: int = 0) -> UnixStream:
        """Connect to :attr:`path` (``host`` and ``port`` are ignored).

        Raises:
            OSError: nothing listens there.
        """
        return UnixStream(_adopt(await trio.open_unix_socket(self.path)))


@attrs.frozen
class TlsConnector(Generic[C]):
    """TLS over another Connector: connect, then handshake within ``handshake_timeout``.

    The certificate is checked against the ``host`` passed to :meth:`connect`, unless
    ``server_hostname`` names another one.

    Attributes:
        ssl_context: A client context (see :func:`~runtime.net.client_ssl_context`).
        inner: The Connector underneath (default: a :class:`TcpConnector`).
        server_hostname: The name to verify and send in SNI instead of ``host``.
        handshake_timeout: Seconds the handshake may take. Default 10 s.
    """

    ssl_context: ssl.SSLContext
    inner: Connector[C] = attrs.field(factory=TcpConnector)
    server_hostname: str | None = None
    handshake_timeout: float = attrs.field(
        default=DEFAULT_HANDSHAKE_TIMEOUT, validator=attrs.validators.gt(0.0)
    )

    async def connect(self, host: str, port: int) -> TlsConnection[C]:
        """Connect with ``inner`` and finish a TLS handshake.

        Raises:
            OSError: the connection failed.
            trio.BrokenResourceError: the handshake failed (untrusted certificate, name
                mismatch, protocol version refused); the transport is closed.
            runtime.time.Elapsed: the handshake took too long; the transport is closed.
        """
        stream = await self.inner.connect(host, port)
        return await tls_handshake(
            stream,
            self.ssl_context,
            server_hostname=self.server_hostname or host,
            handshake_timeout=self.handshake_timeout,
        )


__all__ = ["DEFAULT_CONNECT_TIMEOUT", "TcpConnector", "TlsConnector", "UnixConnector"]
