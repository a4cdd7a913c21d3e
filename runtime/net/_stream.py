"""Socket streams on the reactor: TcpStream and UnixStream.

Both implement ``trio.abc.HalfCloseableStream``, so ``trio.SSLStream``, trio-websocket and the
rest of the Trio ecosystem can run on them.

The hot path of every operation is: spend one unit of the cooperative budget (a cancellation
check, a schedule point only when the budget is spent), try the syscall if the reactor says the
socket may be ready, and park on the reactor only on ``EAGAIN``. The budget is spent *before*
the syscall, so a cancelled ``receive_some`` has received nothing.

Checkpoints: with the default budget an operation that completes at once is a cancellation
point but not a schedule point, on purpose (see the budget explanation page). With
``RuntimeConfig(coop_budget=1)`` every operation is a full Trio checkpoint, and the streams pass
Trio's own conformance suite (``trio.testing.check_half_closeable_stream``) in that mode.
"""

from __future__ import annotations

import select
import socket

import trio

from ..rt._coop import try_consume_budget
from ..time import move_on_after
from ._reactor import READ, WRITE, Reactor, Registration, current_reactor
from .abc import Address, HalfCloseableConnection, Touchable

DEFAULT_RECEIVE_SIZE = 65536
"""Bytes asked of the kernel when ``receive_some`` is given no size: one 64 KiB read."""

_checkpoint = trio.lowlevel.checkpoint


def _writable_now(sock: socket.socket) -> bool:
    poller = select.poll()
    poller.register(sock, select.POLLOUT)
    return bool(poller.poll(0))


def _broken(exc: OSError) -> trio.BrokenResourceError:
    return trio.BrokenResourceError(f"socket error: {exc.strerror or exc} (errno {exc.errno})")


def _address(get: object) -> Address:
    try:
        return get()  # type: ignore[operator]
    except OSError:  # not connected (any more)
        return None


