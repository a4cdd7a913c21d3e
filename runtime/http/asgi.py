"""ASGI 3 on the runtime's HTTP server: any Starlette or FastAPI app, served by ``HttpServer``.

:func:`asgi_service` turns an ASGI application into a ``Service[Request, Response]``, so the
hardened server (every limit of :class:`~runtime.http.HttpConfig`, the smuggling and header
checks, the timeouts) and every Layer of :mod:`runtime.service` stand in front of it. Open it
with ``async with``: that runs the app's **lifespan** (startup before the first request,
shutdown after the last) and opens the nursery its request tasks run in.

How one HTTP request goes (the hot path is two tasks and one event):

* The handler builds the ASGI ``scope`` and starts the app in a task of the service's nursery,
  so it is in the runtime's task tree (``/tasks``) under the task that opened the service.
* ``receive()`` reads the request body from the server's :class:`~runtime.http.Body` one
  chunk per call (``more_body`` until the last), so the body streams with backpressure:
  nothing is read before the app asks. Once the body is read it waits, and returns
  ``http.disconnect`` when the response is done or the client went away.
* The handler waits for ``http.response.start``. A response whose whole body is sent in the
  same step (``more_body`` false, the usual case) becomes one ``bytes`` response; otherwise
  the body streams through a channel of one slot, so the app waits for a slow client
  (backpressure) and nothing is buffered without bound.
* An app exception before the response start gives 500; after it, the response is aborted
  (the connection is closed: never a clean but truncated body). A hung app is cut by the
  server's ``request_timeout`` (503), or by a ``Timeout`` layer: the handler is cancelled,
  and it cancels the app's task and waits for it, so nothing outlives the request. A client
  that goes away mid-stream makes ``send()`` raise :class:`ClientDisconnected` (an
  ``OSError``, as the spec asks) and ``receive()`` return ``http.disconnect``; the app gets
  ``disconnect_grace`` seconds to finish, then it is cancelled.

A WebSocket upgrade runs the app with a ``websocket`` scope. ``websocket.accept`` answers
``101`` and hands the connection to a :class:`~runtime.http.WebSocket` (wsproto's framing,
the message limit, the ping keepalive, 1001 at a drain); ``websocket.close`` before accepting
answers 403; ``websocket.http.response.*`` sends a denial response of the app's own.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import logging
import ssl
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from types import TracebackType
from typing import Any, Literal

import attrs
import trio

from ..rt._task import unwrap_group
from ..service import Elapsed, Overloaded, Service
from ..time import Deadline, TimerWheel, move_on_after
from ._config import HttpConfig
from ._server import HttpServer, _Disconnected
from ._types import Headers, Request, Response
from ._upgrade import UpgradedConnection
from .websocket import ConnectionClosed, WebSocket, WebSocketConfig, _accept_key, _run, _tokens

logger = logging.getLogger("runtime.http.asgi")
access_logger = logging.getLogger("runtime.http.asgi.access")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
"""An ASGI 3 application: ``await app(scope, receive, send)``."""

_ASGI = {"version": "3.0", "spec_version": "2.4"}

_pos = attrs.validators.gt(0.0)


class LifespanFailed(Exception):
    """The app's lifespan startup failed (``lifespan.startup.failed``, or an exception with
    ``lifespan="on"``); ``message`` is the app's."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ClientDisconnected(OSError):
    """``send()`` on a connection whose client went away (the ASGI spec asks for an
    ``OSError``; Starlette turns it into ``ClientDisconnect``)."""


def _trusted(allow: Sequence[str]) -> Callable[[str | None], bool]:
    """A predicate for ``forwarded_allow_ips``: IPs, networks, ``*``, ``unix:``."""
    if "*" in allow:
        return lambda host: True
    unix = "unix:" in allow
    hosts: set[str] = set()
    networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
    for item in allow:
        item = item.strip()
        if not item or item == "unix:":
            continue
        try:
            if "/" in item:
                networks.append(ipaddress.ip_network(item, strict=False))
            else:
                hosts.add(str(ipaddress.ip_address(item)))
        except ValueError:
            hosts.add(item)  # a name, compared literally (uvicorn does too)

    def trusted(host: str | None) -> bool:
        if host is None:
            return unix
        if host in hosts:
            return True
        if networks:
            try:
                address = ipaddress.ip_address(host)
            except ValueError:
                return False
            return any(address in network for network in networks)
        return False

    return trusted


def _split_ips(value: str | Sequence[str]) -> tuple[str, ...]:
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    return tuple(value)


