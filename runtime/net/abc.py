"""The transport seam: ``Connection``, ``Listener`` and ``Connector``.

Everything above ``runtime.net`` (the :class:`~runtime.net.Server`, the HTTP server and
client, the proxy) talks to the network only through these three types, so that the same code
runs over TCP, Unix sockets, TLS, and an in-memory or simulated network:

* A :class:`Connection` is a ``trio.abc.Stream`` that also knows its two addresses (captured
  when it was accepted or connected, never read from the socket later, so they survive a
  reset), can *end its input* (a server drain: the reader gets what is buffered, then
  end-of-stream), carries an activity hook (``idle``, touched on every read and write that
  made progress) and can close gracefully within a bound. A :class:`HalfCloseableConnection`
  adds ``send_eof`` (TCP and Unix have it; TLS does not).
* A :class:`Listener` yields Connections in batches.
* A :class:`Connector` opens a Connection to ``host, port``.

``Connection`` is an abstract class (it extends Trio's own ABC, so a Connection works with
``trio.SSLStream``, trio-websocket and Trio's stream helpers). ``Listener`` and ``Connector``
are typing Protocols: anything with the right methods fits.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from typing import Protocol, TypeVar

import trio

Address = object
"""A socket address as the OS gives it: ``(host, port)`` (IPv6 adds two fields), a Unix path
(``str``; ``""`` for an unnamed socket), or whatever a simulated transport chooses."""


class Touchable(Protocol):
    """Anything with a ``touch()``: the idle deadline a server attaches to a connection."""

    def touch(self) -> None: ...


def format_address(address: Address) -> str:
    """``host:port`` (``[host]:port`` for IPv6), a Unix path, or ``<unknown>``.

    Example:
        >>> format_address(("::1", 8080, 0, 0))
        '[::1]:8080'
    """
    if isinstance(address, tuple) and len(address) >= 2:
        host, port = address[0], address[1]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    if isinstance(address, bytes):
        address = address.decode(errors="replace")
    return str(address) if address else "<unknown>"


class Connection(trio.abc.Stream):
    """One connected byte stream with its addresses, a drain switch and a graceful close.

    Implementations: :class:`~runtime.net.TcpStream`, :class:`~runtime.net.UnixStream`,
    :class:`~runtime.net.TlsConnection`, and test doubles (see ``runtime.testing``).

    Attributes:
        peer_address: The other end's address, captured at accept or connect time.
        local_address: This end's address, captured at the same time.
        idle: An activity hook. When set (a server sets it to the connection's
            :class:`~runtime.time.IdleDeadline`), its ``touch()`` is called after every read
            and every partial write that moved bytes, so a long transfer that is making
            progress is never cut as idle.
    """

    __slots__ = ()

    peer_address: Address
    local_address: Address
    idle: Touchable | None

    @abstractmethod
    def end_input(self) -> None:
        """From now on ``receive_some`` returns what is already buffered, then ``b""``.

        A receiver parked waiting for data wakes at once. The peer is told nothing: a server
        calls this to drain, and the handler finishes as if the client had closed.
        """

    @abstractmethod
    async def aclose_gracefully(self, linger: float = 2.0) -> None:
        """Close in a way that loses nothing the peer has not read yet, within ``linger`` s.

        For TCP: half-close, discard the peer's input until it closes, then close (closing
        with unread input makes the kernel send a reset, which can destroy replies in
        flight). For TLS: send ``close_notify`` first. The connection is closed at the end
        whatever happens.

        Cancellation: not shielded: a cancel ends the lingering at once. The connection
        is always closed when this returns or raises. A caller that must linger through a
        cancel shields the call (and bounds the shield: ``Runtime.shielded_scope()``).
        """

    @abstractmethod
    def close(self) -> None:
        """Close at once, without a checkpoint and without telling the peer anything more."""


class HalfCloseableConnection(Connection, trio.abc.HalfCloseableStream):
    """A Connection whose sending half can be closed alone (``send_eof``): TCP and Unix."""

    __slots__ = ()


C_co = TypeVar("C_co", bound=Connection, covariant=True)


class Listener(Protocol[C_co]):
    """What a server accepts from.

    The contract a :class:`~runtime.net.Server` relies on:

    * ``accept_batch(n)`` waits for at least one connection, then returns up to ``n``
      without waiting again.
    * A cancelled ``accept_batch`` has accepted nothing (so the server can cancel a
      waiting call when its connection cap fills up).
    * It raises ``trio.ClosedResourceError`` once closed, and ``OSError`` for failures.
      The server survives every ``OSError`` (it backs off from resource errors such as
      ``EMFILE`` and goes on after per-connection ones such as ``ECONNABORTED``).
    """

    async def accept_batch(self, max_batch: int = ...) -> Sequence[C_co]: ...

    async def aclose(self) -> None: ...


class Connector(Protocol[C_co]):
    """Opens connections: ``await connector.connect(host, port)``.

    Implementations: :class:`~runtime.net.TcpConnector`, :class:`~runtime.net.UnixConnector`
    and :class:`~runtime.net.TlsConnector` (TLS over any other Connector); a simulated
    network provides its own.
    """

    async def connect(self, host: str, port: int) -> C_co: ...


class BoundListener(Listener[C_co], Protocol[C_co]):
    """A :class:`Listener` bound to a port it can tell (useful after asking for port 0)."""

    @property
    def port(self) -> int: ...


class Network(Protocol):
    """Where a program opens its listeners and its outgoing connections.

    Code that takes a ``network`` (the proxy, the admin endpoint) opens every socket through
    it, so the same code runs on the machine's TCP stack (:class:`~runtime.net.TcpNetwork`,
    the default) or on a host of a simulated network (``runtime.testing.sim``).
    """

    def bind(self, host: str, port: int) -> BoundListener[Connection]:
        """Listen on ``host:port`` (port 0 picks one).

        Raises:
            OSError: the address is in use or not this host's.
        """
        ...

    def connector(self, *, connect_timeout: float | None) -> Connector[Connection]:
        """A Connector whose connects give up after ``connect_timeout`` seconds."""
        ...


__all__ = [
    "Address",
    "BoundListener",
    "Connection",
    "Connector",
    "HalfCloseableConnection",
    "Listener",
    "Network",
    "Touchable",
    "format_address",
]
