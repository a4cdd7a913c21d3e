"""The HTTP/1.1 server: one h11 connection per transport Connection, run by ``runtime.net.Server``.

What h11 leaves to the server, and where this module does it:

* **I/O and time.** h11 is sans-IO: it never reads, writes or waits. Every deadline is ours:
  the keep-alive idle wait before a request's first byte (a quiet close), a *total* header
  deadline from that first byte (408; a per-read timeout never stops a slowloris client that
  sends a byte every few seconds), a body inactivity deadline (408), a send deadline (a reader
  that stalls is dropped) and the handler's request timeout (503, handler cancelled). All go
  through :mod:`runtime.time`, so a MockClock drives them.
* **The header-bytes limit, however the bytes arrive.** h11's ``max_incomplete_event_size``
  is only checked while the head is incomplete (h11#182): a 60 KB head that arrives in one
  read passes. So we count the bytes fed since the request began and check the finished head
  too (431). The header *count* and the request-target length (414) are not h11's business
  at all.
* **Framing h11 tolerates.** h11 accepts Content-Length together with Transfer-Encoding (RFC
  9112 lets a server process it, which is how requests are smuggled past a proxy): we answer
  400 and close. It accepts any ``HTTP/x.y`` version (``HTTP/2.0``, the h2 preface ``PRI *``):
  we answer 505 and close. It accepts Transfer-Encoding on HTTP/1.0: 400. It rejects the
  leading empty lines RFC 9112 says to ignore: we strip them before feeding it.
* **Body limits before reading.** A Content-Length above ``max_body_bytes`` is answered 413
  at once, without ``100 Continue`` and without reading; a chunked body is counted as it
  streams. The request body streams to the handler with backpressure: bytes are read from
  the connection only when the handler asks for the next chunk, and what it leaves unread is
  read and discarded (within the same limit) before the next request.
* **Error responses and the lingering close.** After a protocol error h11 can't be trusted to
  frame another message, so error answers are written as raw bytes (status line, ``Date``,
  ``Server``, ``Content-Length``, ``Connection: close``), then the connection is closed with
  :meth:`~runtime.net.abc.Connection.aclose_gracefully`: half-close, discard what the client
  still sends, close. Closing with unread input makes the kernel send a reset, and the client
  would read the reset instead of the error.
* **Headers every response carries.** ``Date`` (formatted once a second), ``Server``, a
  non-empty reason phrase, ``Content-Length`` for a ``bytes`` body (h11 frames a streaming
  body as chunked on HTTP/1.1), no body for HEAD, ``Connection: close`` on the last response
  of a connection (drain, ``max_requests_per_connection``, an error).
* **Disconnects.** When the request body has been read, a watcher reads ahead while the
  handler runs; end-of-stream or a reset there means the client went away, and the handler is
  cancelled.

The connection loop processes one request at a time, so pipelined requests are answered in
order: h11 buffers the next request until :meth:`h11.Connection.start_next_cycle`.
"""

from __future__ import annotations

import email.utils
import logging
import math
import re
import ssl
import time as _wall
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Sequence
from collections.abc import Set as AbstractSet
from typing import Any

import h11
import trio

from ..metrics import HttpRequestMetrics, bounded_method, hub
from ..net import Server, ServerConfig
from ..net.abc import Connection, Listener, format_address
from ..rt import try_current
from ..time import Deadline, TimerWheel, move_on_after
from ._config import HttpConfig
from ._httptools import AVAILABLE as _HTTPTOOLS_AVAILABLE
from ._httptools import OBS_FOLD, SMUGGLING, HeadEvent, HttptoolsParser
from ._types import Body, BodyTooLarge, Headers, Request, Response, _reason
from ._upgrade import UpgradedConnection

logger = logging.getLogger("runtime.http.server")

Handler = Callable[[Request], Awaitable[Response]]
"""What the server calls: a ``Service[Request, Response]`` or any async ``request -> response``."""

_RECEIVE_SIZE = 65536
_MAX_CONTENT_LENGTH_DIGITS = 18  # 10**18 bytes is an exabyte; longer is a probe, not a body
_NO_BODY_STATUS = frozenset({204, 304})


