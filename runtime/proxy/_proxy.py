"""The proxy: routes, upstream pools and the stack of layers between them.

A request is matched to a route (listener, host, path prefix, method, in file order), then
goes down that route's stack, each piece one of this project's own Services::

    LoadShed                  503 + Retry-After when the route is at max_concurrency
      ConcurrencyLimit        max_concurrency requests in flight
        Timeout               the route's timeout, every try included: then 504
          Retry               idempotent methods (or retry_non_idempotent), a shared Budget,
                              jittered Backoff; connect errors, resets before the response
                              head, per-try timeouts
            Timeout           per_try_timeout
              ReadyNow        no endpoint ready (all ejected): 503 at once, nothing sent
                Balance       p2c over PeakEWMA
                  CircuitBreaker    per endpoint: eject after failure_threshold failures
                    Exchange        one request to one endpoint over the pooled Client

An exchange runs in the downstream request's own task, with no task or channel of its own
(each hand-over between tasks would cost a turn of the scheduler, and on a busy proxy a turn
is the latency it adds). It sends the request and returns at the response head. A small body
that came with the head (the common case) is passed on as bytes, its connection back in the
pool already. A longer one is read from the upstream as the downstream response sends it, so
the client's pace is the upstream's: when the client goes away (or the body is done) the
server closes the body, which ends the exchange. An upstream that dies mid-body makes the
downstream body fail, and the server then aborts the response instead of ending it cleanly.
"""

from __future__ import annotations

import json
import logging
import math
import ssl
import time
from collections.abc import Sequence
from typing import Any

import attrs
import h11
import outcome
import trio

from ..http import (
    Body,
    Client,
    ClientError,
    ConnectError,
    Headers,
    Request,
    Response,
    UpgradedConnection,
)
from ..net import Network, TcpNetwork, TlsConnector
from ..net.abc import Connection, format_address
from ..service import (
    Backoff,
    Balance,
    Budget,
    BudgetExhausted,
    CircuitBreaker,
    CircuitOpen,
    ConsecutiveFailures,
    Elapsed,
    Overloaded,
    PeakEwma,
    Service,
    ServiceBuilder,
)
from ..time import move_on_after, timeout
from ._config import IDEMPOTENT, ProxyConfig, RouteConfig, UpstreamConfig, parse_address
from ._headers import end_to_end, forwarded, request_id
from ._metrics import ProxyStats, status_class

logger = logging.getLogger("runtime.proxy")
_now = time.perf_counter
access_logger = logging.getLogger("runtime.proxy.access")

_MAX_UPGRADE_HEAD = 64 * 1024


class NoEndpoint(Exception):
    """No endpoint of the upstream is ready (none known, or every one ejected)."""


class BadUpstream(ClientError):
    """The upstream's answer is not HTTP (counted as a failure, answered 502)."""


class UpstreamBroken(Exception):
    """The upstream failed after the response head: the downstream response is aborted."""


@attrs.define(eq=False)
class ProxyRequest:
    """One request on its way to an upstream.

    ``body`` is bytes when it can be sent again (``replayable``), else the client's stream.
    """

    method: str
    target: str
    headers: list[tuple[str, str]]
    body: bytes | Body
    replayable: bool
    route: RouteConfig
    tries: int = 0
    endpoint: str = ""
    upgrade: bool = False  # a WebSocket upgrade: tunnel the connection after a 101
    failed_on: list[str] = attrs.Factory(list)  # endpoints a try failed on: retries avoid them


@attrs.define(eq=False)
class UpstreamReply:
    """An upstream's response head, with its body still streaming (or, after a 101 to an
    upgrade, the upstream connection to tunnel, with the bytes read past the head)."""

    status: int
    reason: str
    headers: Headers
    body: _Relay | bytes
    endpoint: str
    tunnel: Connection | None = None
    leftover: bytes = b""