@attrs.frozen
class AsgiConfig:
    """How the adapter builds scopes and runs the app.

    Attributes:
        root_path: The path the app is mounted at behind a proxy (ASGI ``root_path``); it is
            put in front of every ``path``. Default ``""``.
        lifespan: ``"auto"`` runs the lifespan protocol and tolerates an app that raises on
            the lifespan scope (as uvicorn's default does); ``"on"`` makes that a startup
            failure; ``"off"`` skips it. Default ``"auto"``.
        proxy_headers: Take the client address from ``X-Forwarded-For`` and the scheme from
            ``X-Forwarded-Proto``, when the direct peer is in ``forwarded_allow_ips``.
            Default False.
        forwarded_allow_ips: Peers whose forwarded headers are trusted: IPs, networks
            (``10.0.0.0/8``), ``*`` for any, ``unix:`` for Unix-socket peers, or one string
            of them separated by commas. Default ``("127.0.0.1",)`` (uvicorn's).
        access_log: Log one line per request on ``runtime.http.asgi.access``. Default False:
            a line per request costs more than a hello-world app.
        server: The ``server`` item of the scope, ``(host, port)`` (``(path, None)`` for a
            Unix socket); the runner sets it from its listener. Default None.
        websocket: Limits of the WebSockets the app accepts.
        startup_timeout: Seconds the lifespan startup may take. Default 60 s.
        shutdown_timeout: Seconds the app's tasks still running at the end (background
            tasks), and then its lifespan shutdown, get before they are cancelled.
            Default 10 s.
        disconnect_grace: Seconds an app whose client went away mid-response gets to end by
            itself before it is cancelled. Default 1 s.
    """

    root_path: str = ""
    lifespan: Literal["auto", "on", "off"] = attrs.field(
        default="auto", validator=attrs.validators.in_(("auto", "on", "off"))
    )
    proxy_headers: bool = False
    forwarded_allow_ips: tuple[str, ...] = attrs.field(
        default=("127.0.0.1",), converter=_split_ips
    )
    access_log: bool = False
    server: tuple[str, int | None] | None = None
    websocket: WebSocketConfig = attrs.field(factory=WebSocketConfig)
    startup_timeout: float = attrs.field(default=60.0, validator=_pos)
    shutdown_timeout: float = attrs.field(default=10.0, validator=_pos)
    disconnect_grace: float = attrs.field(default=1.0, validator=_pos)


def _client(peer: object) -> tuple[str, int] | None:
    if isinstance(peer, tuple) and len(peer) >= 2:
        return (str(peer[0]), int(peer[1]))
    return None