class SocketStream(HalfCloseableConnection):
    """A connected stream socket driven by the runtime's reactor.

    Use :class:`TcpStream` or :class:`UnixStream`. The socket is put in non-blocking mode and
    registered with the reactor once; closing deregisters it before the fd is closed.

    Attributes:
        socket: the underlying stdlib socket (non-blocking). Use it for socket options, not
            for I/O.
        peer_address: the peer's address, captured when the stream was made (from
            ``accept()``'s result when a listener made it), so it is still known after the
            peer reset the connection.
        local_address: this end's address, captured at the same time.
        idle: an object whose ``touch()`` is called after every read and every partial
            write that moved bytes; a server sets it to the connection's idle deadline.
    """

    __slots__ = (
        "_eof",
        "_failure",
        "_input_ended",
        "_reactor",
        "_receiving",
        "_reg",
        "_sending",
        "idle",
        "local_address",
        "peer_address",
        "socket",
    )

    def __init__(
        self,
        sock: socket.socket,
        *,
        reactor: Reactor | None = None,
        peer_address: Address = None,
        local_address: Address = None,
    ) -> None:
        sock.setblocking(False)
        self.socket = sock
        self._reactor = reactor if reactor is not None else current_reactor()
        self._reg: Registration = self._reactor.register(sock)
        self._sending = False
        self._receiving = False
        self._eof = False
        # The first error of the connection. The kernel reports a reset once (reading the
        # error clears it), so after one the next recv() would say 0, a clean EOF: remember.
        self._failure: OSError | None = None
        self._input_ended = False
        self.idle: Touchable | None = None
        self.peer_address: Address = (
            peer_address if peer_address is not None else _address(sock.getpeername)
        )
        self.local_address: Address = (
            local_address if local_address is not None else _address(sock.getsockname)
        )

    # -- receiving ------------------------------------------------------------------------

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        """Receive up to ``max_bytes`` bytes (default 64 KiB); ``b""`` means end of stream.

        Cancellation: a cancelled call has received nothing.

        Raises:
            trio.BusyResourceError: another task is receiving on this stream.
            trio.ClosedResourceError: this stream was closed.
            trio.BrokenResourceError: the connection failed (e.g. reset by the peer).
        """
        if self._receiving:
            raise trio.BusyResourceError("another task is already receiving on this stream")
        if max_bytes is None:
            max_bytes = DEFAULT_RECEIVE_SIZE
        elif max_bytes < 1:
            raise ValueError(f"max_bytes must be >= 1, got {max_bytes}")
        self._receiving = True
        try:
            if not try_consume_budget():
                await _checkpoint()
            reg = self._reg
            while True:
                if reg.closed:
                    raise trio.ClosedResourceError("this stream was closed")
                if self._failure is not None:
                    raise _broken(self._failure)
                if reg.readiness & READ or self._input_ended:
                    try:
                        data = self.socket.recv(max_bytes)
                    except BlockingIOError:
                        reg.readiness &= ~READ
                        if self._input_ended:
                            return b""
                    except OSError as exc:
                        self._failure = exc
                        raise _broken(exc) from exc
                    else:
                        if len(data) < max_bytes and not reg.hup and data:
                            # A short read took everything the kernel had; anything that
                            # arrives later raises a fresh edge. So skip the recv that would
                            # only say EAGAIN. Not after a hang-up: a FIN that came with the
                            # data raises no further edge.
                            reg.readiness &= ~READ
                        if self.idle is not None:
                            self.idle.touch()
                        return data
                await self._reactor.park(reg, READ)
        finally:
            self._receiving = False

    # -- sending --------------------------------------------------------------------------

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        """Send all of ``data``; returns when the kernel has taken the last byte.

        Cancellation: if cancelled while waiting for buffer space, some of the data may have
        been sent; the stream is then in an unknown state and should be closed.

        Raises:
            trio.BusyResourceError: another task is sending on this stream.
            trio.ClosedResourceError: this stream was closed, or ``send_eof`` was called.
            trio.BrokenResourceError: the connection failed.
        """
        if self._sending:
            raise trio.BusyResourceError("another task is already sending on this stream")
        self._sending = True
        try:
            if not try_consume_budget():
                await _checkpoint()
            reg = self._reg
            # The fast path: one send() takes it all (the usual case for a reply that fits
            # the socket buffer). No memoryview, no loop.
            if (
                reg.readiness & WRITE
                and data
                and not reg.closed
                and self._failure is None
                and not self._eof
            ):
                try:
                    sent = self.socket.send(data)
                except BlockingIOError:
                    reg.readiness &= ~WRITE
                    sent = 0
                except OSError as exc:
                    self._failure = exc
                    raise _broken(exc) from exc
                if sent:
                    if self.idle is not None:
                        self.idle.touch()
                    if sent == (data.nbytes if type(data) is memoryview else len(data)):
                        return
            else:
                sent = 0
            await self._send_rest(data, sent)
        finally:
            self._sending = False

    async def _send_rest(self, data: bytes | bytearray | memoryview, sent: int) -> None:
        reg = self._reg
        sock = self.socket
        with memoryview(data) as raw, raw.cast("B") as view:  # bytes, whatever the format
            total = view.nbytes
            while True:
                if reg.closed:
                    raise trio.ClosedResourceError("this stream was closed")
                if self._failure is not None:
                    raise _broken(self._failure)
                if self._eof:
                    raise trio.ClosedResourceError("can't send data after send_eof()")
                if reg.readiness & WRITE and sent < total:
                    try:
                        sent += sock.send(view[sent:] if sent else view)
                    except BlockingIOError:
                        reg.readiness &= ~WRITE
                    except OSError as exc:
                        self._failure = exc
                        raise _broken(exc) from exc
                    else:
                        # Every write that moved bytes is activity: a long transfer to a
                        # peer that reads steadily is never idle.
                        if self.idle is not None:
                            self.idle.touch()
                        if sent >= total:
                            return
                        continue
                elif sent >= total:
                    if self.idle is not None:
                        self.idle.touch()
                    return  # empty data
                await self._reactor.park(reg, WRITE)

    async def wait_send_all_might_not_block(self) -> None:
        """Wait until the socket has room in its send buffer.

        Raises:
            trio.BusyResourceError: another task is sending or waiting to send.
            trio.ClosedResourceError: this stream was closed.
        """
        if self._sending:
            raise trio.BusyResourceError("another task is already sending on this stream")
        self._sending = True
        try:
            reg = self._reg
            if reg.closed:
                await _checkpoint()
                raise trio.ClosedResourceError("this stream was closed")
            if reg.readiness & WRITE and not _writable_now(self.socket):
                reg.readiness &= ~WRITE  # the flag is optimistic; this call must not be
            if reg.readiness & WRITE:
                await _checkpoint()
            else:
                await self._reactor.wait(reg, WRITE)
        finally:
            self._sending = False

    async def send_eof(self) -> None:
        """Close the sending half (TCP FIN); receiving still works.

        Raises:
            trio.BusyResourceError: a ``send_all`` is in progress.
            trio.ClosedResourceError: this stream was closed.
        """
        if self._sending:
            raise trio.BusyResourceError("can't send_eof while another task is sending")
        if self._reg.closed:
            await _checkpoint()
            raise trio.ClosedResourceError("this stream was closed")
        await _checkpoint()
        self._eof = True
        try:
            self.socket.shutdown(socket.SHUT_WR)
        except OSError:  # already disconnected: nothing left to half-close
            pass

    def end_input(self) -> None:
        """From now on, ``receive_some`` returns what is already buffered, then ``b""``.

        A receiver parked waiting for data wakes at once. The peer is not told anything;
        servers use this to drain (the handler sees end-of-stream and finishes).
        """
        self._input_ended = True
        self._reactor.interrupt(self._reg, READ)

    async def aclose_gracefully(self, linger: float = 2.0, max_discard: int = 1 << 20) -> None:
        """Half-close, discard the peer's input until it closes (bounded), then close.

        Closing a socket that still has unread input makes the kernel send a reset, which
        can destroy replies the peer has not read yet. This waits, for at most ``linger``
        seconds and ``max_discard`` bytes, for the peer to close its side first.

        Cancellation: not shielded. A cancel ends the lingering early and the socket is
        closed at once; a server that must linger through a cancel shields the call itself
        (the Server uses ``Runtime.shielded_scope()``, which the shutdown's final cancel
        still ends).
        """
        try:
            with move_on_after(linger):
                if not self._eof and not self._reg.closed:
                    await self.send_eof()
                self._input_ended = False
                discarded = 0
                while discarded < max_discard:
                    data = await self.receive_some()
                    if not data:
                        break
                    discarded += len(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError, trio.BusyResourceError):
            pass
        finally:
            self.close()

    # -- closing --------------------------------------------------------------------------

    def close(self) -> None:
        """Close at once, without a checkpoint (``aclose`` is the async form)."""
        self._reactor.deregister(self._reg)
        self.socket.close()

    async def aclose(self) -> None:
        """Deregister from the reactor, then close the socket. Idempotent.

        Tasks blocked on this stream wake with ``ClosedResourceError``.
        """
        self.close()
        await _checkpoint()

    def getpeername(self) -> Address:
        """The peer address captured when the stream was made (see ``peer_address``)."""
        return self.peer_address

    def setsockopt(self, level: int, option: int, value: int | bytes) -> None:
        """Set a socket option on the underlying socket."""
        self.socket.setsockopt(level, option, value)

    def getsockopt(self, level: int, option: int) -> int:
        """Read a socket option of the underlying socket."""
        return self.socket.getsockopt(level, option)


