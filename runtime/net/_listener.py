"""Listeners: accept one connection, or drain the kernel's queue in a batch.

``trio.serve_tcp`` accepts one connection per scheduler pass, so under a burst of connects most
of them wait in the kernel's accept queue. :meth:`SocketListener.accept_batch` takes up to
``max_batch`` connections per readiness event, until ``EAGAIN``, which is what the server's
accept loop uses.

A listening socket waits through Trio (``trio.lowlevel.wait_readable``), not through the
reactor. Connects are rare next to reads and writes, and a task parked in the reactor may
become its *leader*, the task that polls for everyone: an accept loop in that role would
add a hop to every wake-up of every connection (it would wake, then wake the connection's
task one scheduler pass later). The streams it accepts are registered with the reactor.
"""

from __future__ import annotations

import errno
import os
import socket
import stat
from collections.abc import Callable
from typing import Generic, TypeVar

import trio

from ..rt._coop import try_consume_budget
from ._reactor import Reactor, current_reactor
from ._stream import SocketStream, TcpStream, UnixStream
from .abc import Address

S = TypeVar("S", bound=SocketStream)

DEFAULT_BACKLOG = 1024
"""Listen backlog. The kernel caps it at ``net.core.somaxconn`` (4096 on current Linux)."""

DEFAULT_MAX_BATCH = 64
"""Connections accepted per readiness event by ``accept_batch``: enough to drain a burst in a
few passes, small enough that one listener can't starve the connections it already has."""

# accept() errors that concern only the connection being accepted, or a network event that
# passes: skip it and go on. Linux passes pending network errors of the new socket up through
# accept(2) (see its man page), so these include the routing errnos. Trio's listener skips the
# same set. Resource errors (EMFILE, ENFILE, ENOBUFS, ENOMEM) are *not* here: retrying those at
# once only spins, so they are raised for the server to back off from.
TRANSIENT_ACCEPT_ERRORS = frozenset(
    code
    for code in (
        getattr(errno, name, None)
        for name in (
            "ECONNABORTED",
            "EPROTO",
            "EPERM",
            "ENETDOWN",
            "ENOPROTOOPT",
            "EHOSTDOWN",
            "ENONET",
            "EHOSTUNREACH",
            "EOPNOTSUPP",
            "ENETUNREACH",
            "ETIMEDOUT",
            "ECONNRESET",
            "ENOSR",
        )
    )
    if code is not None
)
"""errnos from ``accept`` that concern one connection only; the listener skips them."""

RESOURCE_ACCEPT_ERRORS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
"""errnos from ``accept`` that mean the process or system ran out of something: a server
backs off before trying again."""

_checkpoint = trio.lowlevel.checkpoint


