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
import ssl
import time as _wall
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import h11
import trio

from ..net import Server, ServerConfig
from ..net.abc import Connection, Listener, format_address
from ..time import move_on_after, move_on_at
from ._config import HttpConfig
from ._types import Body, BodyTooLarge, Headers, Request, Response, _reason

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


_date_cache: tuple[int, bytes] = (0, b"")


def _date() -> bytes:
    """The ``Date`` header value, formatted at most once a second (wall clock, not a timer)."""
    global _date_cache
    now = int(_wall.time())
    if _date_cache[0] != now:
        _date_cache = (now, email.utils.formatdate(now, usegmt=True).encode())
    return _date_cache[1]


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
        net_config = ServerConfig(
            max_connections=self.config.max_connections,
            idle_timeout=None,  # HTTP's own timeouts govern (a 75 s keep-alive is not cut at 60)
            drain_reads=False,  # HTTP drains itself: finish the request, send Connection: close
            linger=self.config.linger,
            name=self.config.name,
        )
        self.server: Server[Any] = Server(self._serve_connection, listeners, net_config, tls=tls)
        self._scheme = "https" if tls is not None else "http"

    async def serve(
        self, *, task_status: trio.TaskStatus[HttpServer] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Serve until drained, then wait for every connection to end.

        Reports ``task_status.started(self)`` once it is accepting.

        Cancellation: cancelling it closes the listeners and cancels every handler.
        """
        await self.server.serve(task_status=_Forward(task_status, self))

    def drain(self) -> None:
        """Stop accepting; requests in flight finish with ``Connection: close``."""
        self.server.drain()

    async def _serve_connection(self, connection: Connection) -> None:
        await _HttpConnection(self, connection).run()


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


class _HttpConnection:
    """The request loop of one connection."""

    __slots__ = (
        "abort",
        "body_bytes",
        "body_done",
        "config",
        "connection",
        "h11",
        "head_chunks",
        "head_tail",
        "requests",
        "response_started",
        "server",
    )

    def __init__(self, server: HttpServer, connection: Connection) -> None:
        self.server = server
        self.config = server.config
        self.connection = connection
        self.h11 = h11.Connection(
            h11.SERVER, max_incomplete_event_size=self.config.max_header_bytes
        )
        self.requests = 0
        self.body_bytes = 0
        self.abort: _Abort | None = None
        self.response_started = False
        self.body_done = trio.Event()
        self.head_tail = b"\n"
        self.head_chunks: list[bytes] = []

    # -- the loop -------------------------------------------------------------------------

    async def run(self) -> None:
        try:
            while await self._one_request():
                self.h11.start_next_cycle()
                self._skip_leading_empty_lines()
        except _Abort as abort:
            await self._fail(abort)
        except _Disconnected:
            self.connection.close()

    async def _one_request(self) -> bool:
        """Read, handle and answer one request; False when the connection should close."""
        self.response_started = False
        event = await self._read_head()
        if event is None:
            await self._close()
            return False
        self.requests += 1
        request = self._build_request(event)
        response = await self._handle(request)
        if self.abort is not None:
            raise self.abort
        assert response is not None
        close = self._must_close()
        try:
            await self._send_response(request, response, close)
        except h11.LocalProtocolError as exc:
            # The handler's response can't be framed (a Content-Length that is not the body's
            # length, a 1xx status...): a bug in the handler, answered like an exception.
            self._log_handler_error(request, exc)
            raise _Abort(None if self.response_started else 500, str(exc)) from None
        await self._discard_body()
        if close or self.h11.our_state is not h11.DONE or self.h11.their_state is not h11.DONE:
            await self._close()
            return False
        return True

    def _must_close(self) -> bool:
        return (
            self.server.server.draining.is_cancelled()
            or self.requests >= self.config.max_requests_per_connection
        )

    # -- reading the head -----------------------------------------------------------------

    def _next_event(self) -> Any:
        try:
            return self.h11.next_event()
        except h11.RemoteProtocolError as exc:
            status = exc.error_status_hint
            if status == 431:  # h11's own max_incomplete_event_size: say it our way
                raise _Abort(431, self._too_many_header_bytes()) from None
            if status == 501 and self._malformed_transfer_encoding():
                status = 400
            raise _Abort(status, f"bad request: {exc}") from None

    async def _read_head(self) -> h11.Request | None:
        """The next request head, or None when the client closed or idled out quietly."""
        config = self.config
        event = self._next_event()
        if event is h11.NEED_DATA:
            fed = len(self.h11.trailing_data[0])
            if fed == 0:
                first = await self._wait_first_bytes()
                if not first:
                    return None
                event, fed = self._feed_head(first, 0)
            if event is h11.NEED_DATA:
                deadline = trio.current_time() + config.header_timeout
                with move_on_at(deadline) as scope:
                    while event is h11.NEED_DATA:
                        data = await self._receive()
                        if not data:
                            if self.h11.their_state is h11.IDLE and fed == 0:
                                return None
                            self.h11.receive_data(b"")
                            event = self._next_event()
                            break
                        event, fed = self._feed_head(data, fed)
                if scope.cancelled_caught:
                    raise _Abort(
                        408,
                        f"request head not received within {config.header_timeout:g}s "
                        "(header_timeout)",
                    )
        if isinstance(event, h11.ConnectionClosed):
            return None
        if not isinstance(event, h11.Request):
            raise _Abort(400, f"unexpected {type(event).__name__} before a request")
        self._check_head(event)
        return event

    async def _wait_first_bytes(self) -> bytes:
        """Wait for the next request's first bytes; b"" for a quiet close (idle, drain, EOF)."""
        with self.server.server.draining.scope(), move_on_after(self.config.keep_alive_timeout):
            while True:
                data = await self._receive()
                if not data:
                    return b""
                data = data.lstrip(b"\r\n")  # RFC 9112: empty lines before are ignored
                if data:
                    return data
        return b""

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
            raise _Abort(400, "obs-fold (a header line starting with whitespace) is not allowed")
        self.head_tail = window[-3:]

    def _too_many_header_bytes(self) -> str:
        return (
            f"request head exceeds {self.config.max_header_bytes} bytes (max_header_bytes); "
            "raise the limit or fix the client"
        )

    def _skip_leading_empty_lines(self) -> None:
        """Check a pipelined request's buffered bytes: no obs-fold, no leading empty lines.

        h11 refuses the empty lines RFC 9112 says to ignore; they are dropped by handing the
        rest to a fresh h11 connection (rare: only a pipelining client sends them).
        """
        data, closed = self.h11.trailing_data
        if not data:
            return
        self.response_started = False
        self.head_tail = b"\n"
        self.head_chunks = [data.lstrip(b"\r\n")]
        self._check_no_obs_fold(self.head_chunks[0])
        if data[:1] in (b"\r", b"\n"):
            self.h11 = h11.Connection(
                h11.SERVER, max_incomplete_event_size=self.config.max_header_bytes
            )
            stripped = data.lstrip(b"\r\n")
            if stripped:
                self.h11.receive_data(stripped)
            if closed:
                self.h11.receive_data(b"")

    def _check_head(self, event: h11.Request) -> None:
        config = self.config
        if event.http_version not in (b"1.1", b"1.0"):
            raise _Abort(505, f"HTTP/{event.http_version.decode()} is not supported; use HTTP/1.1")
        size = len(event.method) + len(event.target) + 12
        for name, value in event.headers:
            size += len(name) + len(value) + 4
        if size > config.max_header_bytes:
            raise _Abort(431, self._too_many_header_bytes())
        if len(event.headers) > config.max_header_count:
            raise _Abort(
                431,
                f"request has {len(event.headers)} header fields, more than "
                f"{config.max_header_count} (max_header_count)",
            )
        if len(event.target) > config.max_target_length:
            raise _Abort(
                414,
                f"request-target exceeds {config.max_target_length} bytes (max_target_length)",
            )
        length: bytes | None = None
        chunked = False
        for name, value in event.headers:
            if name == b"content-length":
                length = value
            elif name == b"transfer-encoding":
                chunked = True
        if chunked and length is not None:
            raise _Abort(400, "both Content-Length and Transfer-Encoding (request smuggling?)")
        if chunked and event.http_version == b"1.0":
            raise _Abort(400, "Transfer-Encoding is not allowed in an HTTP/1.0 request")
        if length is not None:
            if len(length) > _MAX_CONTENT_LENGTH_DIGITS:
                raise _Abort(400, "Content-Length has too many digits")
            if int(length) > config.max_body_bytes:
                raise _Abort(
                    413,
                    f"body of {int(length)} bytes exceeds {config.max_body_bytes} bytes "
                    "(max_body_bytes)",
                )

    def _build_request(self, event: h11.Request) -> Request:
        headers = Headers(event.headers)
        self.body_bytes = 0
        self.response_started = False
        self.body_done = trio.Event()
        if not any(name in (b"content-length", b"transfer-encoding") for name, _ in event.headers):
            self._next_event()  # no body: h11 gives its EndOfMessage without reading
        if self.h11.their_state is not h11.SEND_BODY:
            self.body_done.set()
            body = Body(b"")
        else:
            length = headers.get("content-length")
            body = Body(_RequestBody(self), int(length) if length is not None else None)
        return Request(
            event.method.decode("ascii"),
            event.target.decode("latin-1"),
            headers,
            body,
            http_version=event.http_version.decode("ascii"),
            peer_address=self.connection.peer_address,
            scheme=self.server._scheme,
        )

    # -- the body -------------------------------------------------------------------------

    async def read_body_chunk(self) -> bytes | None:
        """The next chunk of the request body, or None at its end (the handler's read)."""
        if self.abort is not None:
            raise self.abort
        if self.body_done.is_set():
            return None
        if self.h11.they_are_waiting_for_100_continue and not self.response_started:
            await self._send(self.h11.send(h11.InformationalResponse(status_code=100, headers=[])))
        try:
            return await self._body_event()
        except _Abort as abort:
            self.abort = abort
            raise

    async def _body_event(self) -> bytes | None:
        config = self.config
        while True:
            event = self._next_event()
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
                self.body_done.set()
                return None
            if isinstance(event, h11.ConnectionClosed):
                raise _Disconnected("the client closed the connection inside a body")
            with move_on_after(config.body_timeout) as scope:
                data = await self._receive()
            if scope.cancelled_caught:
                raise _Abort(
                    408, f"no request body bytes for {config.body_timeout:g}s (body_timeout)"
                )
            if not data:
                raise _Disconnected("the client closed the connection inside a body")
            self.h11.receive_data(data)

    async def _discard_body(self) -> None:
        """Read and drop what the handler left of the body, within ``max_body_bytes``."""
        if self.h11.their_state is not h11.SEND_BODY:
            return
        if self.h11.they_are_waiting_for_100_continue:
            return  # no 100 was sent: the client may never send it; the caller closes
        while await self._body_event() is not None:
            pass

    # -- calling the handler --------------------------------------------------------------

    async def _handle(self, request: Request) -> Response | None:
        """The handler's response; None if it failed (answered 500 or aborted)."""
        config = self.config
        response: object = None
        disconnected = False
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._watch_disconnect, nursery.cancel_scope)
            try:
                if config.request_timeout is None:
                    response = await self.server.service(request)
                else:
                    with move_on_after(config.request_timeout) as scope:
                        response = await self.server.service(request)
                    if scope.cancelled_caught:
                        self.abort = _Abort(
                            503,
                            f"handler did not answer within {config.request_timeout:g}s "
                            "(request_timeout)",
                        )
            except _Abort as abort:
                self.abort = self.abort or abort
            except _Disconnected:
                disconnected = True
            except BodyTooLarge as exc:
                self.abort = self.abort or _Abort(413, str(exc))
            except Exception as exc:
                if self.abort is None:
                    self._log_handler_error(request, exc)
                    response = Response.text("Internal Server Error\n", 500)
            nursery.cancel_scope.cancel()
        if disconnected or (response is None and self.abort is None):
            raise _Disconnected("the client went away while its request was handled")
        if self.abort is None and not isinstance(response, Response):
            self._log_handler_error(
                request, TypeError(f"handler returned {type(response).__name__}, not a Response")
            )
            response = Response.text("Internal Server Error\n", 500)
        return response if isinstance(response, Response) else None

    def _log_handler_error(self, request: Request, exc: BaseException) -> None:
        logger.error(
            "%s: handler failed for %s %s from %s; answered 500",
            self.config.name,
            request.method,
            request.target,
            format_address(self.connection.peer_address),
            exc_info=exc,
        )

    async def _watch_disconnect(self, handler_scope: trio.CancelScope) -> None:
        """Once the body is read, read ahead; end-of-stream or a reset cancels the handler."""
        await self.body_done.wait()
        buffered = len(self.h11.trailing_data[0])
        while buffered <= self.config.max_header_bytes:
            try:
                data = await self.connection.receive_some(_RECEIVE_SIZE)
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                data = b""
            if not data:
                handler_scope.cancel()
                return
            self.h11.receive_data(bytes(data))  # a pipelined request: kept for the next cycle
            buffered += len(data)
        await trio.sleep_forever()

    # -- sending --------------------------------------------------------------------------

    async def _send_response(self, request: Request, response: Response, close: bool) -> None:
        headers = [(n, v) for n, v in response.headers.raw() if n not in (b"date", b"server")]
        headers.append((b"date", _date()))
        if self.config.server_header:
            headers.append((b"server", self.config.server_header.encode("latin-1")))
        body = response.body
        if (
            isinstance(body, bytes)
            and response.status not in _NO_BODY_STATUS
            and "content-length" not in response.headers
        ):
            headers.append((b"content-length", str(len(body)).encode()))
        if close:
            headers = [(n, v) for n, v in headers if n != b"connection"]
            headers.append((b"connection", b"close"))
        head = h11.Response(
            status_code=response.status,
            headers=headers,
            reason=(response.reason or _reason(response.status)).encode("latin-1"),
        )
        send = self.h11.send
        data = send(head)
        bodiless = request.method == "HEAD" or response.status in _NO_BODY_STATUS
        if bodiless:
            await _close_iterable(body)
            data += send(h11.EndOfMessage())
        elif isinstance(body, bytes):
            if body:
                data += send(h11.Data(data=body))
            data += send(h11.EndOfMessage())
        self.response_started = True  # from here on, an error can only close
        await self._send(data)
        if not bodiless and not isinstance(body, bytes):
            await self._stream(body)

    async def _stream(self, body: AsyncIterable[bytes]) -> None:
        try:
            async for chunk in body:
                if chunk:
                    await self._send(self.h11.send(h11.Data(data=chunk)))
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
        await self._send(self.h11.send(h11.EndOfMessage()))

    async def _send(self, data: bytes | None) -> None:
        if not data:
            return
        with move_on_after(self.config.send_timeout) as scope:
            try:
                await self.connection.send_all(data)
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                raise _Disconnected("the client went away while a response was sent") from None
        if scope.cancelled_caught:
            raise _Abort(None, f"send stalled for {self.config.send_timeout:g}s (send_timeout)")

    async def _receive(self) -> bytes:
        try:
            data = await self.connection.receive_some(_RECEIVE_SIZE)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            raise _Disconnected("the client reset the connection") from None
        return data if type(data) is bytes else bytes(data)

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
            try:
                await self._send(_error_response(abort.status, abort.message, self.config))
            except (_Abort, _Disconnected):
                self.connection.close()
                return
        await self._close()

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
