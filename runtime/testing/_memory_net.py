"""An in-memory transport: Connections and a Listener with no sockets at all.

It implements :mod:`runtime.net.abc`, so a :class:`~runtime.net.Server` (and anything above
it) runs over it unchanged: the seam a simulated network plugs into. Each direction is a
bounded byte pipe, so a writer that outruns its reader waits, as it would on a socket.

Example::

    listener = MemoryListener()
    async with trio.open_nursery() as nursery:
        server = await nursery.start(Server(echo, [listener]).serve)
        client = await listener.connect()
        await client.send_all(b"hi")
        assert await client.receive_some() == b"hi"
"""

from __future__ import annotations

import operator
from collections.abc import Sequence

import trio

from ..net.abc import Address, HalfCloseableConnection, Touchable
from ..time import move_on_after

DEFAULT_PIPE_BUFFER = 65536
"""Bytes one direction holds before ``send_all`` waits for the reader."""


class _Pipe:
    """One direction: a bounded buffer with end-of-stream and reset."""

    def __init__(self, limit: int) -> None:
        self.buffer = bytearray()
        self.limit = limit
        self.eof = False  # the writer sent EOF or closed
        self.broken = False  # the reader closed: writes fail
        self.readable = trio.lowlevel.ParkingLot()
        self.writable = trio.lowlevel.ParkingLot()

    def wake(self) -> None:
        self.readable.unpark_all()
        self.writable.unpark_all()


class MemoryConnection(HalfCloseableConnection):
    """One end of an in-memory connection (make a pair with :func:`memory_connection_pair`).

    Closing one end is seen by the other as end-of-stream on read and as
    ``BrokenResourceError`` on write, as with a socket whose peer went away.
    """

    __slots__ = (
        "_closed",
        "_inbound",
        "_input_ended",
        "_outbound",
        "_receiving",
        "_sending",
        "idle",
        "local_address",
        "peer_address",
    )

    def __init__(self, inbound: _Pipe, outbound: _Pipe, *, local: Address, peer: Address) -> None:
        self._inbound = inbound
        self._outbound = outbound
        self.local_address = local
        self.peer_address = peer
        self.idle: Touchable | None = None
        self._closed = False
        self._input_ended = False
        self._receiving = False
        self._sending = False

    def _check_open(self) -> None:
        if self._closed:
            raise trio.ClosedResourceError("this connection was closed")

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        """Bytes from the peer (at most ``max_bytes``); ``b""`` at end of stream."""
        if max_bytes is not None:
            max_bytes = operator.index(max_bytes)
            if max_bytes < 1:
                raise ValueError(f"max_bytes must be >= 1, got {max_bytes}")
        if self._receiving:
            raise trio.BusyResourceError("another task is already receiving")
        self._receiving = True
        try:
            await trio.lowlevel.checkpoint()
            pipe = self._inbound
            while True:
                self._check_open()
                if pipe.buffer:
                    size = len(pipe.buffer) if max_bytes is None else max_bytes
                    data = bytes(pipe.buffer[:size])
                    del pipe.buffer[:size]
                    pipe.writable.unpark_all()
                    if self.idle is not None:
                        self.idle.touch()
                    return data
                if pipe.eof or self._input_ended:
                    return b""
                await pipe.readable.park()
        finally:
            self._receiving = False

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        """Queue ``data`` for the peer, waiting while its buffer is full."""
        if self._sending:
            raise trio.BusyResourceError("another task is already sending")
        self._sending = True
        try:
            await trio.lowlevel.checkpoint()
            view = memoryview(data)
            pipe = self._outbound
            while True:
                self._check_open()
                if pipe.eof:
                    raise trio.ClosedResourceError("can't send after send_eof()")
                if pipe.broken:
                    raise trio.BrokenResourceError("the peer closed the connection")
                room = pipe.limit - len(pipe.buffer)
                if room > 0 and view:
                    pipe.buffer += view[:room]
                    view = view[room:]
                    pipe.readable.unpark_all()
                    if self.idle is not None:
                        self.idle.touch()
                if not view:
                    return
                await pipe.writable.park()
        finally:
            self._sending = False

    async def wait_send_all_might_not_block(self) -> None:
        """Wait until the peer's buffer has room."""
        await trio.lowlevel.checkpoint()
        while not self._closed and len(self._outbound.buffer) >= self._outbound.limit:
            await self._outbound.writable.park()
        self._check_open()

    async def send_eof(self) -> None:
        """End the sending direction; the peer reads ``b""`` after what is buffered."""
        await trio.lowlevel.checkpoint()
        self._check_open()
        self._outbound.eof = True
        self._outbound.wake()

    def end_input(self) -> None:
        """Reads return what is buffered, then ``b""``; a parked reader wakes at once."""
        self._input_ended = True
        self._inbound.readable.unpark_all()

    async def aclose_gracefully(self, linger: float = 2.0) -> None:
        """Send EOF, discard the peer's input until it closes (at most ``linger`` s), close.

        Like a socket's lingering close: a peer still writing (a request body the server
        refused) is not failed before it has read what was sent to it.

        Cancellation: not shielded; a cancel closes at once.
        """
        try:
            with move_on_after(linger):
                if not self._closed:
                    self._outbound.eof = True
                    self._outbound.wake()
                pipe = self._inbound
                while not self._closed and not pipe.eof:
                    if pipe.buffer:
                        pipe.buffer.clear()
                        pipe.writable.unpark_all()
                    await pipe.readable.park()
        finally:
            self.close()

    def close(self) -> None:
        """Close at once: the peer reads EOF, and its writes fail."""
        if self._closed:
            return
        self._closed = True
        self._outbound.eof = True
        self._inbound.broken = True
        self._inbound.buffer.clear()
        self._outbound.wake()
        self._inbound.wake()

    async def aclose(self) -> None:
        """Close (see :meth:`close`); a checkpoint."""
        self.close()
        await trio.lowlevel.checkpoint()


