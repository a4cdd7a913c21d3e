"""Simulated TCP: connections, listeners and connectors on the hosts of a :class:`Sim`.

Each direction of a connection is a :class:`_Flow`: the sender cuts its bytes into segments,
the world schedules each segment's arrival by the link's latency, jitter, bandwidth and loss,
and the receiver reads what has arrived. Segments arrive in the order they were sent (TCP's
ordering); a lost segment arrives late (its retransmission); a partition holds segments until
the link is repaired. The sender may have at most :data:`WINDOW` bytes that the receiving
program has not read yet, so a writer that outruns its reader waits, as on a socket.

The ends behave the way this project's TCP streams do: ``b""`` after the peer's FIN,
``BrokenResourceError`` after a reset (which also throws away what had arrived and was not
read yet, as Linux does), ``ClosedResourceError`` on an end closed here. A close with unread
input sends a reset instead of a FIN, as the kernel does.
"""

from __future__ import annotations

import errno
import operator
from collections.abc import Sequence
from typing import TYPE_CHECKING

import trio

from ...net.abc import Address, HalfCloseableConnection, Touchable
from ...time import timeout

if TYPE_CHECKING:
    from ._world import Host, Sim

MSS = 16384
"""Bytes in one simulated segment."""

WINDOW = 262144
"""Bytes a sender may have in flight or unread at the receiver before ``send_all`` waits."""

RTO = 0.2
"""Seconds until a lost segment is sent again (Linux's minimum retransmission timeout)."""

SYN_RETRIES = (1.0, 2.0, 4.0, 8.0, 16.0, 32.0)
"""Seconds between tries of an unanswered connect, as Linux spaces its SYNs (about 127 s)."""


class _Flow:
    """One direction of a connection: segments on the wire, and bytes arrived but unread."""

    __slots__ = (
        "buffer",
        "dst",
        "eof",
        "held",
        "in_flight",
        "last_arrival",
        "readable",
        "reset",
        "sim",
        "src",
        "writable",
    )

    def __init__(self, sim: Sim, src: SimConnection, dst: SimConnection) -> None:
        self.sim = sim
        self.src = src  # the sending end
        self.dst = dst  # the receiving end
        self.buffer = bytearray()
        self.in_flight = 0  # sent, not yet read by the receiving program
        self.last_arrival = 0.0
        self.held: list[bytes | str] = []  # segments a partition holds, in order
        self.eof = False
        self.reset = False
        self.readable = trio.lowlevel.ParkingLot()
        self.writable = trio.lowlevel.ParkingLot()

    def transmit(self, segment: bytes | str) -> None:
        """Put a segment (bytes, ``"FIN"`` or ``"RST"``) on the wire."""
        if self.held:  # a partition holds earlier segments: this one waits behind them
            self.held.append(segment)
            return
        arrive = self.sim._arrival(self.src.host, self.dst.host, segment, self.last_arrival)
        self.last_arrival = arrive
        self.sim._schedule(arrive, lambda: self._arrive(segment))

    def _arrive(self, segment: bytes | str) -> None:
        sim, dst = self.sim, self.dst
        if self.held or sim.partitioned(self.src.host, dst.host):
            if not self.held:
                sim._record(f"held {self.src.label}: partitioned")
            self.held.append(segment)
            sim._held_flows[id(self)] = self
            return
        self.deliver(segment)

    def deliver(self, segment: bytes | str) -> None:
        sim, dst = self.sim, self.dst
        if segment == "RST":
            sim._record(f"rst {self.src.label}")
            if not self.reset:
                self.reset = True
                self.buffer.clear()  # Linux drops what arrived and was not read
                self.in_flight = 0
                dst._peer_reset()
            return
        if self.reset:
            return
        if dst._closed or not dst.host.up or dst._dead:
            # Nobody will read it: the receiving kernel answers with a reset.
            if segment != "FIN" and not dst._sent_rst:
                dst._send_rst()
            return
        if segment == "FIN":
            sim._record(f"fin {self.src.label}")
            self.eof = True
        else:
            assert isinstance(segment, bytes)
            sim._record(f"data {self.src.label} {len(segment)}B")
            if dst._discarding:
                self.in_flight -= len(segment)
                self.writable.unpark_all()
            else:
                self.buffer += segment
        self.readable.unpark_all()

    def release(self) -> None:
        """The partition was repaired: send what it held again, in order."""
        held, self.held = self.held, []
        self.last_arrival = 0.0
        for segment in held:
            self.transmit(segment)