class AsgiService(Service[Request, Response]):
    """An ASGI 3 app as a ``Service[Request, Response]``; build it with :func:`asgi_service`.

    Use it inside ``async with``: entering runs the lifespan startup and opens the nursery
    the app's tasks run in; leaving waits for the app's last tasks (``shutdown_timeout``),
    runs the lifespan shutdown, then cancels what is left.

    Attributes:
        app: The ASGI application.
        config: The adapter's settings.
        state: The lifespan state: what the app put in ``scope["state"]`` at startup; each
            request's scope gets a shallow copy.
    """

    __slots__ = ("_cm", "_idle", "_nursery", "_tasks", "_trusted", "app", "config", "state")

    def __init__(self, app: ASGIApp, config: AsgiConfig | None = None) -> None:
        self.app = app
        self.config = config or AsgiConfig()
        self.state: dict[str, Any] = {}
        self._nursery: trio.Nursery | None = None
        self._cm: AbstractAsyncContextManager[AsgiService] | None = None
        self._tasks = 0
        self._idle: trio.Event | None = None
        self._trusted = _trusted(self.config.forwarded_allow_ips)

    # -- lifetime ------------------------------------------------------------------------

    async def __aenter__(self) -> AsgiService:
        """Run the lifespan startup and open the task nursery.

        Raises:
            LifespanFailed: the app said ``lifespan.startup.failed`` (or raised, with
                ``lifespan="on"``), or the startup took over ``startup_timeout``.
            RuntimeError: it is open already.
        """
        if self._cm is not None:
            raise RuntimeError("this AsgiService is open already")
        self._cm = self._lifetime()
        try:
            return await self._cm.__aenter__()
        except BaseExceptionGroup as group:
            self._cm = None
            raise unwrap_group(group) from None
        except BaseException:
            self._cm = None
            raise

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        cm, self._cm = self._cm, None
        assert cm is not None
        try:
            return await cm.__aexit__(exc_type, exc, tb)
        except BaseExceptionGroup as group:
            error = unwrap_group(group)
            if error is exc:
                return False  # the body's own exception: let it go on as itself
            raise error from None

    @asynccontextmanager
    async def _lifetime(self) -> AsyncIterator[AsgiService]:
        config = self.config
        async with trio.open_nursery() as outer:
            lifespan = _Lifespan(self) if config.lifespan != "off" else None
            if lifespan is not None:
                outer.start_soon(lifespan.run, name="runtime.http.asgi.lifespan")
                await lifespan.wait_started()
            try:
                async with trio.open_nursery() as nursery:
                    self._nursery = nursery
                    try:
                        yield self
                        # The app's tasks still running (background tasks) get their time;
                        # not after an error or a cancel: those end everything at once.
                        self._nursery = None
                        if self._tasks:
                            self._idle = trio.Event()
                            with move_on_after(config.shutdown_timeout):
                                await self._idle.wait()
                    finally:
                        self._nursery = None
                        nursery.cancel_scope.cancel()
            finally:
                if lifespan is not None:
                    await lifespan.shutdown()
                outer.cancel_scope.cancel()

    def _task_ended(self) -> None:
        self._tasks -= 1
        if not self._tasks and self._idle is not None:
            self._idle.set()

    def _spawn(self, fn: Callable[[], Awaitable[None]], name: str) -> None:
        nursery = self._nursery
        if nursery is None:
            raise RuntimeError(
                "the ASGI service is not open: use 'async with asgi_service(app) as service:' "
                "and serve requests inside the block"
            )
        nursery.start_soon(fn, name=name)

    # -- requests ------------------------------------------------------------------------

    async def __call__(self, request: Request) -> Response:
        """Run the app for one request; the response, whose body may still stream.

        Cancellation: a cancelled call (the server's request timeout, a client that left, a
        ``Timeout`` layer) cancels the app's task and waits for it to end.
        """
        upgrade = request.headers.get("upgrade")
        if upgrade is not None and "websocket" in _tokens(upgrade):
            return await self._websocket(request)
        cycle = _HttpCycle(self, request)
        self._spawn(cycle.run, f"asgi {request.method} {request.path}")
        try:
            await cycle.ready.wait()
        except BaseException:
            await cycle.abandon()
            raise
        response = cycle.take()
        if self.config.access_log:
            self._log_access(request, response.status)
        return response

    def _log_access(self, request: Request, status: int) -> None:
        client = _client(request.peer_address)
        access_logger.info(
            '%s - "%s %s HTTP/%s" %d',
            f"{client[0]}:{client[1]}" if client else "-",
            request.method,
            request.target,
            request.http_version,
            status,
        )

    def _scope(self, request: Request, kind: str) -> dict[str, Any]:
        """The ASGI scope of ``request`` (``kind``: ``"http"`` or ``"websocket"``)."""
        config = self.config
        raw = request.path
        path = urllib.parse.unquote(raw) if "%" in raw else raw
        root = config.root_path
        client = _client(request.peer_address)
        scheme = request.scheme
        headers = request.headers
        if (
            config.proxy_headers
            and ("x-forwarded-for" in headers or "x-forwarded-proto" in headers)
            and self._trusted(client[0] if client else None)
        ):
            proto = headers.get("x-forwarded-proto")
            if proto:
                scheme = proto.split(",")[0].strip().lower()
            forwarded = headers.get("x-forwarded-for")
            if forwarded:
                hosts = [h.strip() for h in forwarded.split(",") if h.strip()]
                host = next((h for h in reversed(hosts) if not self._trusted(h)), None)
                if host is None and hosts:
                    host = hosts[0]
                if host is not None:
                    client = (host, 0)
        if kind == "websocket":
            scheme = "wss" if scheme in ("https", "wss") else "ws"
        return {
            "type": kind,
            "asgi": _ASGI,
            "http_version": request.http_version,
            "method": request.method,
            "scheme": scheme,
            "path": root + path,
            "raw_path": (root + raw).encode("latin-1"),
            "query_string": request.query.encode("latin-1"),
            "root_path": root,
            "headers": headers.raw(),
            "client": client,
            "server": config.server,
            "state": self.state.copy(),
            "extensions": {},
        }

    # -- WebSocket -----------------------------------------------------------------------

    async def _websocket(self, request: Request) -> Response:
        headers = request.headers
        if request.method != "GET" or request.http_version != "1.1":
            return Response.text("a WebSocket handshake is a GET over HTTP/1.1\n", 400)
        if "upgrade" not in _tokens(headers.get("connection")):
            return Response.text("a WebSocket handshake needs Connection: upgrade\n", 400)
        if headers.get("sec-websocket-version") != "13":
            return Response.text(
                "unsupported WebSocket version: this server speaks 13\n",
                426,
                headers=[("sec-websocket-version", "13")],
            )
        key = headers.get("sec-websocket-key") or ""
        try:
            valid = len(base64.b64decode(key, validate=True)) == 16
        except (binascii.Error, ValueError):
            valid = False
        if not valid:
            return Response.text("Sec-WebSocket-Key must be 16 bytes in base64\n", 400)
        cycle = _WebSocketCycle(self, request, key)
        self._spawn(cycle.run, f"asgi websocket {request.path}")
        try:
            await cycle.decided.wait()
        except BaseException:
            await cycle.abandon()
            raise
        return cycle.answer()


