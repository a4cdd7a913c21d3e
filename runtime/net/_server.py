"""The server: an accept loop with limits, isolation, idle timeouts and a graceful drain.

One ``Server`` serves one handler on one or more listeners. What it guarantees:

* **A connection cap.** At ``max_connections`` the accept loop stops accepting until a
  connection ends; it never accepts a connection only to drop it. Each batch is sized to the
  room left under the cap.
* **Batched accepts.** Each readiness event drains up to ``accept_batch`` connections from
  the kernel queue, so a burst of connects is taken in a few passes instead of one per pass.
* **The cap holds across listeners.** With several listeners (``open_tcp_listeners(0)``
  gives one for 0.0.0.0 and one for ::), each accept loop asks only for the room left, a
  loop that is waiting with a request larger than the room left is cancelled and asks again
  (a cancelled ``accept_batch`` has accepted nothing), and every loop resumes when room
  frees. In the rare race where two loops wake in the same scheduler pass, the extra
  connections wait, accepted but not served, in a FIFO until room frees.
* **Accept errors don't kill it.** Nothing an accept raises stops the server. Running out of
  file descriptors, buffers or memory (``EMFILE``, ``ENFILE``, ``ENOBUFS``, ``ENOMEM``) and
  any unexpected error is logged and retried with exponential backoff; errors that concern
  one connection only (``ECONNABORTED``, ``ECONNRESET`` and the other transient errnos) are
  skipped.
* **Any transport.** The server depends only on the :mod:`runtime.net.abc` protocols: TCP,
  Unix, an in-memory test double, a simulated network. With ``tls=ssl_context`` each accepted
  connection is wrapped in TLS (:class:`~runtime.net.TlsConnection`) with a handshake
  deadline, under the same cap, idle timeout and drain.
* **Isolation.** Each connection runs in its own task. An exception in a handler is logged
  with the peer's address and closes that connection only. A peer that resets or vanishes
  (``BrokenResourceError``, ``ConnectionResetError``, ``BrokenPipeError``, also inside an
  exception group from a handler's nursery) is a normal end: one DEBUG line, counted as
  ``broken``.
* **Idle timeout.** Each connection gets a wheel-driven :class:`~runtime.time.IdleDeadline`
  on the handler's scope; the stream touches it on every successful read and write.
* **Graceful drain.** When the runtime starts shutting down (or :meth:`Server.drain` is
  called), the server stops accepting, sets :attr:`Server.draining` (a
  ``CancellationToken`` that handlers can watch), and waits for handlers to finish. The
  runtime's grace period bounds the wait; then everything left is cancelled.
"""

from __future__ import annotations

import logging
import ssl
import weakref
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractContextManager as ContextManager
from contextvars import ContextVar
from types import FrameType
from typing import Any, Generic, TypeVar

import attrs
import trio

from ..rt import Runtime, _scope, describe_task_kind, try_current
from ..sync import CancellationToken
from ..time import IdleDeadline, sleep
from ._listener import RESOURCE_ACCEPT_ERRORS, TRANSIENT_ACCEPT_ERRORS
from ._tls import DEFAULT_HANDSHAKE_TIMEOUT, tls_accept
from .abc import Connection, Listener, format_address

logger = logging.getLogger("runtime.net.server")

C = TypeVar("C", bound=Connection)

BatchListener = Listener
"""The old name of :class:`~runtime.net.abc.Listener`."""

_current_server: ContextVar[Server[Any] | None] = ContextVar("runtime_server", default=None)

_positive_int = attrs.validators.gt(0)
_positive = attrs.validators.gt(0.0)
# Typed Any: mypy infers a field's type from its float default and would refuse Optional.
_optional_positive: Any = attrs.validators.optional(_positive)

# What a connection that ended because of the peer or the network raises.
_BROKEN = (trio.BrokenResourceError, trio.ClosedResourceError, ConnectionError, ssl.SSLError)


def is_broken_connection(exc: BaseException) -> bool:
    """True if ``exc`` says the connection broke (peer reset, broken pipe...), not a bug.

    An exception group counts when every exception in it does: a handler whose nursery
    saw the reset in two tasks at once raised nothing more than a reset.
    """
    if isinstance(exc, BaseExceptionGroup):
        return all(is_broken_connection(inner) for inner in exc.exceptions)
    return isinstance(exc, _BROKEN)