class SocketListener(trio.abc.Listener[S], Generic[S]):
    """A listening socket driven by the reactor; yields streams of type ``S``.

    Resource errors from ``accept`` (``EMFILE``, ``ENFILE``, ``ENOBUFS``, ``ENOMEM``) are
    raised as ``OSError`` for the caller to back off from; errors that only concern the
    connection being accepted (``ECONNABORTED``, ``ECONNRESET``, the routing errnos Linux
    passes up: :data:`TRANSIENT_ACCEPT_ERRORS`) are skipped and counted in
    ``skipped_errors``.

    Attributes:
        socket: the listening stdlib socket.
    """

    def __init__(
        self,
        sock: socket.socket,
        make_stream: Callable[[socket.socket, Reactor, Address, Address], S],
        *,
        reactor: Reactor | None = None,
    ) -> None:
        sock.setblocking(False)
        self.socket = sock
        self._make_stream = make_stream
        # Every connection's local address is the listener's own unless the listener is bound
        # to a wildcard address: share that one tuple instead of a getsockname() each.
        self._local: Address = _shared_local_address(sock)
        self._reactor = reactor if reactor is not None else current_reactor()
        self._accepting = False
        self._closed = False
        self.skipped_errors = 0
        """Accept errors skipped since the start (see ``TRANSIENT_ACCEPT_ERRORS``)."""

    @property
    def address(self) -> object:
        """The bound address (``(host, port)`` for TCP, the path for Unix)."""
        return self.socket.getsockname()

    def _accept_now(self) -> S | bool | None:
        """One non-blocking accept: a stream, None on EAGAIN, False after a skipped error."""
        try:
            conn, address = self.socket.accept()
        except BlockingIOError:
            return None
        except OSError as exc:
            if exc.errno in TRANSIENT_ACCEPT_ERRORS:
                self.skipped_errors += 1
                return False
            raise
        return self._make_stream(conn, self._reactor, address, self._local)

    async def accept(self) -> S:
        """Wait for and return the next connection.

        Cancellation: a cancelled call has accepted nothing.

        Raises:
            trio.ClosedResourceError: the listener was closed.
            trio.BusyResourceError: another task is accepting.
            OSError: a resource error such as EMFILE; back off and retry.
        """
        streams = await self.accept_batch(1)
        return streams[0]

    async def accept_batch(self, max_batch: int = DEFAULT_MAX_BATCH) -> list[S]:
        """Wait for at least one connection, then take up to ``max_batch`` without waiting.

        Cancellation: a cancelled call has accepted nothing.

        Raises:
            trio.ClosedResourceError: the listener was closed.
            trio.BusyResourceError: another task is accepting.
            OSError: a resource error such as EMFILE, raised only if nothing was accepted
                in this call (otherwise the batch is returned and the error comes next time).
        """
        if self._accepting:
            raise trio.BusyResourceError("another task is already accepting on this listener")
        self._accepting = True
        try:
            if not try_consume_budget():
                await _checkpoint()
            while True:
                if self._closed:
                    raise trio.ClosedResourceError("this listener was closed")
                batch: list[S] = []
                # Every attempt, a skipped error included, counts against the batch, so a
                # listener that keeps failing still yields to the scheduler between passes.
                attempts = 0
                empty = False
                while attempts < max_batch:
                    attempts += 1
                    try:
                        stream = self._accept_now()
                    except OSError:
                        if batch:
                            return batch
                        raise
                    if stream is None:
                        empty = True
                        break
                    if stream is not False:
                        batch.append(stream)  # type: ignore[arg-type]
                if batch:
                    return batch
                if empty:
                    await trio.lowlevel.wait_readable(self.socket)
                else:
                    await _checkpoint()  # only skipped errors: go round again, fairly
        finally:
            self._accepting = False

    def close(self) -> None:
        """Stop listening now, without a checkpoint (what ``aclose`` does before its own).

        A connect that comes after it is refused, not accepted and then reset: the server
        calls this when it starts draining. A task blocked in ``accept`` wakes with
        ClosedResourceError.
        """
        if not self._closed:
            self._closed = True
            trio.lowlevel.notify_closing(self.socket)
            self.socket.close()

    async def aclose(self) -> None:
        """Stop listening. A task blocked in ``accept`` wakes with ClosedResourceError."""
        self.close()
        await _checkpoint()


def _shared_local_address(sock: socket.socket) -> Address:
    try:
        local = sock.getsockname()
    except OSError:
        return None
    if isinstance(local, tuple) and local[0] in ("0.0.0.0", "::"):
        return None  # each connection has its own: ask the socket
    return local


def _tcp_stream(sock: socket.socket, reactor: Reactor, peer: Address, local: Address) -> TcpStream:
    return TcpStream(sock, reactor=reactor, peer_address=peer, local_address=local)


def _unix_stream(
    sock: socket.socket, reactor: Reactor, peer: Address, local: Address
) -> UnixStream:
    return UnixStream(sock, reactor=reactor, peer_address=peer, local_address=local)