def asgi_service(app: ASGIApp, config: AsgiConfig | None = None, **options: Any) -> AsgiService:
    """An ASGI 3 app as a ``Service[Request, Response]`` for :class:`~runtime.http.HttpServer`.

    Example::

        async with asgi_service(app, root_path="/api") as service:
            stack = ServiceBuilder().concurrency_limit(100).service(service)
            await serve(stack, [TcpListener.bind("127.0.0.1", 8000)])

    Args:
        app: The application (a Starlette or FastAPI app, or any ASGI 3 callable).
        config: The settings; or give them as keywords (``root_path=...``).
        **options: Fields of :class:`AsgiConfig`, when ``config`` is not given.

    Raises:
        TypeError: both ``config`` and keywords were given, or an unknown keyword.
    """
    if config is not None and options:
        raise TypeError("give either config or keyword options, not both")
    return AsgiService(app, config or AsgiConfig(**options))


async def serve_asgi(
    app: ASGIApp | AsgiService,
    listeners: Sequence[Any],
    *,
    config: HttpConfig | None = None,
    asgi: AsgiConfig | None = None,
    tls: ssl.SSLContext | None = None,
    wrap: Callable[[AsgiService], Service[Request, Response]] | None = None,
    task_status: trio.TaskStatus[HttpServer] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve an ASGI app over HTTP/1.1 on ``listeners`` until drained.

    Runs the lifespan startup first (a :class:`LifespanFailed` is raised before anything is
    served), then the :class:`~runtime.http.HttpServer`, then the lifespan shutdown.

    Args:
        app: The ASGI app (or an :class:`AsgiService` not yet opened).
        listeners: Where connections come from.
        config: The server's :class:`~runtime.http.HttpConfig`.
        asgi: The adapter's :class:`AsgiConfig` (when ``app`` is not a service).
        tls: A server ``ssl.SSLContext`` to serve HTTPS.
        wrap: Builds the served stack from the service (Layers: limits, timeouts, metrics).
        task_status: Reports the :class:`~runtime.http.HttpServer` once it accepts.

    Cancellation: cancelling it closes the listeners and cancels every request's app task.
    """
    service = app if isinstance(app, AsgiService) else AsgiService(app, asgi)
    async with service:
        stack: Service[Request, Response] = wrap(service) if wrap is not None else service
        server = HttpServer(stack, listeners, config, tls=tls)
        await server.serve(task_status=task_status)


class OverloadResponse:
    """A Layer that answers ``503 Service Unavailable`` for an ``Overloaded`` (LoadShed) or an
    ``Elapsed`` (Timeout) from the layers below it, instead of the server's 500.

    Example::

        stack = (
            ServiceBuilder()
            .layer(OverloadResponse())
            .load_shed()
            .concurrency_limit(100)
            .timeout(30)
            .service(service)
        )
    """

    def layer(self, inner: Service[Request, Response]) -> Service[Request, Response]:
        """Wrap ``inner``: its ``Overloaded`` and ``Elapsed`` become 503 responses.

        Args:
            inner: The stack below (a LoadShed, a Timeout, the app).

        Returns:
            The service that answers 503 for them.
        """
        return _Answer503(inner)


class _Answer503(Service[Request, Response]):
    __slots__ = ("inner",)

    def __init__(self, inner: Service[Request, Response]) -> None:
        self.inner = inner

    async def __call__(self, request: Request) -> Response:
        try:
            return await self.inner(request)
        except Overloaded:
            return Response.text("Service Unavailable: over the concurrency limit\n", 503)
        except Elapsed:
            return Response.text("Service Unavailable: the request timed out\n", 503)


# -- one HTTP request -----------------------------------------------------------------------


async def _end_of(body: AsyncIterator[bytes]) -> None:
    """Read the end of a body whose every byte was read (no I/O: the parser has it)."""
    try:
        extra = await body.__anext__()
    except StopAsyncIteration:
        return
    raise RuntimeError(f"{len(extra)} body bytes beyond the content-length")  # pragma: no cover


class _Body:
    """The response body as the server iterates it: the early chunks, then the channel."""

    __slots__ = ("cycle", "early", "receiver")

    def __init__(self, cycle: _HttpCycle, early: list[bytes], receiver: Any) -> None:
        self.cycle = cycle
        self.early = early
        self.receiver = receiver

    def __aiter__(self) -> _Body:
        return self

    async def __anext__(self) -> bytes:
        if self.early:
            return self.early.pop(0)
        try:
            return bytes(await self.receiver.receive())
        except trio.EndOfChannel:
            pass
        cycle = self.cycle
        if cycle.complete:
            cycle.end()
            raise StopAsyncIteration
        if cycle.disconnected:
            raise _Disconnected("the client went away")  # a quiet close
        if cycle.error is not None:
            raise cycle.error  # the server logs it and aborts the response
        raise RuntimeError("the ASGI app returned without completing its response body")

    async def aclose(self) -> None:
        """The server is done with the body: the end, or the client went away."""
        self.receiver.close()
        cycle = self.cycle
        if not cycle.complete:
            cycle.client_gone()


class _HttpCycle:
    """One request's ASGI exchange: the app's task on one side, the handler on the other."""

    __slots__ = (
        "body",
        "body_left",
        "body_read",
        "cancel",
        "complete",
        "disconnected",
        "done",
        "early",
        "error",
        "finished",
        "gone",
        "grace",
        "headers",
        "over",
        "ready",
        "request",
        "scope",
        "sender",
        "service",
        "status",
        "taken",
        "taken_event",
    )

    def __init__(self, service: AsgiService, request: Request) -> None:
        self.service = service
        self.request = request
        self.scope = service._scope(request, "http")
        self.body: Any = None  # the request body's iterator, once the app reads it
        self.body_left = True  # the last http.request message is still to be given
        self.body_read = 0
        self.ready = trio.Event()  # the handler may build the response (or the app ended)
        # The response is done or the client went away: ``over``, and the event that a
        # receive() waiting for it parks on (made only then: most apps never wait).
        self.over = False
        self.gone: trio.Event | None = None
        self.done: trio.Event | None = None  # made by abandon(), to wait for the app's end
        self.cancel = trio.CancelScope()
        self.status: int | None = None
        self.headers: Any = ()
        self.early: list[bytes] = []
        self.complete = False  # the app sent its last body chunk
        self.disconnected = False  # the client went away, or the server gave up on it
        self.taken = False  # the handler built the response
        self.taken_event: trio.Event | None = None
        self.finished = False
        self.error: Exception | None = None
        self.sender: Any = None  # the streaming channel's send side, once taken
        self.grace: Deadline | None = None

    async def run(self) -> None:
        service = self.service
        service._tasks += 1
        try:
            with self.cancel:
                await service.app(self.scope, self.receive, self.send)
        except Exception as exc:
            self.error = exc
            if self.disconnected:
                # What an app does once its client is gone (Starlette raises ClientDisconnect)
                # is no failure of the app's: a line without a traceback.
                logger.info(
                    "ASGI app for %s %s ended with %s after the client went away",
                    self.request.method,
                    self.request.target,
                    type(exc).__name__,
                )
            elif self.complete:
                logger.error(
                    "ASGI app failed after its response to %s %s",
                    self.request.method,
                    self.request.target,
                    exc_info=exc,
                )
        finally:
            self.finished = True
            if self.sender is not None:
                self.sender.close()
            self.ready.set()
            self.end()
            if self.done is not None:
                self.done.set()
            if self.grace is not None:
                self.grace.close()
            service._task_ended()

    # -- the app's side --------------------------------------------------------------------

    async def receive(self) -> Message:
        if self.body_left:
            return await self._read_body()
        if not self.over:
            if self.gone is None:
                self.gone = trio.Event()
            await self.gone.wait()
        return {"type": "http.disconnect"}

    async def _read_body(self) -> Message:
        body = self.request.body
        length = body.length
        if length == 0:
            self.body_left = False
            return {"type": "http.request", "body": b"", "more_body": False}
        try:
            if self.body is None:
                self.body = body.__aiter__()
            chunk = await self.body.__anext__()
            self.body_read += len(chunk)
            last = length is not None and self.body_read >= length
            if last:
                # The end of the message is in the parser's buffer already: take it now, so
                # the server knows the body is done (and watches for a disconnect).
                await _end_of(self.body)
        except StopAsyncIteration:
            self.body_left = False
            return {"type": "http.request", "body": b"", "more_body": False}
        except Exception:
            # The server's body reader failed (a limit, a timeout, a reset): the server
            # answers it itself; for the app, the client is gone.
            self.body_left = False
            self.client_gone()
            return {"type": "http.disconnect"}
        if last:
            self.body_left = False
        return {"type": "http.request", "body": chunk, "more_body": not last}

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.body":
            if self.status is None:
                raise RuntimeError("http.response.body before http.response.start")
            if self.complete:
                raise RuntimeError("http.response.body after the response was complete")
            if self.over:
                raise ClientDisconnected("the client went away")
            body = message.get("body", b"")
            more = message.get("more_body", False)
            if not self.taken:
                if body:
                    self.early.append(bytes(body))
                if not more:
                    self.complete = True
                self.ready.set()
                if more:
                    await self._wait_taken()
                return
            try:
                if body:
                    await self.sender.send(bytes(body))
                if not more:
                    self.complete = True
                    self.sender.close()
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                raise ClientDisconnected("the client went away") from None
            return
        if kind == "http.response.start":
            if self.status is not None:
                raise RuntimeError("http.response.start sent twice")
            self.status = int(message["status"])
            self.headers = message.get("headers", ())
            # No checkpoint: an app that sends its whole body next does so before the
            # handler wakes, and the response goes out as one bytes body.
            self.ready.set()
            return
        raise RuntimeError(f"unexpected ASGI message {kind!r} in an http scope")

    async def _wait_taken(self) -> None:
        """Wait until the handler took the response and opened the channel."""
        if not self.taken:
            self.taken_event = trio.Event()
            await self.taken_event.wait()
        if self.sender is None:
            raise ClientDisconnected("the client went away")

    # -- the handler's side ----------------------------------------------------------------

    def take(self) -> Response:
        """The response, once ``ready``: whole, streaming, or 500 for a failed app."""
        self.taken = True
        try:
            return self._take()
        finally:
            if self.taken_event is not None:
                self.taken_event.set()

    def _take(self) -> Response:
        status = self.status
        if status is None or (self.finished and not self.complete):
            self.end()
            request = self.request
            if self.disconnected:
                pass  # logged by run(); the server answers the cause itself (413, 408...)
            elif self.error is not None:
                logger.error(
                    "ASGI app failed for %s %s; answered 500",
                    request.method,
                    request.target,
                    exc_info=self.error,
                )
            else:
                logger.error(
                    "ASGI app returned without %s for %s %s; answered 500",
                    "a response" if status is None else "completing its response",
                    request.method,
                    request.target,
                )
            return Response.text("Internal Server Error\n", 500)
        headers = Headers(self.headers)
        if self.complete:
            self.end()
            early = self.early
            return Response(status, headers, early[0] if len(early) == 1 else b"".join(early))
        self.sender, receiver = trio.open_memory_channel[bytes](1)
        return Response(status, headers, _Body(self, self.early, receiver))

    def end(self) -> None:
        """The response is done, or the client went away: a waiting receive() returns."""
        self.over = True
        if self.gone is not None:
            self.gone.set()

    def client_gone(self) -> None:
        """The client went away (or the server gave up on it): tell the app, and cancel it
        after ``disconnect_grace``."""
        self.disconnected = True
        self.end()
        if not self.finished and self.grace is None:
            wheel = TimerWheel.current()
            self.grace = Deadline(self.cancel.cancel, wheel)
            self.grace.set(wheel.now() + self.service.config.disconnect_grace)

    async def abandon(self) -> None:
        """The handler was cancelled: cancel the app and wait for its task to end."""
        self.disconnected = True
        self.taken = True
        self.end()
        if self.taken_event is not None:
            self.taken_event.set()
        self.cancel.cancel()
        with move_on_after(self.service.config.disconnect_grace, shield=True):
            if not self.finished:
                if self.done is None:
                    self.done = trio.Event()
                await self.done.wait()


# -- one WebSocket --------------------------------------------------------------------------


class _WebSocketCycle:
    """One WebSocket's ASGI exchange: the handshake decision, then the messages."""

    def __init__(self, service: AsgiService, request: Request, key: str) -> None:
        self.service = service
        self.request = request
        self.key = key
        scope = service._scope(request, "websocket")
        offered = ",".join(request.headers.get_all("sec-websocket-protocol"))
        scope["subprotocols"] = [p.strip() for p in offered.split(",") if p.strip()]
        scope["extensions"] = {"websocket.http.response": {}}
        self.scope = scope
        self.decided = trio.Event()  # accepted, refused, or the app ended
        self.connected = trio.Event()  # the 101 is out and the WebSocket exists
        self.done = trio.Event()
        self.cancel = trio.CancelScope()
        self.connect_sent = False
        self.accepted: tuple[str | None, Any] | None = None
        self.refused = False
        self.denial: tuple[int, Any] | None = None
        self.denial_body: list[bytes] = []
        self.denial_complete = False
        self.ws: WebSocket | None = None
        self.subprotocol: str | None = None
        self.error: Exception | None = None
        self.finished = False

    async def run(self) -> None:
        service = self.service
        service._tasks += 1
        try:
            with self.cancel:
                await service.app(self.scope, self.receive, self.send)
        except Exception as exc:
            self.error = exc
            if self.accepted is not None:
                logger.error("ASGI WebSocket app failed; closing with 1011", exc_info=exc)
        finally:
            self.finished = True
            self.decided.set()
            self.done.set()
            service._task_ended()

    async def receive(self) -> Message:
        if not self.connect_sent:
            self.connect_sent = True
            return {"type": "websocket.connect"}
        ws = await self._connection()
        if ws is None:
            return {"type": "websocket.disconnect", "code": 1006, "reason": ""}
        try:
            message = await ws.receive()
        except ConnectionClosed as exc:
            return {"type": "websocket.disconnect", "code": exc.code, "reason": exc.reason}
        if isinstance(message, str):
            return {"type": "websocket.receive", "text": message}
        return {"type": "websocket.receive", "bytes": message}

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if self.accepted is None:
            if self.decided.is_set() and kind != "websocket.http.response.body":
                raise ClientDisconnected("the WebSocket handshake was already answered")
            if kind == "websocket.accept":
                self.accepted = (message.get("subprotocol"), message.get("headers", ()))
                self.decided.set()
                return
            if kind == "websocket.close":
                self.refused = True
                self.decided.set()
                return
            if kind == "websocket.http.response.start":
                self.denial = (int(message["status"]), message.get("headers", ()))
                return
            if kind == "websocket.http.response.body" and self.denial is not None:
                if self.denial_complete:
                    raise RuntimeError("the denial response is complete already")
                self.denial_body.append(bytes(message.get("body", b"")))
                if not message.get("more_body", False):
                    self.denial_complete = True
                    self.decided.set()
                return
            raise RuntimeError(f"unexpected ASGI message {kind!r} before websocket.accept")
        ws = await self._connection()
        if ws is None:
            raise ClientDisconnected("the WebSocket never opened")
        try:
            if kind == "websocket.send":
                text = message.get("text")
                await ws.send(text if text is not None else bytes(message.get("bytes") or b""))
            elif kind == "websocket.close":
                await ws.aclose(int(message.get("code", 1000)), message.get("reason") or "")
            else:
                raise RuntimeError(f"unexpected ASGI message {kind!r} on an open WebSocket")
        except ConnectionClosed as exc:
            raise ClientDisconnected(f"the WebSocket is closed ({exc.code})") from None

    async def _connection(self) -> WebSocket | None:
        """The open WebSocket, once the 101 is out; None if it never opens (the handshake
        was refused, or the 101 could not be sent within the WebSocket's send_timeout)."""
        if self.ws is None:
            if self.accepted is None and self.decided.is_set():
                return None
            with move_on_after(self.service.config.websocket.send_timeout):
                await self.connected.wait()
        return self.ws

    def answer(self) -> Response:
        """The handshake's answer: 101, the app's denial, 403, or 500."""
        if self.accepted is not None:
            subprotocol, extra = self.accepted
            headers = Headers(extra)
            headers.set("sec-websocket-accept", _accept_key(self.key))
            if subprotocol is not None:
                headers.set("sec-websocket-protocol", subprotocol)
            self.subprotocol = subprotocol
            return Response.switching_protocols("websocket", self._take_over, headers=headers)
        if self.denial is not None and self.denial_complete:
            status, headers = self.denial
            return Response(status, Headers(headers), b"".join(self.denial_body))
        if self.refused:
            return Response.text("Forbidden: the application refused the WebSocket\n", 403)
        if self.error is not None:
            logger.error("ASGI WebSocket app failed before accepting", exc_info=self.error)
        else:
            logger.error("ASGI WebSocket app returned without accepting or closing")
        return Response.text("Internal Server Error\n", 500)

    async def _take_over(self, connection: UpgradedConnection) -> None:
        ws = WebSocket(
            connection,
            config=self.service.config.websocket,
            request=self.request,
            subprotocol=self.subprotocol,
        )

        async def until_the_app_ends(ws: WebSocket) -> None:
            self.ws = ws
            self.connected.set()
            await self.done.wait()
            if self.error is not None:
                raise self.error  # _run closes with 1011

        try:
            await _run(ws, until_the_app_ends, connection)
        finally:
            if not self.finished:
                # The connection ended under the app (closed, drained, cancelled): the app's
                # receive() says so; it gets the grace to end, then it is cancelled.
                with move_on_after(self.service.config.disconnect_grace, shield=True):
                    await self.done.wait()
                self.cancel.cancel()

    async def abandon(self) -> None:
        self.cancel.cancel()
        with move_on_after(self.service.config.disconnect_grace, shield=True):
            await self.done.wait()


# -- lifespan -------------------------------------------------------------------------------


class _Lifespan:
    """The lifespan protocol: startup before serving, shutdown after."""

    def __init__(self, service: AsgiService) -> None:
        self.service = service
        self.started = trio.Event()
        self.stop = trio.Event()
        self.stopped = trio.Event()
        self.failed: str | None = None
        self.shutdown_failed: str | None = None
        self.error: Exception | None = None
        self.unsupported = False
        self.sent_startup = False

    async def run(self) -> None:
        scope = {"type": "lifespan", "asgi": _ASGI, "state": self.service.state}
        try:
            await self.service.app(scope, self.receive, self.send)
        except Exception as exc:
            self.error = exc
            if not self.started.is_set():
                self.unsupported = True
            elif self.failed is None:  # a failed startup is reported by wait_started
                logger.error("ASGI lifespan failed after startup", exc_info=exc)
        finally:
            if not self.started.is_set():
                self.unsupported = True
            self.started.set()
            self.stopped.set()

    async def receive(self) -> Message:
        if not self.sent_startup:
            self.sent_startup = True
            return {"type": "lifespan.startup"}
        await self.stop.wait()
        return {"type": "lifespan.shutdown"}

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "lifespan.startup.complete":
            self.started.set()
        elif kind == "lifespan.startup.failed":
            self.failed = str(message.get("message", ""))
            self.started.set()
        elif kind == "lifespan.shutdown.complete":
            self.stopped.set()
        elif kind == "lifespan.shutdown.failed":
            self.shutdown_failed = str(message.get("message", ""))
            self.stopped.set()
        else:
            raise RuntimeError(f"unexpected ASGI message {kind!r} in a lifespan scope")

    async def wait_started(self) -> None:
        """Wait for the startup's outcome.

        Raises:
            LifespanFailed: the startup failed or took too long.
        """
        config = self.service.config
        with move_on_after(config.startup_timeout) as scope:
            await self.started.wait()
        if scope.cancelled_caught:
            raise LifespanFailed(
                f"lifespan startup took over {config.startup_timeout:g}s (startup_timeout)"
            )
        if self.failed is not None:
            raise LifespanFailed(self.failed or "lifespan startup failed")
        if self.unsupported:
            if config.lifespan == "on":
                raise LifespanFailed(f"lifespan startup failed: {self.error!r}")
            if self.error is not None:
                logger.info(
                    "ASGI 'lifespan' protocol appears unsupported (%s: %s)",
                    type(self.error).__name__,
                    self.error,
                )
            else:
                logger.info("ASGI 'lifespan' protocol appears unsupported")

    async def shutdown(self) -> None:
        """Send ``lifespan.shutdown`` and wait for the answer (``shutdown_timeout``)."""
        if self.unsupported or self.failed is not None:
            return
        self.stop.set()
        config = self.service.config
        with move_on_after(config.shutdown_timeout, shield=True) as scope:
            await self.stopped.wait()
        if scope.cancelled_caught:
            logger.error("lifespan shutdown took over %gs; cancelled", config.shutdown_timeout)
        elif self.shutdown_failed is not None:
            logger.error("lifespan shutdown failed: %s", self.shutdown_failed)


__all__ = [
    "ASGIApp",
    "AsgiConfig",
    "AsgiService",
    "ClientDisconnected",
    "LifespanFailed",
    "OverloadResponse",
    "asgi_service",
    "serve_asgi",
]