@attrs.frozen
class ServerConfig:
    """Limits and timeouts of a server.

    Attributes:
        max_connections: Connections served at once, across all listeners. At the cap,
            accepting pauses (the kernel queues new connects in the listen backlog) until one
            ends. Default 10,000.
        idle_timeout: Seconds a connection may go without a read or a write that moved bytes
            before its handler is cancelled; None disables it. Default 60. The cut comes
            between one and two periods after the last activity (see IdleDeadline).
        handshake_timeout: Seconds a TLS handshake may take (only with ``tls=``). Default 10.
        accept_batch: Connections taken per readiness event. Default 64.
        accept_backoff: First pause after a resource error from accept (EMFILE...), doubled
            on each repeat up to ``accept_backoff_max``. Default 0.1 s.
        accept_backoff_max: Longest such pause. Default 2 s.
        drain_on_shutdown: Start draining when the runtime starts shutting down. Default True.
        drain_reads: At a drain, end the input of every connection
            (:meth:`Connection.end_input`): each handler gets the bytes already buffered,
            then end-of-stream, and finishes as if the client had closed. Right for echo,
            line and length-framed protocols. Set it False when the protocol drains on its own
            by watching ``Server.draining`` (HTTP finishes the request in flight and answers
            ``Connection: close``). Default True.
        linger: After a drained connection's handler returns, the server closes it gracefully
            (:meth:`Connection.aclose_gracefully`: half-close, read and discard what the
            client still sends) for at most this many seconds. Closing with unread input makes
            the kernel send a reset, which can destroy replies the client has not read yet.
            The runtime's shutdown grace bounds it too. Default 2 s.
        name: Used in log lines.
    """

    max_connections: int = attrs.field(default=10_000, validator=_positive_int)
    idle_timeout: float | None = attrs.field(default=60.0, validator=_optional_positive)
    handshake_timeout: float = attrs.field(default=DEFAULT_HANDSHAKE_TIMEOUT, validator=_positive)
    accept_batch: int = attrs.field(default=64, validator=_positive_int)
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
        pending: connections accepted in a race past the cap, waiting for room (rarely
            above 0; see the module docstring).
        accepted: connections accepted since start.
        rejected: connections accepted but closed unserved because the server was draining.
        errored: handlers that raised (other than a broken connection).
        broken: connections that ended because the peer reset or vanished.
        idle_closed: connections cut by the idle timeout.
        tls_failed: TLS handshakes that failed or timed out.
        accept_errors: errors from accept that made the server back off (EMFILE, ...).
        accept_skipped: errors from accept that concerned one connection only (skipped).
        draining: whether the server has stopped accepting.
    """

    active: int
    pending: int
    accepted: int
    rejected: int
    errored: int
    broken: int
    idle_closed: int
    tls_failed: int
    accept_errors: int
    accept_skipped: int
    draining: bool


class Server(Generic[C]):
    """Serve ``handler(connection)`` for every connection on ``listeners``.

    Use :meth:`serve` (a ``serve_*``-style loop that takes ``task_status``), or the
    :func:`serve` function.

    Args:
        handler: Called once per connection, in its own task.
        listeners: Where connections come from (any :class:`~runtime.net.abc.Listener`).
        config: Limits and timeouts (default :class:`ServerConfig()`).
        tls: A server ``ssl.SSLContext`` (see :func:`~runtime.net.server_ssl_context`): every
            connection is then a :class:`~runtime.net.TlsConnection`, handed to the handler
            with the handshake done.

    Attributes:
        draining: set when the server stops accepting; handlers can ``await
            server.draining.cancelled()`` or check ``is_cancelled()`` to finish early.
    """

    def __init__(
        self,
        handler: Callable[[C], Awaitable[object]],
        listeners: Sequence[Listener[C]],
        config: ServerConfig | None = None,
        *,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        if not listeners:
            raise ValueError("a server needs at least one listener")
        self.handler = handler
        self.listeners = list(listeners)
        self.config = config or ServerConfig()
        self.tls = tls
        self.draining = CancellationToken()
        self._active = 0
        self._accepted = 0
        self._rejected = 0
        self._errored = 0
        self._broken = 0
        self._idle_closed = 0
        self._tls_failed = 0
        self._accept_errors = 0
        self._accept_skipped = 0
        self._room_lot = trio.lowlevel.ParkingLot()
        # The accept calls in flight: their cancel scope and how many they asked for.
        self._waiting: dict[trio.CancelScope, int] = {}
        self._pending: deque[C] = deque()
        self._nursery: trio.Nursery | None = None
        self._idle = trio.Event()
        self._idle.set()
        # a dict as an ordered set: a drain visits connections in one order (the simulator)
        self._connections: dict[Connection, None] = {}
        self._runtime: Runtime | None = None  # the runtime it serves in, once serving

    def statistics(self) -> ServerStatistics:
        """A snapshot of the counters."""
        return ServerStatistics(
            active=self._active,
            pending=len(self._pending),
            accepted=self._accepted,
            rejected=self._rejected,
            errored=self._errored,
            broken=self._broken,
            idle_closed=self._idle_closed,
            tls_failed=self._tls_failed,
            accept_errors=self._accept_errors,
            accept_skipped=self._accept_skipped,
            draining=self.draining.is_cancelled(),
        )

    def drain(self) -> None:
        """Stop accepting and let the handlers finish. Idempotent; returns at once."""
        if not self.draining.is_cancelled():
            logger.info("%s: draining, %d connections active", self.config.name, self._active)
            self.draining.cancel()
            # Close the listening sockets now, not when serve() next runs: a client that
            # reconnects at once is refused instead of being accepted by the kernel and then
            # reset when the socket closes with it in the backlog.
            for listener in self.listeners:
                close = getattr(listener, "close", None)
                if close is not None:
                    close()
            while self._pending:
                self._rejected += 1
                self._pending.popleft().close()
            if self.config.drain_reads:
                for connection in self._connections:
                    connection.end_input()

    async def serve(
        self, *, task_status: trio.TaskStatus[Server[C]] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Accept and serve until drained, then wait for every connection to end.

        Reports ``task_status.started(self)`` once it is accepting.

        Cancellation: cancelling it closes the listeners and cancels every handler.
        """
        token = _current_server.set(self)
        # Registered before the first checkpoint: a SIGTERM that comes right after the
        # caller printed its listening line finds this server draining, not nothing.
        rt = try_current() if self.config.drain_on_shutdown else None
        unregister = rt.on_shutdown(self.drain) if rt is not None else None
        _serving.add(self)
        self._runtime = try_current()
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                for listener in self.listeners:
                    nursery.start_soon(self._accept_loop, listener)
                task_status.started(self)
                await self.draining.cancelled()
                for listener in self.listeners:
                    await listener.aclose()
            logger.info("%s: drained", self.config.name)
        finally:
            _serving.discard(self)
            if unregister is not None:
                unregister()
            _current_server.reset(token)
            for pending in self._pending:
                pending.close()
            self._pending.clear()
            for listener in self.listeners:
                with trio.CancelScope(shield=True):
                    await listener.aclose()

    # -- accepting ------------------------------------------------------------------------

    def _room(self) -> int:
        return self.config.max_connections - self._active - len(self._pending)

    async def _accept_loop(self, listener: Listener[C]) -> None:
        backoff = self.config.accept_backoff
        skipped_in_a_row = 0
        with self.draining.scope():
            while True:
                room = self._room()
                if room <= 0:
                    await self._room_lot.park()
                    continue
                error: BaseException | None = None
                with trio.CancelScope() as waiting:
                    self._waiting[waiting] = want = min(room, self.config.accept_batch)
                    try:
                        batch = await listener.accept_batch(want)
                    except trio.ClosedResourceError:
                        return
                    except Exception as exc:  # nothing an accept raises stops the server
                        error = exc
                    finally:
                        del self._waiting[waiting]
                if waiting.cancelled_caught:
                    continue  # the room shrank while we waited; nothing was accepted
                if error is None:
                    backoff = self.config.accept_backoff
                    skipped_in_a_row = 0
                    for connection in batch:
                        self._start(connection)
                    self._shrink_waiting_requests()
                    continue
                code = getattr(error, "errno", None)
                if code in TRANSIENT_ACCEPT_ERRORS and skipped_in_a_row < 100:
                    # One connection's problem: skip it. A listener that raises nothing else
                    # a hundred times running is treated as failing (backoff below).
                    skipped_in_a_row += 1
                    self._accept_skipped += 1
                    logger.debug("%s: accept skipped a connection: %s", self.config.name, error)
                    await trio.lowlevel.checkpoint()
                    continue
                skipped_in_a_row = 0
                self._accept_errors += 1
                self._log_accept_error(error, code, backoff)
                await sleep(backoff)
                backoff = min(backoff * 2, self.config.accept_backoff_max)

    def _log_accept_error(self, error: BaseException, code: int | None, backoff: float) -> None:
        if code in RESOURCE_ACCEPT_ERRORS:
            logger.error(
                "%s: accept failed (%s); retrying in %.2gs. Raise the file descriptor limit "
                "(ulimit -n) or lower max_connections",
                self.config.name,
                getattr(error, "strerror", None) or error,
                backoff,
            )
        else:
            logger.error(
                "%s: accept failed; retrying in %.2gs",
                self.config.name,
                backoff,
                exc_info=error,
            )

    def _shrink_waiting_requests(self) -> None:
        """Cancel the accept calls that asked for more than the room left; they ask again."""
        room = self._room()
        for scope, asked in self._waiting.items():
            if asked > room:
                scope.cancel()

    def _start(self, connection: C) -> None:
        self._accepted += 1
        if self.draining.is_cancelled():
            self._rejected += 1
            connection.close()
        elif self._active >= self.config.max_connections:
            self._pending.append(connection)
        else:
            self._launch(connection)

    def _launch(self, connection: C) -> None:
        assert self._nursery is not None
        self._active += 1
        if self._active == 1:
            self._idle = trio.Event()
        self._connections[connection] = None
        self._nursery.start_soon(self._connection, connection)

    def _ended(self) -> None:
        self._active -= 1
        if self._pending:
            self._launch(self._pending.popleft())
        else:
            self._room_lot.unpark_all()
        if self._active == 0:
            self._idle.set()

    # -- serving --------------------------------------------------------------------------

    async def _connection(self, connection: C) -> None:
        served: Connection = connection
        timeout = self.config.idle_timeout
        cut = _IdleCut(trio.lowlevel.current_task()) if timeout is not None else None
        idle = IdleDeadline(timeout, scope=cut) if cut is not None else None  # type: ignore[arg-type]
        connection.idle = idle
        try:
            try:
                if self.tls is not None:
                    served = await self._handshake(connection)
                await self.handler(served)  # type: ignore[arg-type]
            except BaseException as exc:
                if cut is None or not cut.leave(exc):
                    raise
            else:
                if cut is not None:
                    cut.leave(None)
            finally:
                if idle is not None:
                    idle.close()
            if idle is not None and idle.expired and cut is not None and cut.caught:
                self._idle_closed += 1
                logger.info(
                    "%s: %s idle for %gs, closed", self.config.name, _peer(connection), timeout
                )
        except _HandshakeFailed:
            pass
        except Exception as exc:
            if is_broken_connection(exc):
                self._broken += 1
                logger.debug(
                    "%s: %s connection lost: %r", self.config.name, _peer(connection), exc
                )
            else:
                self._errored += 1
                logger.error(
                    "%s: handler failed for %s; closing that connection only",
                    self.config.name,
                    _peer(connection),
                    exc_info=exc,
                )
        finally:
            self._connections.pop(served, None)
            self._connections.pop(connection, None)
            try:
                if self.draining.is_cancelled():
                    with self._linger_scope():
                        await served.aclose_gracefully(self.config.linger)
            finally:
                served.close()
                self._ended()

    def _linger_scope(self) -> ContextManager[trio.CancelScope]:
        """A shield for the lingering close that the runtime's final cancel still ends, so a
        shutdown takes at most its grace, lingering included."""
        rt = try_current()
        return rt.shielded_scope() if rt is not None else trio.CancelScope(shield=True)

    async def _handshake(self, connection: C) -> Connection:
        assert self.tls is not None
        try:
            tls = await tls_accept(
                connection, self.tls, handshake_timeout=self.config.handshake_timeout
            )
        except (trio.BrokenResourceError, TimeoutError) as exc:
            self._tls_failed += 1
            logger.debug(
                "%s: %s TLS handshake failed: %r", self.config.name, _peer(connection), exc
            )
            raise _HandshakeFailed from exc
        self._connections.pop(connection, None)
        self._connections[tls] = None
        if self.draining.is_cancelled() and self.config.drain_reads:
            tls.end_input()
        return tls

    async def wait_idle(self) -> None:
        """Wait until no connection is active."""
        await self._idle.wait()


