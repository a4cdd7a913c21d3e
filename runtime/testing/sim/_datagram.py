"""Simulated UDP: datagram sockets on the hosts of a :class:`Sim`, shaped like UdpSocket.

A datagram takes the link's latency and jitter, and nothing keeps datagrams in order: jitter
alone can reorder them, ``reorder`` holds some back for longer still, ``duplicate`` delivers
some twice, ``loss`` drops them (never sent again: UDP has no retransmission). A partition, a
host that is down, or no socket bound at the destination drops a datagram silently, as the
network does. A receiver keeps at most :data:`RECEIVE_QUEUE` datagrams unread; beyond that the
newest are dropped, as a full socket buffer does.
"""

from __future__ import annotations

import collections
from typing import TYPE_CHECKING, Any

import trio

if TYPE_CHECKING:
    from ._world import Host

MAX_DATAGRAM = 65507
"""The largest UDP payload over IPv4."""

RECEIVE_QUEUE = 256
"""Datagrams a socket holds unread before it drops the next ones."""


class SimUdpSocket:
    """A UDP socket of a simulated host: ``send_to`` and ``recv_from``, as
    :class:`~runtime.net.UdpSocket` has them. Make one with :meth:`Host.udp_bind`."""

    def __init__(self, host: Host, port: int) -> None:
        self.host = host
        self.port = port
        self._queue: collections.deque[tuple[bytes, tuple[str, int]]] = collections.deque()
        self._lot = trio.lowlevel.ParkingLot()
        self.closed = False
        self.dropped = 0  # datagrams that arrived to a full queue

    @property
    def address(self) -> tuple[str, int]:
        """The bound ``(host, port)``."""
        return (self.host.address, self.port)

    async def send_to(self, data: bytes | bytearray | memoryview, address: Any) -> int:
        """Send one datagram to ``address`` (``(host or name, port)``); returns its size.

        Raises:
            trio.ClosedResourceError: the socket was closed.
            OSError: ``EMSGSIZE`` above :data:`MAX_DATAGRAM` bytes.
        """
        await trio.lowlevel.checkpoint()
        if self.closed:
            raise trio.ClosedResourceError("this socket was closed")
        payload = bytes(data)
        if len(payload) > MAX_DATAGRAM:
            raise OSError(90, f"datagram of {len(payload)} bytes is too long")
        self.host.sim._send_datagram(self, payload, (str(address[0]), int(address[1])))
        return len(payload)

    async def recv_from(self, max_bytes: int = MAX_DATAGRAM) -> tuple[bytes, tuple[str, int]]:
        """Receive one datagram: ``(data, sender_address)``; truncated to ``max_bytes``.

        Cancellation: a cancelled call has received nothing.

        Raises:
            trio.ClosedResourceError: the socket was closed.
        """
        await trio.lowlevel.checkpoint()
        while True:
            if self.closed:
                raise trio.ClosedResourceError("this socket was closed")
            if self._queue:
                data, sender = self._queue.popleft()
                return data[:max_bytes], sender
            await self._lot.park()

    def _arrive(self, data: bytes, sender: tuple[str, int]) -> bool:
        if self.closed:
            return False
        if len(self._queue) >= RECEIVE_QUEUE:
            self.dropped += 1
            return False
        self._queue.append((data, sender))
        self._lot.unpark_all()
        return True

    def close(self) -> None:
        """Close at once; a blocked receiver wakes with ClosedResourceError."""
        if not self.closed:
            self.closed = True
            self.host._udp.pop(self.port, None)
            self._lot.unpark_all()

    async def aclose(self) -> None:
        """Close; a checkpoint."""
        self.close()
        await trio.lowlevel.checkpoint()

    async def __aenter__(self) -> SimUdpSocket:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


__all__ = ["MAX_DATAGRAM", "RECEIVE_QUEUE", "SimUdpSocket"]