class _Abort(Exception):
    """Stop this connection: answer ``status`` (if not None and nothing was sent), then close.

    Raised from the body reader too, so a handler that iterates the body sees it; the
    connection remembers it, so a handler that swallows it changes nothing.
    """

    def __init__(self, status: int | None, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class _Disconnected(Exception):
    """The client went away."""


class _HandlerBug(Exception):
    """The handler's response can't be sent as it is (a bad header, a wrong length...)."""


# The request's side is done: DONE, or MUST_CLOSE for a client that said it will close.
_REQUEST_DONE = (h11.DONE, h11.MUST_CLOSE)
_NO_TOKENS: frozenset[bytes] = frozenset()  # a request without a Connection header
# Response headers the server writes itself: a handler's are read (content-length,
# connection) or replaced (date, server), and the framing (transfer-encoding) is ours.
_OURS = frozenset({"content-length", "transfer-encoding", "connection", "date", "server"})
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
# RFC 9110 field values: visible characters, obs-text, SP and HTAB; no other control.
_BAD_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
# Header names already checked against _TOKEN; bounded, since names come from handlers.
_SAFE_NAMES: set[str] = {"content-type", "cache-control", "location", "set-cookie", "etag"}
_MAX_SAFE_NAMES = 4096
_JOIN_BELOW = 65536  # a body up to this size goes out in the same write as the head
_STATUS_LINES: dict[int, str] = {}


def _check_name(name: str) -> None:
    if _TOKEN.fullmatch(name) is None:
        raise _HandlerBug(f"header name {name!r} is not a token (RFC 9110)")
    if len(_SAFE_NAMES) < _MAX_SAFE_NAMES:
        _SAFE_NAMES.add(name)


def _status_line(status: int, reason: str | None) -> str:
    """``HTTP/1.1 200 OK\\r\\n``; never an empty reason (some clients count one a failure)."""
    if reason:
        if "\r" in reason or "\n" in reason or "\0" in reason:
            raise _HandlerBug("the reason phrase has a CR, LF or NUL")
        return f"HTTP/1.1 {status} {reason}\r\n"
    line = _STATUS_LINES.get(status)
    if line is None:
        line = _STATUS_LINES[status] = f"HTTP/1.1 {status} {_reason(status)}\r\n"
    return line


_date_cache: tuple[int, bytes] = (0, b"")


def _date() -> bytes:
    """The ``Date`` header value, formatted at most once a second (wall clock, not a timer)."""
    global _date_cache
    now = int(_wall.time())
    if _date_cache[0] != now:
        _date_cache = (now, email.utils.formatdate(now, usegmt=True).encode())
    return _date_cache[1]


def _use_httptools(parser: str) -> bool:
    """Whether ``HttpConfig.parser`` picks httptools (the test suite runs both ways)."""
    return parser == "httptools" or (parser == "auto" and _HTTPTOOLS_AVAILABLE)


class HttpServer:
    """An HTTP/1.1 server for one handler on one or more listeners.

    Args:
        service: Called once per request: a ``Service[Request, Response]`` (so every
            middleware of :mod:`runtime.service` applies) or any async ``request -> response``.
        listeners: Where connections come from (TCP, Unix, TLS, in-memory...).
        config: Limits and timeouts (default :class:`HttpConfig()`).
        tls: A server ``ssl.SSLContext``: every connection is then served over TLS.

    Attributes:
        server: The underlying :class:`~runtime.net.Server` (cap, drain, statistics).
    """

    def __init__(
        self,
        service: Handler,
        listeners: Sequence[Listener[Any]],
        config: HttpConfig | None = None,
        *,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.service = service
        self.config = config or HttpConfig()
        parser = self.config.parser
        if parser == "httptools" and not _HTTPTOOLS_AVAILABLE:
            raise RuntimeError(
                'HttpConfig(parser="httptools") needs httptools: pip install httptools (or '
                'pip install "trio-runtime[http]"), or use parser="auto" to fall back to h11'
            )
        self._httptools = _use_httptools(parser)
        net_config = ServerConfig(
            max_connections=self.config.max_connections,
            idle_timeout=None,  # HTTP's own timeouts govern (a 75 s keep-alive is not cut at 60)
            drain_reads=False,  # HTTP drains itself: finish the request, send Connection: close
            linger=self.config.linger,
            name=self.config.name,
            drain_on_shutdown=self.config.drain_on_shutdown,
        )
        self.server: Server[Any] = Server(self._serve_connection, listeners, net_config, tls=tls)
        # Per-route figures for the runtime's metrics registry (None outside a runtime).
        rt = try_current() if self.config.metrics else None
        self.metrics: HttpRequestMetrics | None = None
        if rt is not None:
            self.metrics = HttpRequestMetrics(self.config.name)
            hub(rt).http.add(self.metrics)
        self._scheme = "https" if tls is not None else "http"
        self._connections: dict[_HttpConnection, None] = {}  # ordered: one drain order
        self._date_lines: tuple[int, str] = (0, "")
        # Where the disconnect watchers of slow handlers run (see ``_WATCH_DELAY``); each
        # connection waits for its watcher to end before it reads again or closes.
        self._nursery: trio.Nursery | None = None

    async def serve(
        self, *, task_status: trio.TaskStatus[HttpServer] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Serve until drained, then wait for every connection to end.

        Reports ``task_status.started(self)`` once it is accepting.

        Cancellation: cancelling it closes the listeners and cancels every handler.
        """
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            nursery.start_soon(self._drain_idle_connections)
            try:
                await self.server.serve(task_status=_Forward(task_status, self))
            finally:
                self._nursery = None
                nursery.cancel_scope.cancel()

    async def _drain_idle_connections(self) -> None:
        """When the server drains, close the connections waiting for their next request."""
        await self.server.draining.cancelled()
        for connection in list(self._connections):
            connection.drain_if_idle()

    @property
    def parser(self) -> str:
        """The request parser in use: ``"h11"`` or ``"httptools"``."""
        return "httptools" if self._httptools else "h11"

    def _new_parser(self) -> h11.Connection | HttptoolsParser:
        if self._httptools:
            return HttptoolsParser(self.config.max_header_bytes)
        return h11.Connection(h11.SERVER, max_incomplete_event_size=self.config.max_header_bytes)

    def _date_and_server(self) -> str:
        """The ``date`` and ``server`` header lines, formatted at most once a second."""
        now = int(_wall.time())
        if self._date_lines[0] != now:
            lines = f"date: {email.utils.formatdate(now, usegmt=True)}\r\n"
            if self.config.server_header:
                lines += f"server: {self.config.server_header}\r\n"
            self._date_lines = (now, lines)
        return self._date_lines[1]

    def drain(self) -> None:
        """Stop accepting; requests in flight finish with ``Connection: close``."""
        self.server.drain()

    def _serve_connection(self, connection: Connection) -> Awaitable[None]:
        # The connection's loop itself, not a coroutine awaiting it: one frame less for
        # every idle connection.
        return _HttpConnection(self, connection).run()


class _Forward:
    """A ``task_status`` that reports the HttpServer when the inner Server starts."""

    def __init__(self, outer: trio.TaskStatus[HttpServer], server: HttpServer) -> None:
        self._outer = outer
        self._server = server

    def started(self, value: object = None) -> None:
        self._outer.started(self._server)


class _RequestBody:
    """The request body's chunks, read from the connection only when asked for."""

    __slots__ = ("_conn",)

    def __init__(self, conn: _HttpConnection) -> None:
        self._conn = conn

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        chunk = await self._conn.read_body_chunk()
        if chunk is None:
            raise StopAsyncIteration
        return chunk


# Phases of a connection's I/O timer: what the connection is waiting for, and so what an expiry
# means. One timer per connection is moved from phase to phase (an O(1) reset on the wheel), so
# a request costs no cancel scopes of its own.
_NONE = 0  # not waiting: an expiry that races with the phase ending is ignored
_IDLE = 1  # between requests, cold (no scope): end the input, so a quiet close
_WARM = 5  # between requests, warm (in the scope): cool down, or a quiet close
_HEAD = 2  # inside a request head: 408
_BODY = 3  # inside a request body: 408
_SEND = 4  # writing: the client stopped reading

# Stages of the handler timer.
_WATCH = 1  # the handler has run a while: start the disconnect watcher
_REQUEST = 2  # the request timeout: 503

# A handler that answers within this many seconds never gets a disconnect watcher: a task per
# request would cost more than most handlers. One that runs longer gets one, so a client that
# goes away still cancels it within a few milliseconds of the delay.
_WATCH_DELAY = 0.02

# At a drain, how long a connection waiting for its next request may still receive one that
# is already on its way (see ``drain_if_idle``).
_DRAIN_IDLE_GRACE = 0.05

# A connection idle this long between requests leaves its cancel scope (see run()).
_WARM_IDLE = 1.0
_UNMATCHED = "<unmatched>"  # the route label of a request no route took (404, 405)
_INVALID = "<invalid>"  # ... and of a request head that could not be parsed
_clock = trio.current_time


class _Quiet:
    """Why a connection ended without an answer: ``close`` is True for an abrupt close."""

    __slots__ = ("close", "why")

    def __init__(self, why: str, close: bool) -> None:
        self.why = why
        self.close = close


_GONE = _Quiet("the client went away", close=True)
_IDLE_CLOSE = _Quiet("keep-alive idle, or drained", close=False)
_COOL = _Quiet("idle a while: wait without a scope", close=False)


def _strip_empty_lines(data: bytes | bytearray) -> bytes:
    """What a read holds of the next request: RFC 9112 says empty lines before it are ignored."""
    return (data if type(data) is bytes else bytes(data)).lstrip(b"\r\n")


_HEX = frozenset(b"0123456789abcdefABCDEF")
_MAX_CHUNK_DIGITS = 16  # 16 hex digits is 2**64 bytes; more is a probe, not a chunk


class _ChunkScanner:
    """Follows the chunked framing of a body that h11 reads, for what h11 lets by.

    h11 takes chunk sizes of up to 20 hex digits (10**24 bytes). RFC 9112 lets a server
    refuse sizes it can't handle, and a body limit that fires only after ``max_body_bytes``
    of data (or a 408 when the client stops) is no clear answer: this refuses them at once.
    It skips data in O(1) and reads only the size lines. httptools refuses them itself.
    """

    __slots__ = ("digits", "size", "skip", "state")

    def __init__(self) -> None:
        self.state = 0  # 0: size digits, 1: rest of the size line, 2: data, 3: CRLF, 4: done
        self.digits = b""
        self.skip = 0

    def feed(self, data: bytes) -> str | None:
        """Follow ``data``; an error message if a chunk size is too long."""
        i, n = 0, len(data)
        while i < n and self.state != 4:
            state = self.state
            if state >= 2:  # data, or the CRLF after it: skip
                take = min(self.skip, n - i)
                i += take
                self.skip -= take
                if self.skip == 0:
                    self.state, self.skip = (3, 2) if state == 2 else (0, 0)
            elif state == 0:
                start = i
                while i < n and data[i] in _HEX:
                    i += 1
                self.digits += data[start:i]
                if len(self.digits) > _MAX_CHUNK_DIGITS:
                    return f"a chunk size of more than {_MAX_CHUNK_DIGITS} hex digits"
                if i < n:
                    self.state = 1
            else:  # the rest of the size line: extensions, then CRLF
                end = data.find(b"\n", i)
                if end < 0:
                    return None  # h11 bounds the line's length
                i = end + 1
                size = int(self.digits, 16) if self.digits else 0
                self.digits = b""
                if size:
                    self.state, self.skip = 2, size
                else:
                    self.state = 4  # the last chunk: trailers follow (h11 bounds them)
        return None


_NO_SCOPE = trio.CancelScope()  # an idle connection's: cancelling it does nothing


class _HttpConnection:
    """The request loop of one connection.

    Every wait of the loop runs inside one cancel scope, ``scope``, that the connection's
    timers cancel: the I/O timer (keep-alive idle, header deadline, body inactivity, send
    stall) and the handler timer (the disconnect watcher's start, the request timeout). What
    expired is kept in ``expired``; after the scope, :meth:`run` answers it (408, 503, a quiet
    close...). Every expiry ends the connection, so the scope is never needed twice.
    """

    __slots__ = (
        "abort",
        "body_bytes",
        "body_done",
        "body_raw",
        "carried_over",
        "chunks",
        "config",
        "connection",
        "connection_tokens",
        "expired",
        "h11",
        "handler",
        "handler_stage",
        "head_chunks",
        "head_tail",
        "idle_deadline",
        "io",
        "phase",
        "request",
        "request_deadline",
        "requests",
        "response_started",
        "scope",
        "sent_100",
        "server",
        "started_at",
        "upgrade_requested",
        "watch_done",
        "watch_pending",
        "watch_scope",
        "wheel",
    )

    def __init__(self, server: HttpServer, connection: Connection) -> None:
        self.server = server
        self.config = server.config
        self.connection = connection
        # The request parser: h11's, or httptools' behind the same interface; None while idle.
        self.h11: Any = None
        self.requests = 0
        self.request: Request | None = None  # the one in hand, for the metrics of an error
        self.started_at = 0.0
        self.body_bytes = self.body_raw = 0
        self.abort: _Abort | None = None
        self.response_started = False
        self.sent_100 = False
        self.carried_over = False
        self.chunks: _ChunkScanner | None = None
        self.upgrade_requested = False
        self.connection_tokens: AbstractSet[bytes] = _NO_TOKENS
        self.body_done = True
        self.head_tail = b"\n"
        self.head_chunks: list[bytes] = []
        self.scope = _NO_SCOPE
        self.expired: _Abort | _Quiet | None = None
        self.phase = _NONE
        self.wheel = TimerWheel.current()
        self.io = Deadline(self._io_expired, self.wheel)
        self.idle_deadline = 0.0
        self.handler = Deadline(self._handler_timer_fired, self.wheel)
        self.handler_stage = _NONE
        self.request_deadline = 0.0
        self.watch_scope: trio.CancelScope | None = None
        self.watch_done: trio.Event | None = None
        self.watch_pending = False

    # -- the loop -------------------------------------------------------------------------

    async def run(self) -> None:
        """Serve requests until the connection should close.

        Requests run inside a cancel scope that the connection's timers cancel. A busy
        connection keeps its scope between requests (entering one costs more than parsing a
        small request), and waits for the next one in it, *warm*. After ``_WARM_IDLE``
        seconds without a request it leaves the scope and waits *cold*, right here, a few
        frames deep, with no scope and no parser: an idle keep-alive connection costs little
        (the memory budget in ``benchmarks/http.py``). The keep-alive expiry and a drain end
        a cold connection's input (``end_input``), so its wait returns ``b""`` and it closes
        quietly.
        """
        server = self.server
        connection = self.connection
        server._connections[self] = None
        self.idle_deadline = self.wheel.now() + self.config.keep_alive_timeout
        first = b""
        try:
            while True:
                if not first and not self.carried_over:
                    # -- cold: wait for the next request's first bytes ----------------------
                    if server.server.draining.is_cancelled():
                        await self._close()
                        return
                    # No checkpoint between the drain check above and the wait: a drain that
                    # starts during the wait finds this connection in _IDLE (drain_if_idle).
                    self._arm(_IDLE, self.idle_deadline)
                    try:
                        while not first:
                            data = await connection.receive_some(_RECEIVE_SIZE)
                            if not data:
                                break
                            first = _strip_empty_lines(data)
                    except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                        self.phase = _NONE
                        connection.close()  # a reset between requests: nothing to answer
                        return
                    self.phase = _NONE
                    if not first:
                        await self._close()
                        return
                # -- requests, inside a scope that the connection's timers cancel ----------
                outcome: _Abort | _Quiet | None = None
                self.expired = None
                with trio.CancelScope() as self.scope:
                    try:
                        while True:
                            if self.h11 is None:
                                self.h11 = server._new_parser()
                            if not await self._one_request(first):
                                return
                            self._next_cycle()
                            first = b""
                            if not self.carried_over:
                                if server.server.draining.is_cancelled():
                                    await self._close()
                                    return
                                # -- warm: the same wait, in the scope (inline: no frame) --
                                self._arm(
                                    _WARM, min(self.wheel.now() + _WARM_IDLE, self.idle_deadline)
                                )
                                try:
                                    while not first:
                                        data = await connection.receive_some(_RECEIVE_SIZE)
                                        if not data:
                                            break
                                        first = _strip_empty_lines(data)
                                except (
                                    trio.BrokenResourceError,
                                    trio.ClosedResourceError,
                                    OSError,
                                ):
                                    raise _Disconnected("reset between requests") from None
                                self.phase = _NONE
                                if not first:
                                    await self._close()
                                    return
                                if self.expired is _COOL:
                                    # The idle timer fired as these bytes came in: the scope
                                    # is cancelled, and the next checkpoint would lose them.
                                    # Leave it now, before any, and serve them cold.
                                    break
                    except _Abort as abort:
                        outcome = abort
                    except _Disconnected:
                        outcome = _GONE
                # Here the scope was cancelled by an expiry, or a request failed.
                if self.expired is not None:
                    outcome = self.expired
                self.phase = self.handler_stage = _NONE
                if outcome is _COOL:
                    self.scope = _NO_SCOPE
                    self._drop_parser()  # a cold connection holds no parser
                    continue  # idle a while: wait cold (``first``: bytes that came just then)
                await self._stop_watcher()
                if isinstance(outcome, _Abort):
                    await self._fail(outcome)
                elif outcome is not None and outcome.close:
                    connection.close()
                elif outcome is not None:
                    await self._close()
                return
        finally:
            server._connections.pop(self, None)
            self.phase = self.handler_stage = _NONE
            self._drop_parser()
            self.io.close()
            self.handler.close()
            if self.watch_scope is not None:
                self.watch_scope.cancel()
                assert self.watch_done is not None
                with trio.CancelScope(shield=True):
                    await self.watch_done.wait()

    def _drop_parser(self) -> None:
        parser = self.h11
        if type(parser) is HttptoolsParser:
            parser.close()
        self.h11 = None

    async def _one_request(self, first: bytes) -> bool:
        """Read, handle and answer one request; False when the connection should close.

        ``first`` is the request's first bytes, or ``b""`` when the parser has the start of
        it already (pipelined behind the last one).
        """
        self.response_started = False
        self.request = None
        event = await self._read_head(first)
        if event is None:
            await self._close()
            return False
        self.requests += 1
        request = self._build_request(event)
        self.request = request
        self.started_at = _clock()
        response = await self._handle(request)
        if self.abort is not None:
            raise self.abort
        assert response is not None
        try:
            keep_alive = await self._send_response(request, response, self._must_close())
            metrics = self.server.metrics
            if metrics is not None:
                metrics.record(
                    request.extensions.get("route", _UNMATCHED),
                    bounded_method(request.method),
                    response.status,
                    _clock() - self.started_at,
                )
        except _HandlerBug as exc:
            # The handler's response can't be framed (a Content-Length that is not the body's
            # length, a 1xx status, a CR in a header value...): a bug in the handler,
            # answered like an exception when nothing was sent yet.
            self._log_handler_error(request, exc)
            # The details are in the log; the client gets what a handler exception gets.
            raise _Abort(None if self.response_started else 500, "Internal Server Error") from None
        self.request = None  # an idle connection keeps no request alive
        if response.upgrade is not None:
            await self._hand_over(request, response)
            return False
        await self._discard_body()
        if not keep_alive or not self.body_done:
            await self._close()
            return False
        return True

    def _must_close(self) -> bool:
        return (
            self.server.server.draining.is_cancelled()
            or self.requests >= self.config.max_requests_per_connection
        )

    # -- timers ---------------------------------------------------------------------------

    def _expire(self, why: _Abort | _Quiet) -> None:
        """End the connection for ``why``: cancel whatever it is waiting on (first one wins)."""
        if self.expired is None:
            self.expired = why
            self.scope.cancel()

    def _arm(self, phase: int, deadline: float) -> None:
        """Wait in ``phase`` until ``deadline`` (absolute); ``_NONE`` ends the wait.

        A store on the hot path: ``Deadline`` moves its wheel entry only when it must.
        """
        self.phase = phase
        self.io.set(deadline)

    def _io_expired(self) -> None:
        phase = self.phase
        if phase == _NONE:
            return
        self.phase = _NONE
        config = self.config
        if phase == _IDLE:
            self.connection.end_input()  # the cold wait in run() returns b"": a quiet close
        elif phase == _WARM:
            if (
                self.server.server.draining.is_cancelled()
                or self.wheel.now() >= self.idle_deadline
            ):
                self._expire(_IDLE_CLOSE)
            else:
                self._expire(_COOL)  # leave the scope, wait cold
        elif phase == _HEAD:
            self._expire(
                _Abort(
                    408,
                    f"request head not received within {config.header_timeout:g}s "
                    "(header_timeout)",
                )
            )
        elif phase == _BODY:
            self._expire(
                _Abort(408, f"no request body bytes for {config.body_timeout:g}s (body_timeout)")
            )
        elif phase == _SEND:
            self._expire(_Abort(None, f"send stalled for {config.send_timeout:g}s (send_timeout)"))

    def drain_if_idle(self) -> None:
        """The server is draining: a connection waiting for its next request closes soon.

        Not at once: the next request may be in the socket already, its wake-up not yet
        delivered (the drain runs before the reactor's next poll). A short grace lets it in,
        and it is answered with ``Connection: close``; a connection that stays quiet closes.
        """
        phase = self.phase
        if phase in (_IDLE, _WARM):
            self._arm(phase, min(self.io.deadline, self.wheel.now() + _DRAIN_IDLE_GRACE))

    def _start_handler_timer(self) -> None:
        now = self.wheel.now()
        timeout = self.config.request_timeout
        watch_at = now + _WATCH_DELAY
        if timeout is not None and now + timeout <= watch_at:
            self.handler_stage = _REQUEST
            self.request_deadline = deadline = now + timeout
        else:
            self.handler_stage = _WATCH
            self.request_deadline = now + timeout if timeout is not None else math.inf
            deadline = watch_at
        self.handler.set(deadline)

    def _handler_timer_fired(self) -> None:
        stage = self.handler_stage
        if stage == _NONE:
            return
        if stage == _WATCH:
            if self.request_deadline != math.inf:
                self.handler_stage = _REQUEST
                self.handler.set(self.request_deadline)
            else:
                self.handler_stage = _NONE
            if self.body_done:
                self._spawn_watcher()
            else:
                self.watch_pending = True  # started when the handler has read the body
        elif stage == _REQUEST:
            self.handler_stage = _NONE
            timeout = self.config.request_timeout
            assert timeout is not None
            self._expire(
                _Abort(503, f"handler did not answer within {timeout:g}s (request_timeout)")
            )

    # -- the disconnect watcher -----------------------------------------------------------

    def _spawn_watcher(self) -> None:
        """Watch for the client going away while a slow handler runs (see ``_WATCH_DELAY``)."""
        self.watch_pending = False
        if self.watch_scope is not None or self.expired is not None:
            return
        if self.upgrade_requested:
            return  # what follows an upgrade request may not be HTTP
        nursery = self.server._nursery
        if nursery is None:
            return
        self.watch_scope = scope = trio.CancelScope()
        self.watch_done = done = trio.Event()
        nursery.start_soon(self._watch, scope, done, name="runtime.http.disconnect-watcher")

    async def _watch(self, scope: trio.CancelScope, done: trio.Event) -> None:
        """Read ahead while the handler runs; end-of-stream or a reset cancels the handler."""
        try:
            with scope:
                buffered = len(self.h11.trailing_data[0])
                while buffered <= self.config.max_header_bytes:
                    try:
                        data = await self.connection.receive_some(_RECEIVE_SIZE)
                    except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                        data = b""
                    if not data:
                        self._expire(_GONE)
                        return
                    self.h11.receive_data(bytes(data))  # a pipelined request: kept for later
                    buffered += len(data)
                await trio.sleep_forever()
        finally:
            done.set()

    async def _stop_watcher(self) -> None:
        self.watch_pending = False
        scope = self.watch_scope
        if scope is None:
            return
        scope.cancel()
        assert self.watch_done is not None
        await self.watch_done.wait()
        self.watch_scope = self.watch_done = None

    # -- reading the head -----------------------------------------------------------------

    def _next_event(self) -> Any:
        try:
            return self.h11.next_event()
        except h11.RemoteProtocolError as exc:
            status = exc.error_status_hint
            if status == 431:  # h11's own max_incomplete_event_size: say it our way
                raise _Abort(431, self._too_many_header_bytes()) from None
            if (
                status == 501
                and type(self.h11) is not HttptoolsParser
                and self._malformed_transfer_encoding()
            ):
                status = 400
            if type(self.h11) is HttptoolsParser:
                raise _Abort(status, str(exc)) from None  # worded like ours already
            raise _Abort(status, f"bad request: {exc}") from None

    async def _read_head(self, first: bytes) -> h11.Request | HeadEvent | None:
        """The request head, or None when the client closed quietly."""
        if first:
            event, fed = self._feed_head(first, 0)
        else:
            event = self._next_event()
            parser = self.h11
            if type(parser) is HttptoolsParser:
                # It may be inside this head already (it parses ahead): the bytes that come
                # are the head's middle, not a new request's first bytes.
                fed = max(parser.head_fed, 1)
            else:
                fed = max(len(parser.trailing_data[0]), 1)
        if event is h11.NEED_DATA:
            self._arm(_HEAD, self.wheel.now() + self.config.header_timeout)
            while event is h11.NEED_DATA:
                data = await self._receive()
                if not data:
                    self.h11.receive_data(b"")
                    event = self._next_event()
                    break
                event, fed = self._feed_head(data, fed)
            self.phase = _NONE
        if isinstance(event, h11.ConnectionClosed):
            return None
        if not isinstance(event, h11.Request | HeadEvent):
            raise _Abort(400, f"unexpected {type(event).__name__} before a request")
        return event

    def _feed_head(self, data: bytes, fed: int) -> tuple[Any, int]:
        """Feed head bytes; the next event and the bytes fed since the request began.

        While the head is incomplete everything fed is head, so ``fed`` is checked against
        the limit here; a complete head is measured from its event (``_check_head``), since
        the same read may carry body bytes.
        """
        if fed == 0:
            data = data.lstrip(b"\r\n")
            self.head_tail = b"\n"  # a continuation line can't start the request either
            self.head_chunks = []
        self.head_chunks.append(data)
        if type(self.h11) is not HttptoolsParser:  # llhttp refuses obs-fold itself
            self._check_no_obs_fold(data)
        fed += len(data)
        self.h11.receive_data(data)
        event = self._next_event()
        if event is h11.NEED_DATA and fed > self.config.max_header_bytes:
            raise _Abort(431, self._too_many_header_bytes())
        return event, fed

    def _malformed_transfer_encoding(self) -> bool:
        """Whether h11's 501 for Transfer-Encoding is really a malformed message (400).

        RFC 9112: a coding other than a final ``chunked`` is unknown framing (501), but two
        Transfer-Encoding lines, or ``chunked`` that is not the last coding, is a malformed
        message (400). h11 answers 501 to all of these, so we read the head's raw lines.
        """
        head = b"".join(self.head_chunks)
        head = head[: head.find(b"\r\n\r\n")]
        codings: list[bytes] = []
        lines = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"transfer-encoding":
                lines += 1
                codings += [c.strip().lower() for c in value.split(b",")]
        return lines > 1 or (b"chunked" in codings and codings[-1] != b"chunked")

    def _check_no_obs_fold(self, data: bytes) -> None:
        """Refuse a line folded onto the one before (obs-fold): h11 would unfold it.

        RFC 9112 lets a server reject it with 400 or replace it by spaces; a proxy that did
        not unfold it would see other headers than we do, so we reject. Only the bytes up to
        the end of the head are looked at (the same read may carry body bytes).
        """
        window = self.head_tail + data
        end = window.find(b"\r\n\r\n")
        if end >= 0:
            window = window[: end + 2]
        if b"\n " in window or b"\n\t" in window:
            raise _Abort(400, OBS_FOLD)
        self.head_tail = window[-3:]

    def _too_many_header_bytes(self) -> str:
        return (
            f"request head exceeds {self.config.max_header_bytes} bytes (max_header_bytes); "
            "raise the limit or fix the client"
        )

    def _next_cycle(self) -> None:
        """A fresh parser for the next request, fed what the last one read past its end.

        The parser is h11's, used for requests only (responses are written by
        :meth:`_send_response`), so each request gets its own ``h11.Connection``: cheaper than
        keeping h11's response side in step. The bytes carried over are checked like any
        head's: no obs-fold, and the empty lines RFC 9112 says to ignore are dropped (h11
        refuses them).
        """
        self.response_started = False
        old = self.h11
        self.idle_deadline = self.wheel.now() + self.config.keep_alive_timeout
        self.head_tail = b"\n"
        self.head_chunks = []
        if type(old) is HttptoolsParser and not old.upgraded:
            # It goes on parsing what it has (see _httptools), and the next request too: a
            # busy connection keeps it, a cold one lets it go (_drop_parser).
            old.start_next_cycle()
            self.carried_over = old.has_pending()
            return
        data, closed = old.trailing_data
        data = bytes(data).lstrip(b"\r\n")
        self._drop_parser()  # h11's, or an upgrade's: between requests it holds no parser
        self.carried_over = bool(data) or closed
        if not self.carried_over:
            return
        parser = self.h11 = self.server._new_parser()
        if data:
            self.head_chunks = [data]
            self._check_no_obs_fold(data)
            parser.receive_data(data)
        if closed:
            parser.receive_data(b"")

    def _build_request(self, event: h11.Request | HeadEvent) -> Request:
        """Check the head against the limits and framing rules, and make the Request."""
        config = self.config
        version = event.http_version
        if version != b"1.1" and version != b"1.0":
            raise _Abort(505, f"HTTP/{version.decode()} is not supported; use HTTP/1.1")
        pairs = list(event.headers)  # h11's Headers is a Sequence: iterate it once
        method = event.method
        target = event.target
        size = len(method) + len(target) + 12
        length: bytes | None = None
        codings: list[bytes] | None = None
        te_lines = hosts = 0
        upgrade = method == b"CONNECT"
        tokens: AbstractSet[bytes] = _NO_TOKENS
        for name, value in pairs:
            size += len(name) + len(value) + 4
            if name == b"host":
                hosts += 1
            elif name == b"content-length":
                length = value
            elif name == b"transfer-encoding":
                te_lines += 1
                codings = (codings or []) + [c.strip().lower() for c in value.split(b",")]
            elif name == b"connection":
                tokens = {*tokens, *(t.strip().lower() for t in value.split(b","))}
            elif name == b"upgrade":
                upgrade = True
        chunked = codings is not None
        if size > config.max_header_bytes:
            raise _Abort(431, self._too_many_header_bytes())
        if len(pairs) > config.max_header_count:
            raise _Abort(
                431,
                f"request has {len(pairs)} header fields, more than "
                f"{config.max_header_count} (max_header_count)",
            )
        if len(target) > config.max_target_length:
            raise _Abort(
                414,
                f"request-target exceeds {config.max_target_length} bytes (max_target_length)",
            )
        if hosts != 1 and (hosts > 1 or version == b"1.1"):
            raise _Abort(400, "an HTTP/1.1 request needs exactly one Host header")
        if chunked and length is not None:
            raise _Abort(400, SMUGGLING)
        if codings is not None and codings != [b"chunked"]:
            if te_lines > 1 or (b"chunked" in codings and codings[-1] != b"chunked"):
                raise _Abort(400, "Transfer-Encoding must be one line ending in chunked")
            raise _Abort(501, "only the chunked Transfer-Encoding is supported")
        if chunked and version == b"1.0":
            raise _Abort(400, "Transfer-Encoding is not allowed in an HTTP/1.0 request")
        size_hint: int | None = None
        if length is not None:
            if len(length) > _MAX_CONTENT_LENGTH_DIGITS:
                raise _Abort(400, "Content-Length has too many digits")
            size_hint = int(length)
            if size_hint > config.max_body_bytes:
                raise _Abort(
                    413,
                    f"body of {size_hint} bytes exceeds {config.max_body_bytes} bytes "
                    "(max_body_bytes)",
                )
        self.body_bytes = self.body_raw = 0
        self.response_started = False
        self.sent_100 = False
        self.upgrade_requested = upgrade
        self.connection_tokens = tokens
        self.chunks = None
        if chunked and type(self.h11) is not HttptoolsParser:
            scanner = self.chunks = _ChunkScanner()
            error = scanner.feed(bytes(self.h11.trailing_data[0]))
            if error is not None:
                raise _Abort(400, error)
        if chunked or size_hint:
            self.body_done = False
            body = Body(_RequestBody(self), size_hint)
        else:
            # No body: h11 would give its EndOfMessage without reading; we don't ask for it
            # (the next request starts on a fresh parser with what this one buffered).
            self.body_done = True
            body = Body(b"")
            if type(self.h11) is HttptoolsParser:
                self.h11.skip_end()
        return Request(
            method.decode("ascii"),
            target.decode("latin-1"),
            Headers._from_lowercase(pairs),
            body,
            http_version="1.1" if version == b"1.1" else "1.0",
            peer_address=self.connection.peer_address,
            scheme=self.server._scheme,
        )

    # -- the body -------------------------------------------------------------------------

    async def read_body_chunk(self) -> bytes | None:
        """The next chunk of the request body, or None at its end (the handler's read)."""
        if self.abort is not None:
            raise self.abort
        if self.body_done:
            return None
        if (
            self.h11.they_are_waiting_for_100_continue
            and not self.sent_100
            and not self.response_started
        ):
            self.sent_100 = True
            await self._send(b"HTTP/1.1 100 Continue\r\n\r\n")
        try:
            return await self._body_event()
        except _Abort as abort:
            self.abort = abort
            raise

    async def _body_event(self) -> bytes | None:
        config = self.config
        while True:
            try:
                event = self._next_event()
            except _Abort as abort:
                if abort.status == 431:
                    # h11's incomplete-event limit inside a body: a chunk-size line or the
                    # trailers are too long. A malformed body (RFC 9112 7.1), not a head.
                    raise _Abort(400, "a chunk-size line or the trailers are too long") from None
                raise
            if isinstance(event, h11.Data):
                self.body_bytes += len(event.data)
                if self.body_bytes > config.max_body_bytes:
                    raise _Abort(
                        413, f"body exceeds {config.max_body_bytes} bytes (max_body_bytes)"
                    )
                if event.data:
                    return bytes(event.data)
                continue
            if isinstance(event, h11.EndOfMessage):
                self.body_done = True
                if self.watch_pending:
                    self._spawn_watcher()
                return None
            if isinstance(event, h11.ConnectionClosed):
                raise _Disconnected("the client closed the connection inside a body")
            self._arm(_BODY, self.wheel.now() + config.body_timeout)
            data = await self._receive()
            self.phase = _NONE
            if not data:
                raise _Disconnected("the client closed the connection inside a body")
            # What arrives is body and its framing (chunk sizes, extensions, trailers). The
            # framing gets max_header_bytes of room beyond the body limit: the body limit
            # can't be dodged with endless chunk extensions. Checked before counting this
            # read: all that came before is parsed, so its data is counted (413 first).
            if self.body_raw > config.max_body_bytes + config.max_header_bytes:
                raise _Abort(
                    400,
                    "chunked framing (chunk sizes, extensions, trailers) too large for a body "
                    f"within {config.max_body_bytes} bytes (max_body_bytes)",
                )
            self.body_raw += len(data)
            if self.chunks is not None:
                error = self.chunks.feed(data)
                if error is not None:
                    raise _Abort(400, error)
            self.h11.receive_data(data)

    async def _discard_body(self) -> None:
        """Read and drop what the handler left of the body, within ``max_body_bytes``."""
        if self.body_done:
            return
        if self.h11.they_are_waiting_for_100_continue and not self.sent_100:
            return  # no 100 was sent: the client may never send it; the caller closes
        # Bounded in bytes by max_body_bytes, and here in time too: a client trickling the
        # rest of a body nobody reads would hold the connection for ever (nginx's
        # lingering_time does the same).
        with move_on_after(self.config.body_timeout) as scope:
            while await self._body_event() is not None:
                pass
        if scope.cancelled_caught:
            raise _Abort(
                None,
                f"the unread rest of a body took over {self.config.body_timeout:g}s "
                "(body_timeout); closing",
            )

    # -- calling the handler --------------------------------------------------------------

    async def _handle(self, request: Request) -> Response | None:
        """The handler's response; None if it failed in a way that ends the connection."""
        self._start_handler_timer()
        response: object = None
        try:
            response = await self.server.service(request)
        except _Abort as abort:
            self.abort = self.abort or abort
        except BodyTooLarge as exc:
            self.abort = self.abort or _Abort(413, str(exc))
        except _Disconnected:
            raise
        except Exception as exc:
            if self.abort is None:
                self._log_handler_error(request, exc)
                response = Response.text("Internal Server Error\n", 500)
        finally:
            # Off the wheel, not left to lapse: a handler timer is due within _WATCH_DELAY,
            # and a lapsed one would wake the wheel's driver for nothing, once per request.
            # Taken off before the wheel filed it (it seldom has), it cost two dict operations.
            self.handler_stage = _NONE
            self.handler.close()
        if self.watch_scope is not None or self.watch_pending:
            await self._stop_watcher()
        if self.abort is not None:
            return None
        if not isinstance(response, Response):
            self._log_handler_error(
                request, TypeError(f"handler returned {type(response).__name__}, not a Response")
            )
            response = Response.text("Internal Server Error\n", 500)
        return response

    def _log_handler_error(self, request: Request, exc: BaseException) -> None:
        logger.error(
            "%s: handler failed for %s %s from %s; answered 500",
            self.config.name,
            request.method,
            request.target,
            format_address(self.connection.peer_address),
            exc_info=exc,
        )

    # -- sending --------------------------------------------------------------------------

    async def _send_response(self, request: Request, response: Response, close: bool) -> bool:
        """Write ``response``; whether the connection may serve another request after it.

        The head is written by us, not by h11: checking names and values once here is a
        fraction of what h11's ``send`` costs, and it lets HTTP/1.0 clients keep alive.

        Raises:
            _HandlerBug: the response can't be framed as given (nothing was sent).
        """
        status = response.status
        upgrade = response.upgrade
        if not 100 <= status <= 999 or (status < 200 and status != 101):
            raise _HandlerBug(f"a handler can't answer with status {status}")
        version = request.http_version
        connect = request.method == "CONNECT" and 200 <= status < 300
        if status == 101 or connect:
            if upgrade is None:
                raise _HandlerBug(
                    f"a {status} answer to {request.method} needs an upgrade callback"
                )
            if status == 101 and (
                version != "1.1"  # RFC 9110 7.8: Upgrade in an HTTP/1.0 request is ignored
                or "upgrade" not in request.headers
                or b"upgrade" not in self.connection_tokens
            ):
                raise _HandlerBug("a 101 answer needs a request that asked for an Upgrade")
        elif upgrade is not None:
            raise _HandlerBug(
                "an upgrade callback needs a 101 answer to an Upgrade request (or a 2xx answer "
                "to CONNECT)"
            )
        lines = [_status_line(status, response._reason)]
        append = lines.append
        length: str | None = None
        for name, value in response.headers._items:
            if name not in _SAFE_NAMES:
                _check_name(name)
            if _BAD_VALUE.search(value) is not None:
                raise _HandlerBug(f"header {name!r} has a control character in its value")
            if name in _OURS:
                if name == "content-length":
                    length = value
                elif name == "connection":
                    if "close" in value.lower():
                        close = True
                    if status == 101:
                        append(f"connection: {value}\r\n")
                continue
            append(f"{name}: {value}\r\n")
        append(self.server._date_and_server())
        body = response.body
        bodiless = request.method == "HEAD" or status in _NO_BODY_STATUS
        chunked = False
        if status == 101 or connect:
            bodiless = True
        else:
            if length is not None:
                if (
                    not (length.isascii() and length.isdigit())
                    or len(length) > _MAX_CONTENT_LENGTH_DIGITS
                ):
                    raise _HandlerBug(f"content-length {length!r} is not a length")
                if isinstance(body, bytes) and int(length) != len(body) and not bodiless:
                    raise _HandlerBug(f"content-length {length} but a body of {len(body)} bytes")
                if status != 204:  # RFC 9110 8.6: never on a 204
                    append(f"content-length: {length}\r\n")
            elif isinstance(body, bytes):
                if status not in _NO_BODY_STATUS:
                    append(f"content-length: {len(body)}\r\n")
            elif not bodiless:
                if version == "1.1":
                    chunked = True
                    append("transfer-encoding: chunked\r\n")
                else:
                    close = True  # an HTTP/1.0 client reads a body of unknown length to EOF
            if not close and not self._client_keeps_alive(request):
                close = True
            if (
                not close
                and not self.body_done
                and not self.sent_100
                and self.h11.they_are_waiting_for_100_continue
            ):
                # Answered without the body it expected: nobody knows whether the client
                # will still send it, so the connection can't go on; say so.
                close = True
            if close:
                append("connection: close\r\n")
            elif version == "1.0":
                append("connection: keep-alive\r\n")
        append("\r\n")
        try:
            head = "".join(lines).encode("latin-1")
        except UnicodeEncodeError as exc:
            raise _HandlerBug(f"a header is not latin-1: {exc}") from None
        if bodiless:
            await _close_iterable(body)
            self.response_started = True
            await self._send(head)
        elif isinstance(body, bytes):
            self.response_started = True
            if len(body) <= _JOIN_BELOW:
                await self._send(head + body)
            else:
                await self._send(head)
                await self._send(body)
        else:
            self.response_started = True  # from here on, an error can only close
            await self._send(head)
            await self._stream(body, chunked, None if length is None else int(length))
        return not close

    def _client_keeps_alive(self, request: Request) -> bool:
        """Whether the client lets the connection live on (RFC 9112 section 9.3)."""
        tokens = self.connection_tokens
        if request.http_version == "1.1":
            return b"close" not in tokens
        return b"keep-alive" in tokens

    async def _stream(self, body: AsyncIterable[bytes], chunked: bool, length: int | None) -> None:
        sent = 0
        try:
            async for chunk in body:
                if not chunk:
                    continue
                sent += len(chunk)
                if length is not None and sent > length:
                    raise _HandlerBug(f"the body is longer than its content-length {length}")
                if chunked:
                    await self._send(b"%x\r\n%b\r\n" % (len(chunk), chunk))
                else:
                    await self._send(chunk)
        except (_Abort, _Disconnected):
            raise
        except Exception as exc:
            logger.error(
                "%s: response body failed for %s; closing the connection",
                self.config.name,
                format_address(self.connection.peer_address),
                exc_info=exc,
            )
            raise _Abort(None, "response body failed") from None
        finally:
            await _close_iterable(body)
        if length is not None and sent < length:
            logger.error(
                "%s: response body for %s ended after %d of its %d bytes; closing",
                self.config.name,
                format_address(self.connection.peer_address),
                sent,
                length,
            )
            raise _Abort(None, "response body shorter than its content-length")
        if chunked:
            await self._send(b"0\r\n\r\n")

    async def _send(self, data: bytes | None) -> None:
        if not data:
            return
        self._arm(_SEND, self.wheel.now() + self.config.send_timeout)
        try:
            await self.connection.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            raise _Disconnected("the client went away while a response was sent") from None
        finally:
            self.phase = _NONE

    async def _receive(self) -> bytes:
        try:
            data = await self.connection.receive_some(_RECEIVE_SIZE)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            raise _Disconnected("the client reset the connection") from None
        return data if type(data) is bytes else bytes(data)

    # -- the hand-over --------------------------------------------------------------------

    async def _hand_over(self, request: Request, response: Response) -> None:
        """Give the connection to the response's upgrade callback, then close it."""
        upgrade = response.upgrade
        assert upgrade is not None
        buffered, closed = self.h11.trailing_data
        upgraded = UpgradedConnection(
            self.connection,
            bytes(buffered),
            eof=closed,
            request=request,
            draining=self.server.server.draining,
        )
        try:
            await upgrade(upgraded)
        except Exception as exc:
            logger.error(
                "%s: upgrade handler failed for %s %s from %s; closing the connection",
                self.config.name,
                request.method,
                request.target,
                format_address(self.connection.peer_address),
                exc_info=exc,
            )
            self.connection.close()
            return
        await self._close()

    # -- closing --------------------------------------------------------------------------

    async def _fail(self, abort: _Abort) -> None:
        """Answer ``abort`` (unless a response was already started), then close lingering."""
        logger.info(
            "%s: %s: %s%s",
            self.config.name,
            format_address(self.connection.peer_address),
            abort.message,
            f"; answered {abort.status}" if abort.status else "",
        )
        if abort.status is not None and not self.response_started:
            self._record_error(abort.status)
            data = _error_response(abort.status, abort.message, self.config)
            with move_on_after(self.config.send_timeout) as scope:
                try:
                    await self.connection.send_all(data)
                except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                    self.connection.close()
                    return
            if scope.cancelled_caught:
                self.connection.close()
                return
        await self._close()

    def _record_error(self, status: int) -> None:
        """Count an error answer: for the request in hand, or for a head that never became
        one (route ``<invalid>``)."""
        metrics = self.server.metrics
        if metrics is None:
            return
        request = self.request
        if request is None:
            metrics.record(_INVALID, "OTHER", status, 0.0)
        else:
            route = request.extensions.get("route", _UNMATCHED)
            seconds = _clock() - self.started_at
            metrics.record(route, bounded_method(request.method), status, seconds)

    async def _close(self) -> None:
        await self.connection.aclose_gracefully(self.config.linger)


async def _close_iterable(body: object) -> None:
    aclose = getattr(body, "aclose", None)
    if aclose is not None:
        await aclose()


def _error_response(status: int, message: str, config: HttpConfig) -> bytes:
    """An error answer as raw bytes: h11's state is not trusted after a protocol error."""
    text = f"{message}\n".encode()
    lines = [
        f"HTTP/1.1 {status} {_reason(status)}".encode(),
        b"date: " + _date(),
        b"content-type: text/plain; charset=utf-8",
        b"content-length: " + str(len(text)).encode(),
        b"connection: close",
    ]
    if config.server_header:
        lines.insert(2, b"server: " + config.server_header.encode("latin-1"))
    return b"\r\n".join(lines) + b"\r\n\r\n" + text


async def serve(
    service: Handler,
    listeners: Sequence[Listener[Any]],
    *,
    config: HttpConfig | None = None,
    tls: ssl.SSLContext | None = None,
    task_status: trio.TaskStatus[HttpServer] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``service`` over HTTP/1.1 on ``listeners`` until drained. See :class:`HttpServer`.

    Example::

        listeners = await open_tcp_listeners(8080, host="127.0.0.1")
        await serve(service_fn(hello), listeners, config=HttpConfig(keep_alive_timeout=30))

    Args:
        service: The handler: a ``Service[Request, Response]`` or any async callable.
        listeners: Where connections come from.
        config: Limits and timeouts (default :class:`HttpConfig()`).
        tls: A server ``ssl.SSLContext`` to serve HTTPS.
        task_status: Reports the :class:`HttpServer` once it is accepting.

    Cancellation: cancelling it closes the listeners and cancels every handler.
    """
    await HttpServer(service, listeners, config, tls=tls).serve(task_status=task_status)


__all__ = ["Handler", "HttpServer", "serve"]