class _IdleCut:
    """The cancel scope an idle deadline cancels, made only when it fires.

    A scope entered for every connection costs about 700 bytes (the scope and its cancel
    status) on every idle connection, and almost no connection is ever cut. So, like
    ``JoinHandle.abort()``, the cut splices a scope into the connection's task when the
    deadline fires (:mod:`runtime.rt._scope`), and the connection leaves it as ``with``
    would. Where splicing is not available a scope is entered at the start instead.
    """

    __slots__ = ("caught", "scope", "task")

    def __init__(self, task: trio.lowlevel.Task) -> None:
        self.task = task
        self.caught = False
        self.scope: trio.CancelScope | None = None
        if not _scope.FAST:
            self.scope = trio.CancelScope()
            _scope.enter(self.scope)

    def cancel(self, reason: str | None = None) -> None:
        """Cancel the connection's task (what ``IdleDeadline`` calls when it fires)."""
        scope = self.scope
        if scope is None:
            scope = trio.CancelScope()
            if not _scope.splice(scope, self.task):
                return  # the task is no longer running anything to cut
            self.scope = scope
        scope.cancel(reason)

    def leave(self, exc: BaseException | None) -> bool:
        """Leave the scope, if any, in the task; True if it swallowed ``exc``."""
        scope = self.scope
        if scope is None:
            return False
        self.caught = _scope.exit(scope, exc)
        return self.caught


