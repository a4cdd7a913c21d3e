"""The server: an accept loop with limits, isolation, idle timeouts and a graceful drain.

One ``Server`` serves one handler on one or more listeners. What it guarantees:

* **A connection cap.** At ``max_connections`` the accept loop stops accepting until a
  connection ends; it never accepts a connection only to drop it. Each batch is sized to the
  room left under the cap.
* **Batched accepts.** Each readiness event drains up to ``accept_batch`` connections from
  the kernel queue, so a burst of connects is taken in a few passes instead of one per pass.
* **Accept errors don't kill it.** Running out of file descriptors (``EMFILE``/``ENFILE``) or
  memory is logged and retried with exponential backoff.
* **Isolation.** Each connection runs in its own task. An exception in a handler is logged
  with the peer's address and closes that connection only.
* **Idle timeout.** Each connection gets a wheel-driven :class:`~runtime.time.IdleDeadline`
  on the handler's scope; the stream touches it on every successful read and write.
* **Graceful drain.** When the runtime starts shutting down (or :meth:`Server.drain` is
  called), the server stops accepting, sets :attr:`Server.draining` (a
  ``CancellationToken`` that handlers can watch), and waits for handlers to finish. The
  runtime's grace period bounds the wait; then everything left is cancelled.
"""

from __future__ import annotations

import errno
import logging
from collections.abc import Awaitable, Callable, Sequence
from contextvars import ContextVar
from typing import Any, Generic, Protocol, TypeVar

import attrs
import trio

from ..rt import try_current
from ..sync import CancellationToken
from ..time import IdleDeadline, sleep
from ._stream import SocketStream

logger = logging.getLogger("runtime.net.server")

S = TypeVar("S", bound=SocketStream)
S_co = TypeVar("S_co", bound=SocketStream, covariant=True)

_RESOURCE_ERRORS = {errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS}

_current_server: ContextVar[Server[Any] | None] = ContextVar("runtime_server", default=None)


class BatchListener(Protocol[S_co]):
    """What the server accepts from: a listener with ``accept_batch`` and ``aclose``."""

    async def accept_batch(self, max_batch: int = ...) -> Sequence[S_co]: ...

    async def aclose(self) -> None: ...


