"""``Client``: an HTTP/1.1 client with per-origin connection pools, on h11 or httptools.

The shape of one request, as the code below runs it:

1. Parse the URL into an origin ``(scheme, host, port)`` and a request-target.
2. Take a connection from that origin's pool: a permit of the origin's semaphore (at most
   ``max_connections_per_origin`` requests in flight there, waited for within
   ``pool_timeout``), then the newest idle connection that has not outlived
   ``keep_alive_timeout``, or a fresh one (``connect_timeout``). Busy plus idle never
   exceeds the limit: a new connection is opened only when no idle one is left.
3. Send the head, and a small ``bytes`` body with it in one write. A big or streamed body
   goes from a task of the client's nursery while the response is read at the same time,
   so a server that answers early (a 413 before the body) or echoes as it reads cannot
   deadlock against us. ``write_timeout`` bounds each write that makes no progress;
   ``read_timeout`` bounds each wait for response bytes, restarted by upload progress.
4. Give the connection back only when the response was read to its end and the codec says
   both sides are done (no ``Connection: close``, no framing by EOF, nothing after the
   answer); otherwise close it. The codec (``_client_codec``) is h11's state machine, or
   our writer with httptools' parser (``parser="httptools"``): the same rules either way.

A pooled connection that the server closed while it sat idle fails on its first read or
write with nothing received. Such a *stale* connection is retried once on a fresh connection
when the method is idempotent (RFC 9110 section 9.2.2) and the body can be sent again
(``bytes``); any other failure is raised.

Every timer goes through :mod:`runtime.time`, so ``trio.testing.MockClock`` drives them.
"""

from __future__ import annotations

import contextlib
import math
import ssl
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Mapping
from types import TracebackType
from typing import Any
from urllib.parse import urljoin, urlsplit

import attrs
import trio

from ..net import TcpConnector, TlsConnector, client_ssl_context
from ..net.abc import Connection, Connector
from ..service import Service
from ..sync import Semaphore, SemaphorePermit
from ..time import Elapsed, TimeoutScope, timeout
from ._client_codec import (
    CLOSED,
    END,
    NEED_DATA,
    BadResponse,
    Codec,
    ResponseHead,
    codec_class,
)
from ._types import Body, BodyTooLarge, HeaderPairs, Headers, Request, Response

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE"})
"""Methods a stale pooled connection is retried for (RFC 9110 section 9.2.2)."""

_BROKEN = (trio.BrokenResourceError, OSError)
"""What a transport raises when the peer or the network failed (``ClientError``s excepted:
the timeouts are ``OSError``s too, so every handler lets ``ClientError`` through first)."""
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_DEFAULT_PORTS = {"http": 80, "https": 443}
_READ_SIZE = 64 * 1024
_WRITE_PIECE = 256 * 1024
_BUFFERED_BODY = 64 * 1024  # a response body this small that came with its head is read at once
_BUFFER_REQUEST_BODY = 1 << 20
"""A ``Request`` body of known length up to this many bytes is buffered, so it can be resent."""

_HeadersArg = Headers | HeaderPairs | Mapping[str, str] | None


def _to_headers(headers: _HeadersArg) -> Headers:
    return Headers(headers)  # a copy (of a Headers' pairs, at list speed)


class ClientError(Exception):
    """Base class of the errors the HTTP client raises."""


class ClientTimeout(ClientError, TimeoutError):
    """A client timeout passed (a ``TimeoutError``, as :class:`runtime.time.Elapsed` is)."""


class ConnectTimeout(ClientTimeout):
    """Opening a connection (TCP and TLS handshake) took longer than ``connect_timeout``."""


class ReadTimeout(ClientTimeout):
    """The server sent nothing for ``read_timeout`` seconds."""


class WriteTimeout(ClientTimeout):
    """A write to the server made no progress for ``write_timeout`` seconds."""


class PoolTimeout(ClientTimeout):
    """Every connection to the origin stayed busy for ``pool_timeout`` seconds."""


class ConnectError(ClientError, ConnectionError):
    """The connection could not be opened (refused, unreachable, TLS handshake failed)."""


class RemoteProtocolError(ClientError):
    """The server broke HTTP/1.1: a malformed response, or a close in the middle of one."""


class ResponseTooLarge(ClientError, BodyTooLarge):
    """A response body is longer than ``max_response_bytes``."""


class TooManyRedirects(ClientError):
    """``follow_redirects`` met more than ``max_redirects`` redirects in a row."""


class _Chunks:
    """A streamed response's body: its chunks, and ``aclose()`` ends the exchange."""

    __slots__ = ("_exchange",)

    def __init__(self, exchange: _Exchange) -> None:
        self._exchange = exchange

    def __aiter__(self) -> AsyncIterator[bytes]:
        assert self._exchange.chunks is not None
        return self._exchange.chunks

    async def aclose(self) -> None:
        await self._exchange.aclose()