class SimConnection(HalfCloseableConnection):
    """One end of a simulated TCP connection (a :class:`~runtime.net.abc.Connection`)."""

    __slots__ = (
        "_closed",
        "_dead",
        "_discarding",
        "_fin_sent",
        "_inbound",
        "_input_ended",
        "_outbound",
        "_receiving",
        "_sending",
        "_sent_rst",
        "host",
        "idle",
        "label",
        "local_address",
        "peer_address",
    )

    def __init__(self, host: Host, local: tuple[str, int], peer: tuple[str, int]) -> None:
        self.host = host
        self.local_address: Address = local
        self.peer_address: Address = peer
        self.label = f"{local[0]}:{local[1]}>{peer[0]}:{peer[1]}"
        self.idle: Touchable | None = None
        self._inbound: _Flow
        self._outbound: _Flow
        self._closed = False
        self._dead = False  # its host was killed: it neither sends nor receives
        self._input_ended = False
        self._discarding = False  # lingering close: arriving bytes are thrown away
        self._fin_sent = False
        self._sent_rst = False
        self._receiving = False
        self._sending = False

    # -- what the world calls ------------------------------------------------------------

    def _peer_reset(self) -> None:
        self._inbound.readable.unpark_all()
        self._inbound.writable.unpark_all()
        self._outbound.writable.unpark_all()
        self.host._forget(self)

    def _send_rst(self) -> None:
        self._sent_rst = True
        self._outbound.transmit("RST")

    def _kill(self) -> None:
        """Its host died: the peer is reset; this end fails every call from now on."""
        if not self._sent_rst and not self._outbound.reset:
            self._send_rst()
        self._dead = True
        self._closed = True
        self._wake()

    def _wake(self) -> None:
        for flow in (self._inbound, self._outbound):
            flow.readable.unpark_all()
            flow.writable.unpark_all()

    # -- the Connection API --------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise trio.ClosedResourceError("this connection was closed")

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        """Bytes from the peer (at most ``max_bytes``); ``b""`` at end of stream.

        Raises:
            trio.BrokenResourceError: the peer reset the connection.
            trio.ClosedResourceError: this end was closed.
        """
        if max_bytes is not None:
            max_bytes = operator.index(max_bytes)
            if max_bytes < 1:
                raise ValueError(f"max_bytes must be >= 1, got {max_bytes}")
        if self._receiving:
            raise trio.BusyResourceError("another task is already receiving")
        self._receiving = True
        try:
            await trio.lowlevel.checkpoint()
            flow = self._inbound
            while True:
                self._check_open()
                if flow.buffer:
                    size = 65536 if max_bytes is None else max_bytes
                    data = bytes(flow.buffer[:size])
                    del flow.buffer[:size]
                    flow.in_flight -= len(data)
                    flow.writable.unpark_all()
                    if self.idle is not None:
                        self.idle.touch()
                    return data
                if flow.reset:
                    raise trio.BrokenResourceError(
                        f"socket error: Connection reset by peer (errno {errno.ECONNRESET})"
                    )
                if flow.eof or self._input_ended:
                    return b""
                await flow.readable.park()
        finally:
            self._receiving = False

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        """Send ``data``; waits while the peer has :data:`WINDOW` bytes unread.

        Raises:
            trio.BrokenResourceError: the peer reset the connection.
            trio.ClosedResourceError: this end was closed, or ``send_eof`` was called.
        """
        if self._sending:
            raise trio.BusyResourceError("another task is already sending")
        self._sending = True
        try:
            await trio.lowlevel.checkpoint()
            view = memoryview(data).cast("B")
            flow = self._outbound
            while True:
                self._check_open()
                if self._fin_sent:
                    raise trio.ClosedResourceError("can't send data after send_eof()")
                if self._inbound.reset or flow.reset:
                    raise trio.BrokenResourceError(
                        f"socket error: Connection reset by peer (errno {errno.ECONNRESET})"
                    )
                if not view:
                    return
                room = WINDOW - flow.in_flight
                if room > 0:
                    while view and room > 0:
                        size = min(MSS, room, len(view))
                        flow.in_flight += size
                        room -= size
                        flow.transmit(bytes(view[:size]))
                        view = view[size:]
                    if self.idle is not None:
                        self.idle.touch()
                    if not view:
                        return
                await flow.writable.park()
        finally:
            self._sending = False

    async def wait_send_all_might_not_block(self) -> None:
        """Wait until the peer's window has room."""
        await trio.lowlevel.checkpoint()
        flow = self._outbound
        while not self._closed and not self._inbound.reset and flow.in_flight >= WINDOW:
            await flow.writable.park()
        self._check_open()

    async def send_eof(self) -> None:
        """Send a FIN: the peer reads ``b""`` after what was sent before it."""
        await trio.lowlevel.checkpoint()
        self._check_open()
        if not self._fin_sent:
            self._fin_sent = True
            self._outbound.transmit("FIN")

    def end_input(self) -> None:
        """Reads return what has arrived, then ``b""``; a parked reader wakes at once."""
        self._input_ended = True
        self._inbound.readable.unpark_all()

    async def aclose_gracefully(self, linger: float = 2.0) -> None:
        """FIN, then throw away the peer's bytes until its FIN (at most ``linger`` s), close.

        Cancellation: not shielded; a cancel closes at once.
        """
        try:
            with trio.move_on_after(linger):
                if not self._closed and not self._fin_sent:
                    self._fin_sent = True
                    self._outbound.transmit("FIN")
                flow = self._inbound
                while not self._closed and not flow.eof and not flow.reset:
                    if flow.buffer:
                        flow.in_flight -= len(flow.buffer)
                        flow.buffer.clear()
                        flow.writable.unpark_all()
                    self._discarding = True
                    await flow.readable.park()
        finally:
            self.close()

    def close(self) -> None:
        """Close at once: a FIN, or a reset if input was left unread (as the kernel does)."""
        if self._closed:
            return
        self._closed = True
        if not self._dead and not self._inbound.reset and not self._sent_rst:
            if self._inbound.buffer:
                self._send_rst()
            elif not self._fin_sent:
                self._fin_sent = True
                self._outbound.transmit("FIN")
        self._inbound.buffer.clear()
        self.host._forget(self)
        self._wake()

    async def aclose(self) -> None:
        """Close (see :meth:`close`); a checkpoint."""
        self.close()
        await trio.lowlevel.checkpoint()


