"""UDP on the reactor: datagrams with ``send_to`` and ``recv_from``."""

from __future__ import annotations

import socket
from typing import Any

import trio

from ..rt._coop import try_consume_budget
from ._reactor import READ, WRITE, Reactor, current_reactor

MAX_DATAGRAM = 65535
"""The largest UDP payload; ``recv_from`` asks for this much by default."""

_checkpoint = trio.lowlevel.checkpoint


class UdpSocket:
    """A UDP socket. Create it with :meth:`bind`; close it with ``aclose`` or ``async with``.

    Attributes:
        socket: the underlying stdlib socket (non-blocking).
    """

    def __init__(self, sock: socket.socket, *, reactor: Reactor | None = None) -> None:
        sock.setblocking(False)
        self.socket = sock
        self._reactor = reactor if reactor is not None else current_reactor()
        self._reg = self._reactor.register(sock)
        self._receiving = False
        self._sending = False

    @classmethod
    def bind(cls, host: str = "127.0.0.1", port: int = 0) -> UdpSocket:
        """A UDP socket bound to ``host:port`` (a literal address; port 0 picks one)."""
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.bind((host, port))
        except BaseException:
            sock.close()
            raise
        return cls(sock)

    @property
    def address(self) -> Any:
        """The bound ``(host, port)``."""
        return self.socket.getsockname()

    async def send_to(self, data: bytes | bytearray | memoryview, address: Any) -> int:
        """Send one datagram to ``address``; returns the bytes sent.

        Raises:
            trio.ClosedResourceError: the socket was closed.
            OSError: e.g. EMSGSIZE for a datagram over the path's limit.
        """
        if self._sending:
            raise trio.BusyResourceError("another task is already sending on this socket")
        self._sending = True
        try:
            if not try_consume_budget():
                await _checkpoint()
            reg = self._reg
            while True:
                if reg.closed:
                    raise trio.ClosedResourceError("this socket was closed")
                if reg.readiness & WRITE:
                    try:
                        return self.socket.sendto(data, address)
                    except BlockingIOError:
                        reg.readiness &= ~WRITE
                await self._reactor.wait(reg, WRITE)
        finally:
            self._sending = False

    async def recv_from(self, max_bytes: int = MAX_DATAGRAM) -> tuple[bytes, Any]:
        """Receive one datagram: ``(data, sender_address)``.

        A datagram longer than ``max_bytes`` is truncated by the kernel (UDP semantics).

        Cancellation: a cancelled call has received nothing.

        Raises:
            trio.ClosedResourceError: the socket was closed.
        """
        if self._receiving:
            raise trio.BusyResourceError("another task is already receiving on this socket")
        self._receiving = True
        try:
            if not try_consume_budget():
                await _checkpoint()
            reg = self._reg
            while True:
                if reg.closed:
                    raise trio.ClosedResourceError("this socket was closed")
                if reg.readiness & READ:
                    try:
                        return self.socket.recvfrom(max_bytes)
                    except BlockingIOError:
                        reg.readiness &= ~READ
                    except ConnectionRefusedError:
                        continue  # ICMP port unreachable from an earlier send_to: not ours
                await self._reactor.wait(reg, READ)
        finally:
            self._receiving = False

    def close(self) -> None:
        """Close at once; blocked tasks wake with ClosedResourceError."""
        self._reactor.deregister(self._reg)
        self.socket.close()

    async def aclose(self) -> None:
        """Close; a checkpoint."""
        self.close()
        await _checkpoint()

    async def __aenter__(self) -> UdpSocket:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