class _Stale(Exception):
    """A reused connection failed before anything of the response arrived."""


@attrs.frozen
class Origin:
    """Where a pool's connections go: ``scheme``, ``host`` and ``port``."""

    scheme: str
    host: str
    port: int


_ORIGINS: dict[str, tuple[Origin, str]] = {}  # "scheme://netloc": (origin, Host value)
_ORIGINS_MAX = 1024


def _parse_url(url: str) -> tuple[Origin, str, str]:
    """``(origin, request-target, Host header value)`` of an absolute http(s) URL.

    The ``scheme://netloc`` part is parsed once and remembered (a client calls the same
    few origins again and again); the rest is cut here, unless it holds a character that
    ``urlsplit`` would remove (tab, CR, LF), which takes the whole slow way.
    """
    start = url.find("://") + 3
    if start > 2 and not any(c in url for c in "\t\r\n"):
        end = len(url)
        for mark in "/?#":
            found = url.find(mark, start)
            if found != -1 and found < end:
                end = found
        known = _ORIGINS.get(url[:end])
        if known is not None:
            path, _, query = url[end:].partition("#")[0].partition("?")
            return known[0], (path or "/") + (f"?{query}" if query else ""), known[1]
        origin, target, host_header = _parse_whole_url(url)
        if len(_ORIGINS) >= _ORIGINS_MAX:
            _ORIGINS.clear()
        _ORIGINS[url[:end]] = (origin, host_header)
        return origin, target, host_header
    return _parse_whole_url(url)


def _parse_whole_url(url: str) -> tuple[Origin, str, str]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        raise ValueError(
            f"not an absolute http:// or https:// URL: {url!r}; pass a full URL, or give the "
            "Client a base_url and pass a path"
        )
    try:
        port = parts.port or _DEFAULT_PORTS[scheme]
    except ValueError as exc:
        raise ValueError(f"bad port in URL {url!r}") from exc
    host = parts.hostname
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    host_header = f"[{host}]" if ":" in host else host
    if port != _DEFAULT_PORTS[scheme]:
        host_header += f":{port}"
    return Origin(scheme, host, port), target, host_header


@attrs.frozen
class ClientStatistics:
    """What a :class:`Client` holds and has done, from :meth:`Client.statistics`.

    Attributes:
        origins: Origins with a pool.
        idle_connections: Connections waiting in the pools for a request.
        requests_in_flight: Requests holding a connection now (head sent or being sent,
            response not yet read to its end).
        connections_opened: Connections opened so far.
        connections_reused: Requests that went on a pooled connection.
        stale_retries: Requests re-sent on a fresh connection because the pooled one had
            been closed by the server.
    """

    origins: int
    idle_connections: int
    requests_in_flight: int
    connections_opened: int
    connections_reused: int
    stale_retries: int


class _PooledConnection:
    """One connection and its codec (h11's state machine, or httptools)."""

    __slots__ = ("codec", "conn", "got_data", "idle_since", "read_scope", "reused")

    def __init__(self, conn: Connection, codec: Codec) -> None:
        self.conn = conn
        self.codec = codec
        self.idle_since = 0.0
        self.reused = False  # it served a request before: it may have gone stale
        self.got_data = False  # some of the current response has arrived
        self.read_scope: TimeoutScope | None = None  # the read waiting now, if any

    def reusable(self) -> bool:
        return self.codec.reusable()


class _Pool:
    """The connections of one origin: a semaphore of requests in flight, and the idle ones."""

    __slots__ = ("idle", "permits")

    def __init__(self, max_connections: int) -> None:
        self.permits = Semaphore(max_connections)
        self.idle: list[_PooledConnection] = []