class TcpStream(SocketStream):
    """A TCP connection on the reactor. ``TCP_NODELAY`` is on by default.

    Create one with :meth:`connect`, or get one from :class:`TcpListener`.
    """

    __slots__ = ()

    def __init__(
        self,
        sock: socket.socket,
        *,
        reactor: Reactor | None = None,
        nodelay: bool = True,
        peer_address: Address = None,
        local_address: Address = None,
    ) -> None:
        super().__init__(
            sock, reactor=reactor, peer_address=peer_address, local_address=local_address
        )
        if nodelay:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:  # not TCP after all (a test double); harmless
                pass

    @classmethod
    async def connect(
        cls, host: str, port: int, *, happy_eyeballs_delay: float | None = 0.25
    ) -> TcpStream:
        """Connect to ``host:port``, trying every address Happy-Eyeballs style (via Trio).

        A shortcut for ``TcpConnector().connect(host, port)``.

        Cancellation: a cancelled connect leaves no socket open.

        Raises:
            OSError: no address could be connected to.
        """
        from ._connect import TcpConnector

        connector = TcpConnector(
            connect_timeout=None, happy_eyeballs_delay=happy_eyeballs_delay or 0.25
        )
        return await connector.connect(host, port)


class UnixStream(SocketStream):
    """A Unix-domain stream connection on the reactor."""

    __slots__ = ()

    @classmethod
    async def connect(cls, path: str) -> UnixStream:
        """Connect to the Unix socket at ``path`` (``UnixConnector(path).connect()``).

        Raises:
            OSError: nothing listens there.
        """
        from ._connect import UnixConnector

        return await UnixConnector(path).connect()

    @classmethod
    def pair(cls) -> tuple[UnixStream, UnixStream]:
        """A connected pair (``socket.socketpair``), handy for tests and for talking to a child."""
        a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        return cls(a), cls(b)