class _Relay:
    """The downstream side of an upstream's streamed body, read in the downstream
    response's own task: no task and no channel between the two connections.

    ``aclose()`` (the server calls it when the response is done or the client is gone)
    ends the upstream exchange: its connection goes back to the pool if the body was read
    to its end, else it is closed.
    """

    __slots__ = ("_body", "_chunks", "_exchange", "_open")

    def __init__(self, body: Body, exchange: Exchange) -> None:
        self._body = body
        self._chunks = body.__aiter__()
        self._exchange = exchange
        self._open = True

    def __aiter__(self) -> _Relay:
        return self

    async def __anext__(self) -> bytes:
        seconds = self._exchange.read_timeout
        try:
            with timeout(seconds):
                chunk = await self._chunks.__anext__()
        except StopAsyncIteration:
            raise
        except Elapsed:
            raise UpstreamBroken(
                f"the upstream sent nothing mid-body for {seconds:g} s (read_timeout)"
            ) from None
        except (ClientError, trio.BrokenResourceError, OSError) as exc:
            raise UpstreamBroken(f"the upstream failed mid-body: {exc!r}") from exc
        return chunk

    async def aclose(self) -> None:
        if self._open:
            self._open = False
            try:
                await self._body.aclose()
            finally:
                self._exchange.finished()


class _FixedConnector:
    """Connects to one endpoint whatever host the URL names (the URL's host is what TLS
    verifies: the upstream's server_name)."""

    def __init__(self, host: str, port: int, timeout: float, network: Network) -> None:
        self._host, self._port = host, port
        self._tcp = network.connector(connect_timeout=timeout)

    async def connect(self, host: str, port: int) -> Connection:
        return await self._tcp.connect(self._host, self._port)


