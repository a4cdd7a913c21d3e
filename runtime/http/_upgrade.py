"""The connection hand-over: after a ``101 Switching Protocols`` (or a 2xx answer to ``CONNECT``)
the HTTP server gives the connection to the response's upgrade callback.

The server has read the request head, and perhaps more: a client may send the first bytes of
the new protocol right behind its upgrade request (a WebSocket frame, a TLS ClientHello
through a CONNECT tunnel). Those bytes are in the HTTP parser's buffer, not in the socket, so
the callback gets an :class:`UpgradedConnection`: a :class:`~runtime.net.abc.Connection` that
returns them first, then reads from the transport. Everything else (writes, closes, addresses)
goes straight to the transport.

The callback runs in the connection's own task, without the HTTP server's timeouts: the new
protocol brings its own (a WebSocket's ping timeout, a tunnel's idle timeout). It learns of a
server drain through :attr:`UpgradedConnection.draining`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from ..net.abc import Connection
from ..sync import CancellationToken

if TYPE_CHECKING:
    from ._types import Request


class UpgradedConnection(Connection):
    """The transport of an upgraded HTTP connection, as the upgrade callback receives it.

    Attributes:
        peer_address: The client's address, as the transport's.
        local_address: This end's address, as the transport's.
        request: The request that asked for the upgrade (its headers carry the new
            protocol's handshake, e.g. ``Sec-WebSocket-Key``).
        transport: The underlying connection.
        draining: Cancelled when the server starts draining: a long-lived protocol should
            then finish politely (a WebSocket sends close 1001).
    """

    __slots__ = (
        "_buffer",
        "_eof",
        "draining",
        "idle",
        "local_address",
        "peer_address",
        "request",
        "transport",
    )

    def __init__(
        self,
        transport: Connection,
        buffered: bytes = b"",
        *,
        eof: bool = False,
        request: Request | None = None,
        draining: CancellationToken | None = None,
    ) -> None:
        self.transport = transport
        self.peer_address = transport.peer_address
        self.local_address = transport.local_address
        self.idle = None
        self._buffer = buffered
        self._eof = eof
        self.request = request
        self.draining = draining if draining is not None else CancellationToken()

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        """The bytes the HTTP parser had read past the request first, then the transport's.

        Cancellation: as the transport's ``receive_some``.
        """
        buffer = self._buffer
        if buffer:
            if max_bytes is None or max_bytes >= len(buffer):
                self._buffer = b""
                return buffer
            self._buffer = buffer[max_bytes:]
            return buffer[:max_bytes]
        if self._eof:
            return b""
        return bytes(await self.transport.receive_some(max_bytes))

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self.transport.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self.transport.wait_send_all_might_not_block()

    def end_input(self) -> None:
        self._buffer = b""
        self._eof = True
        self.transport.end_input()

    async def aclose_gracefully(self, linger: float = 2.0) -> None:
        await self.transport.aclose_gracefully(linger)

    def close(self) -> None:
        self.transport.close()

    async def aclose(self) -> None:
        await self.transport.aclose()

    def __repr__(self) -> str:
        return f"<UpgradedConnection of {self.transport!r}>"


OnUpgrade = Callable[[UpgradedConnection], Awaitable[None]]
"""An upgrade callback: it owns the connection until it returns; the server then closes it."""

__all__ = ["OnUpgrade", "UpgradedConnection"]