def memory_connection_pair(
    *,
    client_address: Address = ("127.0.0.2", 40000),
    server_address: Address = ("127.0.0.1", 8000),
    buffer: int = DEFAULT_PIPE_BUFFER,
) -> tuple[MemoryConnection, MemoryConnection]:
    """A connected (client, server) pair of MemoryConnections."""
    up, down = _Pipe(buffer), _Pipe(buffer)
    client = MemoryConnection(down, up, local=client_address, peer=server_address)
    server = MemoryConnection(up, down, local=server_address, peer=client_address)
    return client, server


class MemoryListener:
    """A :class:`~runtime.net.abc.Listener` that clients reach with :meth:`connect`.

    Args:
        address: The address the server side reports as its local address.
        backlog: Connections that may wait unaccepted; :meth:`connect` waits beyond it.
    """

    def __init__(self, address: Address = ("127.0.0.1", 8000), *, backlog: int = 128) -> None:
        self.address = address
        self._send, self._receive = trio.open_memory_channel[MemoryConnection](backlog)
        self._next_port = 40000
        self._closed = False

    async def connect(self, client_address: Address = None) -> MemoryConnection:
        """Open a connection to this listener; returns the client's end.

        Raises:
            ConnectionRefusedError: the listener is closed.
        """
        if self._closed:
            raise ConnectionRefusedError("the memory listener is closed")
        if client_address is None:
            self._next_port += 1
            client_address = ("127.0.0.2", self._next_port)
        client, server = memory_connection_pair(
            client_address=client_address, server_address=self.address
        )
        try:
            await self._send.send(server)
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            raise ConnectionRefusedError("the memory listener is closed") from None
        return client

    async def accept_batch(self, max_batch: int = 64) -> Sequence[MemoryConnection]:
        """Wait for one connection, then take up to ``max_batch`` without waiting.

        Cancellation: a cancelled call has accepted nothing.
        """
        try:
            batch = [await self._receive.receive()]
        except trio.EndOfChannel:
            raise trio.ClosedResourceError("the memory listener was closed") from None
        while len(batch) < max_batch:
            try:
                batch.append(self._receive.receive_nowait())
            except (trio.WouldBlock, trio.EndOfChannel):
                break
        return batch

    async def aclose(self) -> None:
        """Stop accepting (see :meth:`close`); a checkpoint."""
        self.close()
        await trio.lowlevel.checkpoint()

    def close(self) -> None:
        """Stop accepting now; waiting connections are closed, accept raises
        ClosedResourceError, and a later ``connect`` is refused."""
        if not self._closed:
            self._closed = True
            self._send.close()
            while True:
                try:
                    self._receive.receive_nowait().close()
                except (trio.WouldBlock, trio.EndOfChannel):
                    break


__all__ = ["MemoryConnection", "MemoryListener", "memory_connection_pair"]