class Exchange(Service[ProxyRequest, UpstreamReply]):
    """Sends requests to one endpoint, over a pooled Client of its own."""

    def __init__(
        self,
        address: tuple[str, int],
        upstream: UpstreamConfig,
        nursery: trio.Nursery,
        ssl_context: ssl.SSLContext | None,
        server_name: str | None,
        stats: ProxyStats,
        network: Network,
    ) -> None:
        host, port = address
        self.key = format_address(address)
        self.stats = stats.endpoint(upstream.name, self.key)
        self._host, self._port = host, port
        self.in_flight = 0  # exchanges running (their bodies included)
        self.retired = False  # removed from its pool: close once nothing is in flight
        self.read_timeout = upstream.read_timeout
        self._nursery = nursery
        scheme = "https" if upstream.tls else "http"
        name = server_name or host
        url_name = f"[{name}]" if ":" in name else name
        self._base = f"{scheme}://{url_name}:{port}"
        fixed = _FixedConnector(host, port, upstream.connect_timeout, network)
        self._connector: Any = fixed
        if ssl_context is not None:
            self._connector = TlsConnector(ssl_context, inner=fixed, server_hostname=name)
        self.client = Client(
            connector=fixed,
            ssl_context=ssl_context,
            connect_timeout=upstream.connect_timeout,
            # No deadline of the client's own: until the head the route's govern (timeout,
            # per_try_timeout), and a streamed body has the upstream's read_timeout per chunk.
            read_timeout=math.inf,
            write_timeout=math.inf,
            pool_timeout=upstream.connect_timeout,
            max_connections_per_origin=upstream.max_connections_per_endpoint,
            max_response_bytes=1 << 62,
            parser=upstream.parser,
        )

    async def __call__(self, request: ProxyRequest) -> UpstreamReply:
        """One try, within the route's per-try timeout (connect included).

        The deadline is kept here, below this endpoint's CircuitBreaker and the Balance, so
        a try that runs out of time is an :class:`Elapsed` failure *of this endpoint*: the
        breaker counts it (a silent host gets ejected) and the balancer moves away from it.
        """
        per_try = request.route.per_try_timeout
        if per_try is None:
            return await self._try(request)
        with move_on_after(per_try):
            return await self._try(request)
        raise Elapsed(f"{self.key}: no response head within the per-try {per_try:g} s")

    async def _try(self, request: ProxyRequest) -> UpstreamReply:
        if request.upgrade:
            return await self._upgrade(request)
        request.tries += 1
        request.endpoint = self.key
        self.in_flight += 1
        started = _now()
        try:
            response = await self.client.send(
                request.method,
                self._base + request.target,
                headers=request.headers,
                body=request.body,
            )
        except Exception:
            self.finished()
            self.stats.record("error", _now() - started)
            raise
        except BaseException:  # cancelled: the per-try deadline, or the client left
            self.finished()
            self.stats.record("cancelled", _now() - started)
            raise
        self.stats.record(status_class(response.status), _now() - started)
        body = response.body
        assert isinstance(body, Body)
        data = body.buffered
        if data is not None:  # small, and all here: its connection is back in the pool
            self.finished()
            return UpstreamReply(
                response.status, response.reason, response.headers, data, self.key
            )
        return UpstreamReply(
            response.status, response.reason, response.headers, _Relay(body, self), self.key
        )

    def finished(self) -> None:
        """One exchange is over (its body too): a retired endpoint closes after its last."""
        self.in_flight -= 1
        if not self.in_flight and self.retired:
            self._nursery.start_soon(self.aclose)

    async def _upgrade(self, request: ProxyRequest) -> UpstreamReply:
        """Send an upgrade request on a connection of its own and read the answer's head;
        after a 101 the connection is the tunnel."""
        request.tries += 1
        request.endpoint = self.key
        stream = await self._connector.connect(self._host, self._port)
        try:
            lines = [f"{request.method} {request.target} HTTP/1.1"]
            lines += [f"{name}: {value}" for name, value in request.headers]
            lines += ["connection: upgrade", "upgrade: websocket"]
            await stream.send_all(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
            parser = h11.Connection(h11.CLIENT, max_incomplete_event_size=_MAX_UPGRADE_HEAD)
            parser.send(
                h11.Request(
                    method="GET",
                    target="/",
                    headers=[("host", "x"), ("connection", "upgrade"), ("upgrade", "websocket")],
                )
            )
            parser.send(h11.EndOfMessage())
            event = parser.next_event()
            while event is h11.NEED_DATA:
                parser.receive_data(bytes(await stream.receive_some(65536)))
                event = parser.next_event()
        except h11.RemoteProtocolError as exc:
            await stream.aclose()
            raise BadUpstream(f"bad answer to an upgrade: {exc}") from None
        except BaseException:
            await stream.aclose()
            raise
        if not isinstance(event, h11.InformationalResponse | h11.Response):
            await stream.aclose()
            raise BadUpstream(f"bad answer to an upgrade: {event!r}")
        headers = Headers(
            (name.decode("latin-1"), value.decode("latin-1")) for name, value in event.headers
        )
        reason = event.reason.decode("latin-1")
        if event.status_code == 101:
            leftover = bytes(parser.trailing_data[0])
            return UpstreamReply(101, reason, headers, b"", self.key, stream, leftover)
        await stream.aclose()  # refused: answer with its head, without its body
        return UpstreamReply(event.status_code, reason, headers, b"", self.key)

    async def aclose(self) -> None:
        await self.client.aclose()


def _upstream_failure(result: outcome.Outcome[UpstreamReply]) -> bool:
    """Failure accrual counts errors and 5xx answers (502, 503, 504: a sick endpoint)."""
    if isinstance(result, outcome.Error):
        return not isinstance(result.error, Overloaded | CircuitOpen)
    assert isinstance(result, outcome.Value)
    reply: UpstreamReply = result.value
    return reply.status in (502, 503, 504)


class ReadyNow(Service[ProxyRequest, UpstreamReply]):
    """One try: send to a ready endpoint now, or fail with :class:`NoEndpoint` (all
    ejected: no connect attempt, no waiting).

    It is always ready itself, so the route's reservation (LoadShed above) stops here and
    every try of Retry chooses its endpoint afresh; and the per-try deadline is kept per
    call by the Exchange, not by a Timeout layer, whose reservation would cover all the
    tries together.
    """

    def __init__(self, balance: Balance[str, ProxyRequest, UpstreamReply], name: str) -> None:
        self.balance = balance
        self.name = name

    async def __call__(self, request: ProxyRequest) -> UpstreamReply:
        # A retry goes to an endpoint this request has not failed on, while one is ready:
        # with two of three endpoints down, tries that drew the same dead one twice failed
        # requests the third would have answered (the simulator found it; see tests/sim).
        try:
            with self.balance.ready_nowait(request.failed_on) as call:
                try:
                    return await call(request)
                except Exception:
                    if request.endpoint:
                        request.failed_on.append(request.endpoint)
                    raise
        except trio.WouldBlock:
            raise NoEndpoint(f"upstream {self.name!r} has no ready endpoint") from None


_RETRYABLE = (ConnectError, ClientError, Elapsed, NoEndpoint, trio.BrokenResourceError, OSError)


@attrs.frozen
class RoutePolicy:
    """Retry connect errors, resets before the head and per-try timeouts, up to
    ``attempts`` tries, for requests whose body can be sent again."""

    attempts: int

    def retry(self, request: ProxyRequest, result: outcome.Outcome[Any], attempt: int) -> bool:
        if attempt >= self.attempts or not request.replayable:
            return False
        return isinstance(result, outcome.Error) and isinstance(result.error, _RETRYABLE)

    def clone_request(self, request: ProxyRequest) -> ProxyRequest | None:
        return request if request.replayable else None


class Upstream:
    """One ``[[upstreams]]`` pool: its endpoints, each behind a CircuitBreaker, in a Balance."""

    def __init__(
        self,
        config: UpstreamConfig,
        nursery: trio.Nursery,
        stats: ProxyStats,
        network: Network | None = None,
    ) -> None:
        self.config = config
        self.network: Network = network if network is not None else TcpNetwork()
        self.name = config.name
        self._nursery = nursery
        self._stats = stats
        self.breakers: dict[str, CircuitBreaker[ProxyRequest, UpstreamReply]] = {}
        self.balance: Balance[str, ProxyRequest, UpstreamReply] = Balance(load=PeakEwma())
        self.exchanges: dict[str, Exchange] = {}
        self.ready_now = ReadyNow(self.balance, config.name)
        self._ssl = self._ssl_context() if config.tls else None
        for endpoint in config.endpoints:
            self.add(parse_address(endpoint))

    def _ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=self.config.ca_file)
        return context  # verified: CERT_REQUIRED and check_hostname, as the default is

    def add(self, address: tuple[str, int]) -> None:
        exchange = Exchange(
            address,
            self.config,
            self._nursery,
            self._ssl,
            self.config.server_name,
            self._stats,
            self.network,
        )
        breaker = CircuitBreaker(
            exchange,
            accrual=ConsecutiveFailures(self.config.failure_threshold),
            min_penalty=self.config.min_penalty,
            max_penalty=self.config.max_penalty,
            is_failure=_upstream_failure,
        )
        self.exchanges[exchange.key] = exchange
        self.breakers[exchange.key] = breaker
        self.balance.insert(exchange.key, breaker)

    def remove(self, key: str) -> None:
        """Stop sending new requests to ``key``; requests in flight finish, then its pooled
        connections close."""
        self.balance.remove(key)
        self.breakers.pop(key, None)
        exchange = self.exchanges.pop(key, None)
        if exchange is not None:
            exchange.retired = True
            if not exchange.in_flight:
                self._nursery.start_soon(exchange.aclose)

    def gauges(self) -> tuple[int, int, int]:
        """``(ready, ejected, in_flight)`` now, for the metrics."""
        ready = sum(1 for breaker in self.breakers.values() if breaker.is_ready())
        busy = sum(exchange.in_flight for exchange in self.exchanges.values())
        return ready, len(self.breakers) - ready, busy

    async def aclose(self) -> None:
        for exchange in list(self.exchanges.values()):
            await exchange.aclose()