def _peer(connection: Connection) -> str:
    # Formatted only when a line is logged: a string per connection is memory for nothing.
    return format_address(connection.peer_address)


_serving: weakref.WeakSet[Server[Any]] = weakref.WeakSet()


def servers(runtime: Runtime | None = None) -> list[Server[Any]]:
    """The Servers of this process that are serving now (inside ``serve()``), for the
    metrics to read their ``statistics()``; only those serving in ``runtime`` if given."""
    if runtime is None:
        return list(_serving)
    return [server for server in _serving if server._runtime is runtime]


def _connection_detail(frame: FrameType) -> str | None:
    """The task tree's detail of a connection task: the peer, and the server's name."""
    local = frame.f_locals
    connection, server = local.get("connection"), local.get("self")
    if connection is None or not isinstance(server, Server):
        return None
    return f"{server.config.name}: peer {_peer(connection)}"


describe_task_kind(Server._connection, "connection", _connection_detail, name="connection")


class _HandshakeFailed(Exception):
    """A TLS handshake failed; counted and logged already."""


async def serve(
    handler: Callable[[C], Awaitable[object]],
    listeners: Sequence[Listener[C]],
    *,
    config: ServerConfig | None = None,
    tls: ssl.SSLContext | None = None,
    task_status: trio.TaskStatus[Server[C]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``handler`` on ``listeners`` until drained. See :class:`Server`.

    Example::

        listeners = await open_tcp_listeners(8080, host="127.0.0.1")
        await serve(echo, listeners, config=ServerConfig(max_connections=1000))
        await serve(echo, listeners, tls=server_ssl_context("cert.pem", "key.pem"))
        await serve(echo, listeners, tls=server_ssl_context("cert.pem", "key.pem"))

    Cancellation: cancelling it closes the listeners and cancels every handler.
    """
    await Server(handler, listeners, config, tls=tls).serve(task_status=task_status)


def current_server() -> Server[Any]:
    """The server whose connection handler is running this code.

    Raises:
        RuntimeError: outside a connection handler.
    """
    server = _current_server.get()
    if server is None:
        raise RuntimeError("current_server() is only available inside a connection handler")
    return server