@attrs.define(eq=False)
class _Exchange:
    """One request on one connection, until its response body ends or it is abandoned."""

    client: Client
    pool: _Pool
    permit: SemaphorePermit | None
    pc: _PooledConnection
    done: bool = False
    chunks: AsyncGenerator[bytes, None] | None = None
    send_error: Exception | None = None  # the body sender's failure, if it failed
    head_scope: trio.CancelScope | None = None  # set while the response head is awaited
    send_scope: trio.CancelScope | None = None  # the body sender's, while it runs

    async def next_event(self) -> Any:
        pc = self.pc
        codec = pc.codec
        while True:
            try:
                event = codec.next_event()
            except BadResponse as exc:
                raise RemoteProtocolError(str(exc)) from exc
            if event is not NEED_DATA:
                return event
            codec.receive_data(await self.client._receive(pc))

    async def receive_head(self) -> ResponseHead:
        try:
            event = await self.next_event()
            if type(event) is ResponseHead:
                return event
            if event is CLOSED:
                raise RemoteProtocolError("the server closed the connection before responding")
            raise RemoteProtocolError(f"the server sent a bad response: {event!r} before a head")
        except ClientTimeout:
            raise  # a timeout is an OSError too, and never a stale connection
        except (RemoteProtocolError, *_BROKEN) as exc:
            if self.pc.reused and not self.pc.got_data:
                raise _Stale() from exc
            raise

    async def body_event(self) -> bytes | object:
        """The next piece of the response body (bytes) or ``END``, reading as needed."""
        try:
            event = await self.next_event()
        except ClientError:
            raise
        except (*_BROKEN, trio.ClosedResourceError) as exc:
            if self.send_error is not None:
                raise RemoteProtocolError(
                    f"sending the request body failed: {self.send_error!r}"
                ) from self.send_error
            raise RemoteProtocolError(
                f"the connection broke in the middle of the response body: {exc}"
            ) from exc
        if type(event) is bytes or event is END:
            return event
        raise RemoteProtocolError(f"unexpected {type(event).__name__} in a body")

    async def receive_chunks(self) -> AsyncGenerator[bytes, None]:
        try:
            while True:
                event = await self.body_event()
                if event is END:
                    self.done = True
                    return
                assert type(event) is bytes
                yield event
        finally:
            self.release()

    async def read_buffered(self) -> bytes:
        """The whole body when the codec holds all of it already (``codec.complete``).

        Taken from the codec's buffer with no wait and no body generator (a proxy's common
        case: a small answer that came in one read), then the connection goes back.
        """
        codec = self.pc.codec
        parts: list[bytes] = []
        try:
            while True:
                try:
                    event = codec.next_event()
                except BadResponse as exc:
                    raise RemoteProtocolError(str(exc)) from exc
                if event is NEED_DATA:  # not after codec.complete(); read on all the same
                    event = await self.body_event()
                if type(event) is bytes:
                    parts.append(event)
                elif event is END:
                    self.done = True
                    return b"".join(parts)
                else:
                    raise RemoteProtocolError(f"unexpected {type(event).__name__} in a body")
        finally:
            self.release()

    async def aclose(self) -> None:
        """End the body reader (if one started) and release the connection."""
        if self.chunks is not None:
            await self.chunks.aclose()
        self.release()

    def release(self) -> None:
        """Give the connection back to the pool if reusable, else close it; free the permit."""
        permit = self.permit
        if permit is None:
            return
        self.permit = None
        if self.send_scope is not None:
            self.send_scope.cancel()  # a body still being sent is not wanted any more
        pc = self.pc
        try:
            if self.done and not self.client._closed and pc.reusable():
                pc.codec.start_next_cycle()
                pc.idle_since = trio.current_time()
                pc.reused = True
                pc.got_data = False
                self.pool.idle.append(pc)
            else:
                pc.conn.close()
        finally:
            permit.release()
            self.client._in_flight -= 1