class Route:
    """One ``[[routes]]`` entry: its match and its stack of layers."""

    def __init__(
        self, config: RouteConfig, upstream: Upstream, budget: Budget, stats: ProxyStats
    ) -> None:
        self.config = config
        self.upstream = upstream
        self.label = config.label
        self.stats = stats.route(self.label, upstream.name)
        builder = ServiceBuilder().load_shed().concurrency_limit(config.max_concurrency)
        builder = builder.timeout(config.timeout)
        if config.retries:
            builder = builder.retry(
                RoutePolicy(config.retries + 1),
                backoff=Backoff(initial=0.025, maximum=1.0),
                budget=budget,
            )
        self.service: Service[ProxyRequest, UpstreamReply] = builder.service(upstream.ready_now)

    def matches(self, listener: str, host: str | None, path: str, method: str) -> bool:
        config = self.config
        if config.listener != listener or not path.startswith(config.path_prefix):
            return False
        if config.methods is not None and method not in config.methods:
            return False
        return config.host is None or config.host == host


def _asks_websocket(request: Request) -> bool:
    def tokens(name: str) -> set[str]:
        return {
            t.strip().lower() for value in request.headers.get_all(name) for t in value.split(",")
        }

    return "websocket" in tokens("upgrade") and "upgrade" in tokens("connection")