class TcpListener(SocketListener[TcpStream]):
    """A listening TCP socket. Accepted streams have ``TCP_NODELAY`` on.

    Create with :meth:`bind` (one address) or :func:`open_tcp_listeners` (every address a
    host name resolves to, like ``trio.open_tcp_listeners``).
    """

    def __init__(self, sock: socket.socket, *, reactor: Reactor | None = None) -> None:
        super().__init__(sock, _tcp_stream, reactor=reactor)

    @property
    def port(self) -> int:
        """The bound port (useful after binding port 0)."""
        return int(self.socket.getsockname()[1])

    @classmethod
    def bind(
        cls,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        backlog: int = DEFAULT_BACKLOG,
        reuse_port: bool = False,
    ) -> TcpListener:
        """Bind and listen on one address (a literal IP, not a name).

        Args:
            host: The address; ``"::"`` or ``"0.0.0.0"`` for all interfaces.
            port: 0 picks a free port.
            backlog: Listen queue length.
            reuse_port: Set ``SO_REUSEPORT`` so several processes can share the port (the
                kernel spreads connections across them). Linux and BSD only.

        Raises:
            OSError: the address is in use or not available.
        """
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            _prepare_tcp_listener(sock, family, reuse_port)
            sock.bind((host, port))
            sock.listen(backlog)
        except BaseException:
            sock.close()
            raise
        return cls(sock)


def _prepare_tcp_listener(sock: socket.socket, family: int, reuse_port: bool) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        if not hasattr(socket, "SO_REUSEPORT"):
            raise OSError(errno.ENOPROTOOPT, "SO_REUSEPORT is not available on this platform")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    if family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)


async def open_tcp_listeners(
    port: int,
    *,
    host: str | None = None,
    backlog: int = DEFAULT_BACKLOG,
    reuse_port: bool = False,
) -> list[TcpListener]:
    """Listen on every address ``host`` resolves to (all interfaces when None).

    Like ``trio.open_tcp_listeners``, but the listeners run on the reactor and accept in
    batches. With port 0 and several addresses, each gets its own free port.

    Raises:
        OSError: no address could be bound.
    """
    infos = await trio.socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )
    listeners: list[TcpListener] = []
    errors: list[OSError] = []
    seen: set[tuple[int, object]] = set()
    for family, kind, proto, _, sockaddr in infos:
        if (family, sockaddr) in seen:
            continue
        seen.add((family, sockaddr))
        sock = socket.socket(family, kind, proto)
        try:
            _prepare_tcp_listener(sock, family, reuse_port)
            sock.bind(sockaddr)
            sock.listen(backlog)
        except OSError as exc:
            sock.close()
            errors.append(exc)
            continue
        listeners.append(TcpListener(sock))
    if not listeners:
        raise OSError(f"could not bind any address for {host!r} port {port}: {errors}")
    return listeners


class UnixListener(SocketListener[UnixStream]):
    """A listening Unix-domain stream socket."""

    def __init__(self, sock: socket.socket, *, reactor: Reactor | None = None) -> None:
        super().__init__(sock, _unix_stream, reactor=reactor)

    @classmethod
    def bind(
        cls, path: str, *, backlog: int = DEFAULT_BACKLOG, mode: int | None = None
    ) -> UnixListener:
        """Bind and listen at ``path``.

        A stale socket file left by a dead process is replaced; a live one (something
        accepts connections there) is an error, as is any file that is not a socket.

        Args:
            path: Filesystem path of the socket.
            backlog: Listen queue length.
            mode: Permission bits to set on the socket file, e.g. ``0o660``.

        Raises:
            OSError: the path is in use by a live listener, or is not a socket.
        """
        _remove_stale_socket(path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(path)
            if mode is not None:
                os.chmod(path, mode)
            sock.listen(backlog)
        except BaseException:
            sock.close()
            raise
        return cls(sock)


def _remove_stale_socket(path: str) -> None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise OSError(errno.EADDRINUSE, f"{path} exists and is not a socket; remove it")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except ConnectionRefusedError:
        os.unlink(path)  # nobody listens: a leftover from a dead process
        return
    finally:
        probe.close()
    raise OSError(errno.EADDRINUSE, f"{path} is in use by a live listener")