class Client(Service[Request, Response]):
    """An HTTP/1.1 client with per-origin connection pools.

    Use it as an async context manager: it owns a nursery for the tasks that send request
    bodies, and leaving closes every pooled connection::

        async with Client() as client:
            response = await client.get("http://127.0.0.1:8000/")

    It is a ``Service[Request, Response]``: ``await client(request)`` sends a
    :class:`Request` whose ``target`` is an absolute URL (``http://host:port/path``), or a
    path resolved against ``base_url``. So every middleware in :mod:`runtime.service`
    (timeout, retry, limit, balance...) layers on it.

    Every timeout is finite by default (5 s, as httpx's), so a dead server never hangs a
    caller. Redirects are not followed unless ``follow_redirects=True``.

    Args:
        base_url: Resolves relative URLs and targets (``urljoin``).
        connector: Opens plain connections (default :class:`~runtime.net.TcpConnector`,
            without a timeout of its own: ``connect_timeout`` bounds it).
        tls_connector: Opens ``https`` connections (default: TLS over ``connector`` with
            ``ssl_context``).
        ssl_context: For the default ``tls_connector`` (default
            :func:`~runtime.net.client_ssl_context`: certificates and host names verified).
        connect_timeout: Seconds to open a connection, TLS handshake included.
        read_timeout: Seconds each wait for response bytes may last (while a body is still
            being sent, each write that made progress restarts it). ``math.inf``: no limit
            of the client's own, for a caller whose own deadlines govern (a proxy's).
        write_timeout: Seconds a write of the request may make no progress (``math.inf``:
            none of the client's own).
        pool_timeout: Seconds to wait for a free connection when the origin's are all busy.
        max_connections_per_origin: Connections to one origin at once (busy plus idle).
            Default 10.
        keep_alive_timeout: Seconds an idle pooled connection is kept; an older one is closed
            instead of reused. Default 15 s (below the 60-75 s most servers allow, so the
            client usually lets go first).
        max_response_bytes: Longest response body :meth:`request` reads whole. Default
            10 MiB. (:meth:`stream` leaves the limit to the caller.)
        max_header_bytes: Longest response head. Default 64 KiB.
        follow_redirects: Follow 301, 302, 303, 307 and 308. Default False.
        max_redirects: Redirects followed in a row before :class:`TooManyRedirects`.
        headers: Sent with every request (a request's own headers win).
        parser: How responses are parsed and requests written: ``"h11"`` (the default),
            ``"httptools"`` (llhttp, in C, several times cheaper per request; needs the
            package) or ``"auto"`` (httptools if installed, else h11). Both apply the same
            limits and refuse the same malformed answers.

    Raises:
        ValueError: a setting is out of range, or ``parser="httptools"`` without httptools.
    """

    __slots__ = (
        "_base_url",
        "_closed",
        "_codec",
        "_connector",
        "_default_headers",
        "_in_flight",
        "_nursery",
        "_nursery_manager",
        "_opened",
        "_pools",
        "_reused",
        "_ssl_context",
        "_stale_retries",
        "_tls_connector",
        "connect_timeout",
        "follow_redirects",
        "keep_alive_timeout",
        "max_connections_per_origin",
        "max_header_bytes",
        "max_redirects",
        "max_response_bytes",
        "pool_timeout",
        "read_timeout",
        "write_timeout",
    )

    def __init__(
        self,
        *,
        base_url: str | None = None,
        connector: Connector[Connection] | None = None,
        tls_connector: Connector[Connection] | None = None,
        ssl_context: ssl.SSLContext | None = None,
        connect_timeout: float = 5.0,
        read_timeout: float = 5.0,
        write_timeout: float = 5.0,
        pool_timeout: float = 5.0,
        max_connections_per_origin: int = 10,
        keep_alive_timeout: float = 15.0,
        max_response_bytes: int = 10 << 20,
        max_header_bytes: int = 64 * 1024,
        follow_redirects: bool = False,
        max_redirects: int = 5,
        headers: _HeadersArg = None,
        parser: str = "h11",
    ) -> None:
        self._codec = codec_class(parser)
        for name, value in [
            ("connect_timeout", connect_timeout),
            ("read_timeout", read_timeout),
            ("write_timeout", write_timeout),
            ("pool_timeout", pool_timeout),
            ("keep_alive_timeout", keep_alive_timeout),
        ]:
            if not value > 0:
                raise ValueError(f"{name} must be > 0 seconds, got {value!r}")
        for name, count in [
            ("max_connections_per_origin", max_connections_per_origin),
            ("max_response_bytes", max_response_bytes),
            ("max_header_bytes", max_header_bytes),
        ]:
            if count < 1:
                raise ValueError(f"{name} must be >= 1, got {count!r}")
        if max_redirects < 0:
            raise ValueError(f"max_redirects must be >= 0, got {max_redirects!r}")
        self._base_url = base_url
        self._connector: Connector[Connection] = connector or TcpConnector(connect_timeout=None)
        self._tls_connector = tls_connector  # made at the first https request if None
        self._ssl_context = ssl_context
        self._default_headers = _to_headers(headers)
        self._pools: dict[Origin, _Pool] = {}
        self._closed = False
        self._nursery: trio.Nursery | None = None
        self._nursery_manager: contextlib.AbstractAsyncContextManager[None] | None = None
        self._in_flight = self._opened = self._reused = self._stale_retries = 0
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.write_timeout = write_timeout
        self.pool_timeout = pool_timeout
        self.max_connections_per_origin = max_connections_per_origin
        self.keep_alive_timeout = keep_alive_timeout
        self.max_response_bytes = max_response_bytes
        self.max_header_bytes = max_header_bytes
        self.follow_redirects = follow_redirects
        self.max_redirects = max_redirects

    # -- lifecycle -------------------------------------------------------------------------

    async def __aenter__(self) -> Client:
        if self._nursery_manager is not None:
            raise RuntimeError("a Client is opened once; make a new one")
        manager = self._nursery_manager = self._open()
        await manager.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        manager = self._nursery_manager
        assert manager is not None
        await manager.__aexit__(exc_type, exc, tb)

    @contextlib.asynccontextmanager
    async def _open(self) -> AsyncIterator[None]:
        # The nursery only runs body senders, which never raise: an error out of it is the
        # caller's own, and is re-raised as itself, not wrapped in an ExceptionGroup.
        single: BaseException | None = None
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                try:
                    yield
                finally:
                    await self.aclose()
                    self._nursery = None
        except BaseExceptionGroup as group:
            if len(group.exceptions) != 1:
                raise
            single = group.exceptions[0]
        if single is not None:
            raise single

    async def aclose(self) -> None:
        """Close every idle connection; busy ones close when their response ends.

        Cancellation: closing is immediate, so a cancel changes nothing.
        """
        self._closed = True
        for pool in self._pools.values():
            for pc in pool.idle:
                pc.conn.close()
            pool.idle.clear()
        if self._nursery is not None:
            self._nursery.cancel_scope.cancel()  # the body senders of unfinished requests
        await trio.lowlevel.checkpoint()

    def idle_connections(self) -> int:
        """How many connections sit idle in the pools."""
        return sum(len(pool.idle) for pool in self._pools.values())

    def statistics(self) -> ClientStatistics:
        """A snapshot of the pools and the counters (see :class:`ClientStatistics`)."""
        return ClientStatistics(
            origins=len(self._pools),
            idle_connections=self.idle_connections(),
            requests_in_flight=self._in_flight,
            connections_opened=self._opened,
            connections_reused=self._reused,
            stale_retries=self._stale_retries,
        )

    # -- the public calls ------------------------------------------------------------------

    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: _HeadersArg = None,
        body: bytes | AsyncIterable[bytes] = b"",
    ) -> Response:
        """Send one request and read the whole response.

        Args:
            method: ``"GET"``, ``"POST"``...
            url: An absolute ``http://`` or ``https://`` URL, or one relative to ``base_url``.
            headers: Extra header fields (``Host`` is added from the URL if absent).
            body: ``bytes`` (sent with Content-Length), or an async iterable of ``bytes``
                (sent chunked unless ``headers`` has a Content-Length).

        Returns:
            A :class:`Response` whose ``body`` is ``bytes``.

        Raises:
            ValueError: the URL is not http(s), or relative without a ``base_url``.
            ConnectError: the connection could not be opened.
            ConnectTimeout, ReadTimeout, WriteTimeout, PoolTimeout: a timeout passed.
            RemoteProtocolError: the server broke the protocol or closed mid-response.
            ResponseTooLarge: the body is longer than ``max_response_bytes``.
            TooManyRedirects: more than ``max_redirects`` redirects (with
                ``follow_redirects``).

        Cancellation: a cancelled request closes its connection; nothing goes back to the
        pool half-read.
        """
        response = await self.send(method, url, headers=headers, body=body)
        assert isinstance(response.body, Body)
        try:
            length = response.body.length
            limit = self.max_response_bytes
            if length is not None and length > limit:
                raise ResponseTooLarge(
                    f"response body of {length} bytes exceeds max_response_bytes ({limit}); "
                    "raise the limit or use Client.stream() to read it in pieces"
                )
            try:
                data = await response.body.read(limit)
            except BodyTooLarge as exc:
                raise ResponseTooLarge(
                    f"response body exceeds max_response_bytes ({limit}); raise the limit or "
                    "use Client.stream() to read it in pieces"
                ) from exc
            return Response(response.status, response.headers, data, response.reason)
        finally:
            await response.body.aclose()

    async def get(self, url: str, *, headers: _HeadersArg = None) -> Response:
        """``request("GET", url, headers=headers)``."""
        return await self.request("GET", url, headers=headers)

    async def post(
        self,
        url: str,
        *,
        headers: _HeadersArg = None,
        body: bytes | AsyncIterable[bytes] = b"",
    ) -> Response:
        """``request("POST", url, headers=headers, body=body)``."""
        return await self.request("POST", url, headers=headers, body=body)

    async def __call__(self, request: Request) -> Response:
        """Send a :class:`Request` (its ``target`` an absolute URL or relative to
        ``base_url``) and read the whole response, as :meth:`request` does.

        A body of known length up to 1 MiB is buffered first, so a stale pooled connection
        can be retried with it, and put back in the request as a fresh :class:`Body`, so
        a ``Retry`` middleware can send the same request again. A longer or unsized body
        streams, and can be sent once.
        """
        body: bytes | AsyncIterable[bytes]
        headers = _to_headers(request.headers)
        length = request.body.length
        if length == 0:
            body = b""  # nothing to read: a Retry may send this request again as it is
        elif length is not None and length <= _BUFFER_REQUEST_BODY:
            body = await request.body.read()
            request.body = Body(body)  # put back unread, so a Retry can send it again
        else:
            body = request.body
            if length is not None:
                headers.setdefault("content-length", str(length))
        return await self.request(request.method, request.target, headers=headers, body=body)

    @contextlib.asynccontextmanager
    async def stream(
        self,
        method: str,
        url: str,
        *,
        headers: _HeadersArg = None,
        body: bytes | AsyncIterable[bytes] = b"",
    ) -> AsyncIterator[Response]:
        """Send one request and yield the response as soon as its head arrives.

        Its ``body`` is a :class:`Body` that reads from the connection as you iterate it.
        The connection goes back to the pool only if the body was read to its end; leaving
        the block early closes it. Arguments and errors are those of :meth:`request`.

        Cancellation: as :meth:`request`.
        """
        response = await self._start(method, url, headers, body, buffer=False)
        try:
            yield response
        finally:
            assert isinstance(response.body, Body)
            await response.body.aclose()

    async def send(
        self,
        method: str,
        url: str,
        *,
        headers: _HeadersArg = None,
        body: bytes | AsyncIterable[bytes] = b"",
    ) -> Response:
        """Send one request and return the response as soon as its head arrives.

        The lower half of :meth:`stream`, for a caller that hands the body on (a proxy):
        the response's ``body`` is a :class:`Body` that you must read to its end or
        ``await response.body.aclose()``; until then the connection is not back in the
        pool. A small body that came with the head is read already (``body.buffered``),
        and its connection is back. Arguments and errors are those of :meth:`request`.

        Cancellation: as :meth:`request`.
        """
        return await self._start(method, url, headers, body, buffer=True)

    async def _start(
        self,
        method: str,
        url: str,
        headers: _HeadersArg,
        body: bytes | AsyncIterable[bytes],
        *,
        buffer: bool,
    ) -> Response:
        method = method.upper()
        url = self._resolve(url)
        given = _to_headers(headers)
        if self._default_headers:
            # A default field is sent unless the call gives that name; every field the call
            # gives is sent, repeated names included (a proxy passes them on as they came).
            named = set(given)
            defaults = [item for item in self._default_headers.items() if item[0] not in named]
            request_headers = Headers([*defaults, *given.items()])
        else:
            request_headers = given
        for hop in range(self.max_redirects + 1):
            exchange, response = await self._send(method, url, request_headers, body, buffer)
            location = response.headers.get("location")
            if not (self.follow_redirects and response.status in _REDIRECTS and location):
                break
            replayable = isinstance(body, bytes)
            if response.status == 303 or (response.status in (301, 302) and method == "POST"):
                method, body, replayable = ("GET" if method != "HEAD" else "HEAD"), b"", True
                request_headers.remove("content-length")
                request_headers.remove("transfer-encoding")
                request_headers.remove("content-type")
            if not replayable:
                break  # a streamed body cannot be sent again: hand the redirect back
            exchange.release()  # the redirect's body is dropped with its connection
            new_url = urljoin(url, location)
            if _parse_url(new_url)[0] != _parse_url(url)[0]:
                request_headers.remove("authorization")
                request_headers.remove("cookie")
            url = new_url
            request_headers.remove("host")
            if hop == self.max_redirects:
                raise TooManyRedirects(
                    f"more than {self.max_redirects} redirects (last to {url}); raise "
                    "max_redirects or follow them yourself"
                )
        return response

    # -- internals -------------------------------------------------------------------------

    def _resolve(self, url: str) -> str:
        if "://" in url or self._base_url is None:
            return url
        return urljoin(self._base_url, url)

    async def _send(
        self,
        method: str,
        url: str,
        headers: Headers,
        body: bytes | AsyncIterable[bytes],
        buffer: bool,
    ) -> tuple[_Exchange, Response]:
        origin, target, host = _parse_url(url)
        headers = Headers(headers)  # a copy: a redirect sends the caller's headers again
        headers.setdefault("host", host)
        if isinstance(body, bytes):
            if body or method not in ("GET", "HEAD"):
                headers.set("content-length", str(len(body)))
        elif "content-length" not in headers:
            headers.set("transfer-encoding", "chunked")
        retry = method in IDEMPOTENT_METHODS and isinstance(body, bytes)
        exchange = await self._checkout(origin)
        try:
            try:
                return exchange, await self._exchange(
                    exchange, method, target, headers, body, buffer
                )
            except _Stale as exc:
                if not retry:
                    raise RemoteProtocolError(
                        f"the server closed a pooled connection to {origin.host}:{origin.port} "
                        f"before answering; a {method} is not retried (not idempotent, or its "
                        "body cannot be resent)"
                    ) from exc.__cause__
            exchange.release()
            self._stale_retries += 1
            exchange = await self._checkout(origin, fresh=True)
            return exchange, await self._exchange(exchange, method, target, headers, body, buffer)
        except BaseException:
            exchange.release()
            raise

    async def _exchange(
        self,
        exchange: _Exchange,
        method: str,
        target: str,
        headers: Headers,
        body: bytes | AsyncIterable[bytes],
        buffer: bool,
    ) -> Response:
        pc = exchange.pc
        # A small body goes with the head in one write. A big or streamed one goes from a
        # task of the client's nursery while the response is read, so a server that answers
        # early (413) or echoes as it reads cannot deadlock against us.
        inline = isinstance(body, bytes) and (len(body) <= _WRITE_PIECE or self._nursery is None)
        try:
            codec = pc.codec
            data = codec.head(method, target, headers._items)
            if inline:
                assert isinstance(body, bytes)
                if body:
                    data += codec.data(body)
                data += codec.end()
            await self._write(pc, data)
            if not inline and self._nursery is None:
                await self._send_body(exchange, body)
                if exchange.send_error is not None:
                    raise exchange.send_error
        except ClientError:
            raise
        except _BROKEN as exc:
            if pc.reused:
                raise _Stale() from exc
            exchange.send_error = exc  # the server may have answered, then closed: read on
        nursery = self._nursery
        sender = not inline and nursery is not None and exchange.send_error is None
        if sender:
            assert nursery is not None
            nursery.start_soon(self._send_body, exchange, body)
        head = await self._receive_head(exchange, sender)
        response_headers = Headers._from_lowercase(head.headers)
        length: int | None = None
        if method == "HEAD" or head.status_code in (204, 304):
            length = 0
        elif "transfer-encoding" not in response_headers:
            value = response_headers.get("content-length")
            length = int(value) if value is not None else None
        reason = head.reason.decode("latin-1")
        if (
            buffer
            and length is not None
            and length <= min(_BUFFERED_BODY, self.max_response_bytes)
            and pc.codec.complete(length)
            and exchange.send_error is None
        ):
            # All of a small body came with the head: read it now (no wait, the connection
            # is back in the pool at once) and hand it over as bytes.
            data = await exchange.read_buffered()
            return Response(head.status_code, response_headers, Body(data), reason)
        exchange.chunks = exchange.receive_chunks()
        return Response(
            head.status_code, response_headers, Body(_Chunks(exchange), length), reason
        )

    async def _receive_head(self, exchange: _Exchange, sender: bool) -> ResponseHead:
        """The response head; ``sender``: a body sender task runs, and may cut the wait."""
        if not sender:  # nothing but the caller can cancel this wait: no scope of our own
            return await self._await_head(exchange)
        with trio.CancelScope() as scope:
            exchange.head_scope = scope
            try:
                head = await self._await_head(exchange)
                failed = exchange.send_error
                if failed is None or (
                    not isinstance(failed, ClientError)
                    and isinstance(failed, (*_BROKEN, trio.ClosedResourceError))
                ):
                    return head
                # The sender failed as the head arrived: its cancel came too late to stop
                # the read. The request is broken all the same.
            finally:
                exchange.head_scope = None
        # the sender cancelled the wait: its failure (a stalled write, the body's own error)
        assert exchange.send_error is not None
        raise exchange.send_error

    async def _await_head(self, exchange: _Exchange) -> ResponseHead:
        try:
            return await exchange.receive_head()
        except _Stale:
            raise
        except (ClientError, *_BROKEN, trio.ClosedResourceError) as exc:
            failed = exchange.send_error
            if failed is not None:
                raise RemoteProtocolError(
                    f"sending the request body failed ({failed!r}) and no response came"
                ) from failed
            if isinstance(exc, ClientError):
                raise
            raise RemoteProtocolError(f"the connection broke before a response: {exc}") from exc

    async def _send_body(self, exchange: _Exchange, body: bytes | AsyncIterable[bytes]) -> None:
        """Send the body and its end; on failure, record it and wake the response reader.

        A transport failure (the server closed) lets the reader go on: the server may have
        answered before it closed. Any other failure (a stalled write, an error of the
        caller's body iterator) stops the request.
        """
        pc = exchange.pc
        if exchange.permit is None:
            return  # the request ended before this task started
        try:
            with trio.CancelScope() as exchange.send_scope:  # release() cancels it
                codec = pc.codec
                if isinstance(body, bytes):
                    await self._write(pc, codec.data(body))
                else:
                    async for chunk in body:
                        if chunk:
                            await self._write(pc, codec.data(chunk))
                await self._write(pc, codec.end())
        except Exception as exc:
            exchange.send_error = exc
            if isinstance(exc, ClientError) or not isinstance(
                exc, (*_BROKEN, trio.ClosedResourceError)
            ):
                if exchange.head_scope is not None:
                    exchange.head_scope.cancel()
                else:
                    pc.conn.close()  # the caller is reading the response: end it

    async def _write(self, pc: _PooledConnection, data: bytes) -> None:
        if not data:
            return
        write_timeout = self.write_timeout
        if write_timeout == math.inf:  # no deadline of ours (a caller's governs): no scope
            await pc.conn.send_all(data)
            self._upload_progress(pc)
            return
        try:
            with timeout(write_timeout) as scope:
                if len(data) <= _WRITE_PIECE:
                    await pc.conn.send_all(data)
                    self._upload_progress(pc)
                    return
                # A big body goes in pieces, and each one that is sent moves the deadline: the
                # timeout cuts a write that stalls, not a long upload that makes progress.
                view = memoryview(data)
                for start in range(0, len(view), _WRITE_PIECE):
                    await pc.conn.send_all(view[start : start + _WRITE_PIECE])
                    scope.deadline = trio.current_time() + write_timeout
                    self._upload_progress(pc)
        except Elapsed:
            raise WriteTimeout(
                f"a write to the server made no progress for {self.write_timeout:g} s "
                "(write_timeout)"
            ) from None

    def _upload_progress(self, pc: _PooledConnection) -> None:
        # While a body is still being sent, the server may rightly say nothing yet: each
        # write that made progress restarts the wait of a response reader.
        read_scope = pc.read_scope
        if read_scope is not None:
            read_scope.deadline = trio.current_time() + self.read_timeout

    async def _receive(self, pc: _PooledConnection) -> bytes:
        if self.read_timeout == math.inf:  # no deadline of ours (a caller's governs): no scope
            received = await pc.conn.receive_some(_READ_SIZE)
            if received:
                pc.got_data = True
            return received if isinstance(received, bytes) else bytes(received)
        try:
            with timeout(self.read_timeout) as pc.read_scope:
                received = await pc.conn.receive_some(_READ_SIZE)
        except Elapsed:
            raise ReadTimeout(
                f"the server sent nothing for {self.read_timeout:g} s (read_timeout); raise it "
                "for a slow server"
            ) from None
        finally:
            pc.read_scope = None
        data = received if isinstance(received, bytes) else bytes(received)
        if data:
            pc.got_data = True
        return data

    async def _checkout(self, origin: Origin, *, fresh: bool = False) -> _Exchange:
        if self._closed:
            raise trio.ClosedResourceError("this Client is closed")
        pool = self._pools.get(origin)
        if pool is None:
            pool = self._pools[origin] = _Pool(self.max_connections_per_origin)
        try:
            permit = pool.permits.try_acquire()  # a free connection slot: no scope, no wait
        except trio.WouldBlock:
            permit = await self._wait_for_permit(pool, origin)
        try:
            pc = None if fresh else self._take_idle(pool)
            if pc is None:
                pc = await self._connect(origin)
            else:
                self._reused += 1
        except BaseException:
            permit.release()
            raise
        self._in_flight += 1
        return _Exchange(self, pool, permit, pc)

    async def _wait_for_permit(self, pool: _Pool, origin: Origin) -> SemaphorePermit:
        try:
            with timeout(self.pool_timeout):
                permit = await pool.permits.acquire()
        except Elapsed:
            raise PoolTimeout(
                f"all {self.max_connections_per_origin} connections to {origin.host}:"
                f"{origin.port} stayed busy for {self.pool_timeout:g} s (pool_timeout); raise "
                "max_connections_per_origin or pool_timeout"
            ) from None
        return permit

    def _take_idle(self, pool: _Pool) -> _PooledConnection | None:
        expired = trio.current_time() - self.keep_alive_timeout
        while pool.idle:
            pc = pool.idle.pop()
            if pc.idle_since > expired:
                return pc
            pc.conn.close()
            # older ones are further down the list: they have expired too
            for old in pool.idle:
                old.conn.close()
            pool.idle.clear()
        return None

    async def _connect(self, origin: Origin) -> _PooledConnection:
        connector = self._connector
        if origin.scheme == "https":
            if self._tls_connector is None:  # loading the system CA store costs milliseconds
                context = self._ssl_context or client_ssl_context()
                self._tls_connector = TlsConnector(context, inner=self._connector)
            connector = self._tls_connector
        where = f"{origin.scheme}://{origin.host}:{origin.port}"
        try:
            with timeout(self.connect_timeout):
                conn = await connector.connect(origin.host, origin.port)
        except Elapsed:
            raise ConnectTimeout(
                f"connecting to {where} took more than {self.connect_timeout:g} s "
                "(connect_timeout)"
            ) from None
        except _BROKEN as exc:
            raise ConnectError(f"cannot connect to {where}: {exc}") from exc
        self._opened += 1
        return _PooledConnection(conn, self._codec(self.max_header_bytes))


__all__ = [
    "IDEMPOTENT_METHODS",
    "Client",
    "ClientError",
    "ClientStatistics",
    "ClientTimeout",
    "ConnectError",
    "ConnectTimeout",
    "Origin",
    "PoolTimeout",
    "ReadTimeout",
    "RemoteProtocolError",
    "ResponseTooLarge",
    "TooManyRedirects",
    "WriteTimeout",
]