class SimListener:
    """A listening port on a simulated host (a :class:`~runtime.net.abc.Listener`)."""

    def __init__(self, host: Host, address: str, port: int, backlog: int) -> None:
        self.host = host
        self.address = address
        self._port = port
        self.backlog = backlog
        self._queue: list[SimConnection] = []
        self._lot = trio.lowlevel.ParkingLot()
        self.closed = False

    @property
    def port(self) -> int:
        """The bound port."""
        return self._port

    def _offer(self, connection: SimConnection) -> bool:
        if self.closed or len(self._queue) >= self.backlog:
            return False
        self._queue.append(connection)
        self._lot.unpark_all()
        return True

    async def accept_batch(self, max_batch: int = 64) -> Sequence[SimConnection]:
        """Wait for one connection, then take up to ``max_batch`` without waiting.

        Cancellation: a cancelled call has accepted nothing.
        """
        await trio.lowlevel.checkpoint()
        while not self._queue:
            if self.closed:
                raise trio.ClosedResourceError("the listener was closed")
            await self._lot.park()
        if self.closed:
            raise trio.ClosedResourceError("the listener was closed")
        batch, self._queue = self._queue[:max_batch], self._queue[max_batch:]
        return batch

    def close(self) -> None:
        """Stop listening: waiting connections are reset, later connects refused."""
        if self.closed:
            return
        self.closed = True
        self.host._unbind(self)
        for connection in self._queue:
            connection.close()
        self._queue.clear()
        self._lot.unpark_all()

    async def aclose(self) -> None:
        """Close (see :meth:`close`); a checkpoint."""
        self.close()
        await trio.lowlevel.checkpoint()


class SimConnector:
    """Connects from one simulated host (a :class:`~runtime.net.abc.Connector`).

    Attributes:
        connect_timeout: Seconds for the whole connect; None waits as long as the simulated
            kernel does (about 127 s of SYN retries, then ``TimeoutError``).
    """

    def __init__(self, host: Host, connect_timeout: float | None = None) -> None:
        self.host = host
        self.connect_timeout = connect_timeout

    async def connect(self, host: str, port: int) -> SimConnection:
        """Connect to ``host:port`` (a host's name, an address, or a name in the sim's DNS).

        Raises:
            ConnectionRefusedError: nothing listens there.
            TimeoutError: no answer (a partition, or the host is down) within the timeout
                (``runtime.time.Elapsed`` when ``connect_timeout`` passed).
            OSError: the name is unknown (``socket.gaierror``).
        """
        if self.connect_timeout is None:
            return await self.host.sim._connect(self.host, host, port)
        with timeout(self.connect_timeout):
            connection = await self.host.sim._connect(self.host, host, port)
        return connection


__all__ = ["MSS", "RTO", "WINDOW", "SimConnection", "SimConnector", "SimListener"]