def _positive(_inst: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if not value > 0:
        raise ValueError(f"{attribute.name} must be > 0, got {value!r}")


def _optional_positive(_inst: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and not value > 0:
        raise ValueError(f"{attribute.name} must be > 0 or None, got {value!r}")


@attrs.frozen
class ServerConfig:
    """Limits and timeouts of a server.

    Attributes:
        max_connections: Connections served at once. At the cap, accepting pauses (the kernel
            queues new connects in the listen backlog) until one ends. Default 10,000.
        idle_timeout: Seconds a connection may go without a successful read or write before
            its handler is cancelled; None disables it. Default 60. The cut comes between one
            and two periods after the last activity (see IdleDeadline).
        accept_batch: Connections taken per readiness event. Default 64.
        accept_backoff: First pause after a resource error from accept (EMFILE...), doubled
            on each repeat up to ``accept_backoff_max``. Default 0.1 s.
        accept_backoff_max: Longest such pause. Default 2 s.
        drain_on_shutdown: Start draining when the runtime starts shutting down. Default True.
        drain_reads: At a drain, end the input of every connection
            (:meth:`SocketStream.end_input`): each handler gets the bytes already buffered,
            then end-of-stream, and finishes as if the client had closed. Right for echo,
            line and length-framed protocols. Set it False when the protocol drains on its own
            by watching ``Server.draining`` (HTTP finishes the request in flight and answers
            ``Connection: close``). Default True.
        linger: After a drained connection's handler returns, the server half-closes it and
            reads and discards what the client still sends, for at most this many seconds,
            before closing. Closing with unread input makes the kernel send a reset, which can
            destroy replies the client has not read yet. Default 2 s.
        name: Used in log lines.
    """

    max_connections: int = attrs.field(default=10_000, validator=_positive)
    idle_timeout: float | None = attrs.field(default=60.0, validator=_optional_positive)
    accept_batch: int = attrs.field(default=64, validator=_positive)
    accept_backoff: float = attrs.field(default=0.1, validator=_positive)
    accept_backoff_max: float = attrs.field(default=2.0, validator=_positive)
    drain_on_shutdown: bool = True
    drain_reads: bool = True
    linger: float = attrs.field(default=2.0, validator=_positive)
    name: str = "server"


@attrs.frozen
class ServerStatistics:
    """Counters of one server.

    Attributes:
        active: connections being served now.
        accepted: connections accepted since start.
        rejected: connections accepted but closed unserved because the server was draining.
        errored: handlers that raised (other than a broken connection).
        broken: connections that ended because the peer reset or vanished.
        idle_closed: connections cut by the idle timeout.
        accept_errors: resource errors from accept (EMFILE...), each followed by a backoff.
        draining: whether the server has stopped accepting.
    """

    active: int
    accepted: int
    rejected: int
    errored: int
    broken: int
    idle_closed: int
    accept_errors: int
    draining: bool


def _peer(stream: SocketStream) -> str:
    peer = stream.getpeername()
    if isinstance(peer, tuple) and len(peer) >= 2:
        host, port = peer[0], peer[1]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return str(peer) if peer else "<unknown peer>"


class Server(Generic[S]):
    """Serve ``handler(stream)`` for every connection on ``listeners``.

    Use :meth:`serve` (a ``serve_*``-style loop that takes ``task_status``), or the
    :func:`serve` function.

    Attributes:
        draining: set when the server stops accepting; handlers can ``await
            server.draining.cancelled()`` or check ``is_cancelled()`` to finish early.
    """

    def __init__(
        self,
        handler: Callable[[S], Awaitable[object]],
        listeners: Sequence[BatchListener[S]],
        config: ServerConfig | None = None,
    ) -> None:
        if not listeners:
            raise ValueError("a server needs at least one listener")
        self.handler = handler
        self.listeners = list(listeners)
        self.config = config or ServerConfig()
        self.draining = CancellationToken()
        self._active = 0
        self._accepted = 0
        self._rejected = 0
        self._errored = 0
        self._broken = 0
        self._idle_closed = 0
        self._accept_errors = 0
        self._room = trio.Event()
        self._idle = trio.Event()
        self._idle.set()
        self._streams: set[S] = set()

    def statistics(self) -> ServerStatistics:
        """A snapshot of the counters."""
        return ServerStatistics(
            active=self._active,
            accepted=self._accepted,
            rejected=self._rejected,
            errored=self._errored,
            broken=self._broken,
            idle_closed=self._idle_closed,
            accept_errors=self._accept_errors,
            draining=self.draining.is_cancelled(),
        )

    def drain(self) -> None:
        """Stop accepting and let the handlers finish. Idempotent; returns at once."""
        if not self.draining.is_cancelled():
            logger.info("%s: draining, %d connections active", self.config.name, self._active)
            self.draining.cancel()
            if self.config.drain_reads:
                for stream in self._streams:
                    stream.end_input()

    async def serve(
        self, *, task_status: trio.TaskStatus[Server[S]] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Accept and serve until drained, then wait for every connection to end.

        Reports ``task_status.started(self)`` once it is accepting.

        Cancellation: cancelling it closes the listeners and cancels every handler.
        """
        token = _current_server.set(self)
        try:
            async with trio.open_nursery() as nursery:
                for listener in self.listeners:
                    nursery.start_soon(self._accept_loop, listener, nursery)
                if self.config.drain_on_shutdown:
                    rt = try_current()
                    if rt is not None:
                        nursery.start_soon(self._drain_on_shutdown, rt.shutdown_requested)
                task_status.started(self)
                await self.draining.cancelled()
                for listener in self.listeners:
                    await listener.aclose()
            logger.info("%s: drained", self.config.name)
        finally:
            _current_server.reset(token)
            for listener in self.listeners:
                with trio.CancelScope(shield=True):
                    await listener.aclose()

    async def _drain_on_shutdown(self, shutdown_requested: Callable[[], Awaitable[None]]) -> None:
        with self.draining.scope():
            await shutdown_requested()
            self.drain()

    async def _accept_loop(self, listener: BatchListener[S], nursery: trio.Nursery) -> None:
        backoff = self.config.accept_backoff
        with self.draining.scope():
            while True:
                room = self.config.max_connections - self._active
                if room <= 0:
                    self._room = trio.Event()
                    await self._room.wait()
                    continue
                try:
                    batch = await listener.accept_batch(min(room, self.config.accept_batch))
                except trio.ClosedResourceError:
                    return
                except OSError as exc:
                    if exc.errno not in _RESOURCE_ERRORS:
                        raise
                    self._accept_errors += 1
                    logger.error(
                        "%s: accept failed (%s); retrying in %.2gs. Raise the file "
                        "descriptor limit (ulimit -n) or lower max_connections",
                        self.config.name,
                        exc.strerror or exc,
                        backoff,
                    )
                    await sleep(backoff)
                    backoff = min(backoff * 2, self.config.accept_backoff_max)
                    continue
                backoff = self.config.accept_backoff
                for stream in batch:
                    self._start(stream, nursery)

    def _start(self, stream: S, nursery: trio.Nursery) -> None:
        self._accepted += 1
        if self.draining.is_cancelled():
            self._rejected += 1
            stream.close()
            return
        self._active += 1
        if self._active == 1:
            self._idle = trio.Event()
        self._streams.add(stream)
        nursery.start_soon(self._connection, stream)

    async def _connection(self, stream: S) -> None:
        peer = ""
        try:
            with trio.CancelScope() as scope:
                timeout = self.config.idle_timeout
                idle = IdleDeadline(timeout, scope=scope) if timeout is not None else None
                stream.idle = idle
                try:
                    await self.handler(stream)
                finally:
                    if idle is not None:
                        idle.close()
            if idle is not None and idle.expired and scope.cancelled_caught:
                self._idle_closed += 1
                logger.info(
                    "%s: %s idle for %gs, closed", self.config.name, _peer(stream), timeout
                )
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            self._broken += 1
            logger.debug("%s: %s connection lost: %s", self.config.name, _peer(stream), exc)
        except Exception as exc:
            self._errored += 1
            peer = _peer(stream)
            logger.error(
                "%s: handler failed for %s; closing that connection only",
                self.config.name,
                peer,
                exc_info=exc,
            )
        finally:
            self._streams.discard(stream)
            if self.draining.is_cancelled():
                await stream.aclose_gracefully(self.config.linger)
            stream.close()
            self._active -= 1
            if not self._room.is_set():
                self._room.set()
            if self._active == 0:
                self._idle.set()

    async def wait_idle(self) -> None:
        """Wait until no connection is active."""
        await self._idle.wait()


async def serve(
    handler: Callable[[S], Awaitable[object]],
    listeners: Sequence[BatchListener[S]],
    *,
    config: ServerConfig | None = None,
    task_status: trio.TaskStatus[Server[S]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``handler`` on ``listeners`` until drained. See :class:`Server`.

    Example::

        listeners = await open_tcp_listeners(8080, host="127.0.0.1")
        await serve(echo, listeners, config=ServerConfig(max_connections=1000))

    Cancellation: cancelling it closes the listeners and cancels every handler.
    """
    await Server(handler, listeners, config).serve(task_status=task_status)


def current_server() -> Server[Any]:
    """The server whose connection handler is running this code.

    Raises:
        RuntimeError: outside a connection handler.
    """
    server = _current_server.get()
    if server is None:
        raise RuntimeError("current_server() is only available inside a connection handler")
    return server