class _Tunnel:
    """Bytes both ways between the client's upgraded connection and the upstream's, until
    either side ends; then both close."""

    def __init__(self, upstream: Connection, leftover: bytes) -> None:
        self.upstream = upstream
        self.leftover = leftover

    async def run(self, client: UpgradedConnection) -> None:
        async with self.upstream, trio.open_nursery() as nursery:

            async def pump(source: Any, sink: Any, first: bytes = b"") -> None:
                try:
                    if first:
                        await sink.send_all(first)
                    while data := await source.receive_some(65536):
                        await sink.send_all(data)
                except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                    pass
                nursery.cancel_scope.cancel()  # one side ended: the tunnel is done

            nursery.start_soon(pump, self.upstream, client, self.leftover)
            nursery.start_soon(pump, client, self.upstream)


def _host_without_port(value: str | None) -> str | None:
    if not value:
        return None
    if value.startswith("["):
        return value[1 : value.find("]")] if "]" in value else value
    return value.rpartition(":")[0] if value.count(":") == 1 else value


def _error(status: int, message: str, headers: Sequence[tuple[str, str]] = ()) -> Response:
    return Response.text(f"{message}\n", status, headers=[*headers, ("x-proxy-error", "1")])


class Proxy:
    """Routes and pools built from one config; :meth:`handler` answers one listener."""

    def __init__(
        self,
        config: ProxyConfig,
        nursery: trio.Nursery,
        stats: ProxyStats | None = None,
        network: Network | None = None,
    ) -> None:
        self.config = config
        self.stats = stats if stats is not None else ProxyStats()
        self.budget = Budget()  # 20% of requests + 10/s over 10 s, shared by every route
        self.upstreams = {
            u.name: Upstream(u, nursery, self.stats, network) for u in config.upstreams
        }
        self.routes = [
            Route(r, self.upstreams[r.upstream], self.budget, self.stats) for r in config.routes
        ]

    def handler(self, listener: str, scheme: str) -> Any:
        async def handle(request: Request) -> Response:
            return await self.forward(listener, scheme, request)

        return handle

    def route_for(self, listener: str, request: Request) -> Route | None:
        host = _host_without_port(request.authority or request.headers.get("host"))
        for route in self.routes:
            if route.matches(listener, host, request.path, request.method):
                return route
        return None

    async def forward(self, listener: str, scheme: str, request: Request) -> Response:
        started = time.monotonic()
        rid = request_id(request.headers)
        route = self.route_for(listener, request)
        if route is None:
            response = _error(404, "no route for this request")
            self._log(request, None, response, started, rid, None)
            return response
        request.extensions["route"] = route.label  # the HTTP server's figures, per route
        proxied = await self._prepare(request, route, scheme, rid)
        proxied.upgrade = _asks_websocket(request)
        reply: UpstreamReply | None = None
        outcome = "upstream_error"
        try:
            reply = await route.service(proxied)
        except Overloaded:
            outcome = "shed"
            response = _error(503, "the route is at its concurrency limit", [("retry-after", "1")])
        except Elapsed:
            outcome = "timeout"
            response = _error(504, f"no response within the route's {route.config.timeout:g} s")
        except NoEndpoint as exc:
            outcome = "no_endpoint"
            response = _error(503, str(exc), [("retry-after", "1")])
        except (BudgetExhausted, ClientError, trio.BrokenResourceError, OSError) as exc:
            cause = exc.__cause__ if isinstance(exc, BudgetExhausted) else exc
            response = _error(502, f"the upstream failed: {type(cause).__name__}")
        else:
            outcome = status_class(reply.status)
            headers = Headers._adopt(end_to_end(reply.headers))
            if reply.tunnel is not None:
                headers.set("upgrade", reply.headers.get("upgrade") or "websocket")
                headers.set("connection", "upgrade")
                tunnel = _Tunnel(reply.tunnel, reply.leftover)
                response = Response(101, headers, upgrade=tunnel.run)
            else:
                response = Response(reply.status, headers, reply.body, reply.reason)
            response.headers.set("x-request-id", rid)
        route.stats.record(outcome, proxied.tries)
        self._log(request, route, response, started, rid, proxied)
        return response

    async def _prepare(
        self, request: Request, route: RouteConfig | Route, scheme: str, rid: str
    ) -> ProxyRequest:
        config = route.config if isinstance(route, Route) else route
        length = request.body.length
        idempotent = request.method in IDEMPOTENT or config.retry_non_idempotent
        body: bytes | Body
        if length == 0:
            body, replayable = b"", idempotent
        elif idempotent and length is not None and length <= config.max_retry_body:
            body, replayable = await request.body.read(config.max_retry_body), True
        else:
            body, replayable = request.body, False
        peer = request.peer_address
        peer_host = peer[0] if isinstance(peer, tuple) else None
        pairs = end_to_end(request.headers)
        target, host = request.target, request.headers.get("host")
        if request.authority is not None:  # absolute form: its authority wins over Host
            target = f"{request.path}?{request.query}" if request.query else request.path
            host = request.authority
            pairs = [(n, v) for n, v in pairs if n.lower() != "host"] + [("host", host)]
        headers = forwarded(pairs, peer=peer_host, scheme=scheme, host=host, rid=rid)
        if isinstance(body, Body) and length is not None:
            headers.append(("content-length", str(length)))
        return ProxyRequest(request.method, target, headers, body, replayable, config)

    def _log(
        self,
        request: Request,
        route: Route | None,
        response: Response,
        started: float,
        rid: str,
        proxied: ProxyRequest | None,
    ) -> None:
        if not self.config.access_log or not access_logger.isEnabledFor(logging.INFO):
            return
        record = {
            "request_id": rid,
            "method": request.method,
            "target": request.target,
            "route": None if route is None else route.label,
            "upstream": None if route is None else route.upstream.name,
            "endpoint": proxied.endpoint if proxied is not None else None,
            "status": response.status,
            "tries": proxied.tries if proxied is not None else 0,
            "duration_ms": round((time.monotonic() - started) * 1000, 3),
        }
        access_logger.info(json.dumps(record, separators=(",", ":")))

    async def aclose(self) -> None:
        for upstream in self.upstreams.values():
            await upstream.aclose()


__all__ = [
    "Exchange",
    "NoEndpoint",
    "Proxy",
    "ProxyRequest",
    "Route",
    "RoutePolicy",
    "Upstream",
    "UpstreamBroken",
    "UpstreamReply",
]
