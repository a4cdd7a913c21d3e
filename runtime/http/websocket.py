"""WebSocket (RFC 6455) on the HTTP server's port, on wsproto's frame layer.

The HTTP server parses the upgrade request; :func:`websocket_endpoint` checks the handshake
(version 13, a well-formed key, the origin, a subprotocol) and answers ``101`` with the
connection hand-over, or an HTTP error: ``426`` with ``Sec-WebSocket-Version: 13`` for another
version or a plain request, ``403`` for an origin not allowed, ``400`` for a bad key. After the
``101`` the handler gets a :class:`WebSocket` bound to the connection's own task.

wsproto does the framing and its protocol checks (an unmasked client frame or a bad opcode is
closed with 1002, invalid UTF-8 in a text message with 1007), with one shortcut of ours: a
whole, unfragmented, well-formed text or binary frame (the usual message) is cut out of the
stream and unmasked here, at a frame boundary, and every other frame (fragments, control
frames, anything odd) goes whole to wsproto, which thus always starts at a frame boundary and
keeps the protocol state. Data messages are framed here too (RFC 6455 section 5.2 is a few
bytes of header). This module also adds what wsproto leaves to its user: a message-size
limit (1009), reassembly of fragments within it, a ping
keepalive that closes a dead peer, a send deadline for a peer that stops reading, and a
closing handshake with a deadline.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import os
import ssl
import struct
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import attrs
import h11
import trio
from wsproto.connection import Connection as _WsConnection
from wsproto.connection import ConnectionState, ConnectionType
from wsproto.events import (
    CloseConnection,
    Message,
    Ping,
    Pong,
    TextMessage,
)

from ..net import TcpConnector, TlsConnector, client_ssl_context
from ..net.abc import Connector
from ..time import Deadline, TimerWheel, move_on_after, sleep, timeout
from ._types import Request, Response
from ._upgrade import UpgradedConnection

logger = logging.getLogger("runtime.http.websocket")

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_RECEIVE_SIZE = 65536

_FED = object()  # _take: bytes went to wsproto; drain its events
_MORE = object()  # _take: the next frame is not complete yet
_LEN16 = struct.Struct("!BBH")
_LEN64 = struct.Struct("!BBQ")


def _mask(data: bytes | bytearray, key: bytes | bytearray) -> bytes:
    """``data`` XOR the repeated 4-byte ``key`` (masking and unmasking are the same)."""
    n = len(data)
    if not n:
        return b""
    stream = (bytes(key) * ((n + 3) >> 2))[:n]
    return (int.from_bytes(data, "little") ^ int.from_bytes(stream, "little")).to_bytes(
        n, "little"
    )


def _frame(opcode: int, payload: bytes, masked: bool) -> bytes:
    """One final frame (RFC 6455 section 5.2); a client's is masked with a fresh key."""
    n = len(payload)
    bit = 0x80 if masked else 0
    if n < 126:
        head = bytes((0x80 | opcode, bit | n))
    elif n < 65536:
        head = _LEN16.pack(0x80 | opcode, bit | 126, n)
    else:
        head = _LEN64.pack(0x80 | opcode, bit | 127, n)
    if masked:
        key = os.urandom(4)
        return head + key + _mask(payload, key)
    return head + payload


class _Invalid(Exception):
    """A frame we cut out ourselves breaks the protocol (``code``: the close code)."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


_pos = attrs.validators.gt(0.0)
_pos_int = attrs.validators.and_(attrs.validators.instance_of(int), attrs.validators.gt(0))


@attrs.frozen
class WebSocketConfig:
    """Limits and checks of a WebSocket endpoint.

    Attributes:
        max_message_size: Bytes of one message, fragments reassembled. Breach: close 1009.
            Default 1 MiB.
        ping_interval: Seconds between the server's pings. Default 20 s.
        ping_timeout: Seconds a ping may wait for its pong; then the peer is taken for dead
            and the connection closed (1011). Default 20 s.
        close_timeout: Seconds the closing handshake may take. Default 10 s.
        send_timeout: Seconds a send may wait for a peer that stops reading; then the
            connection is closed. Default 30 s.
        allowed_origins: ``Origin`` values accepted (exact match); None accepts any, including
            none. Others get 403.
        subprotocols: The subprotocols this endpoint speaks, in order of preference; the first
            one the client offers is chosen.
    """

    max_message_size: int = attrs.field(default=1 << 20, validator=_pos_int)
    ping_interval: float = attrs.field(default=20.0, validator=_pos)
    ping_timeout: float = attrs.field(default=20.0, validator=_pos)
    close_timeout: float = attrs.field(default=10.0, validator=_pos)
    send_timeout: float = attrs.field(default=30.0, validator=_pos)
    allowed_origins: Sequence[str] | None = None
    subprotocols: Sequence[str] = ()


class ConnectionClosed(Exception):
    """The WebSocket is closed; ``code`` and ``reason`` say why (1006: no close frame)."""

    def __init__(self, code: int, reason: str = "") -> None:
        super().__init__(f"WebSocket closed: {code} {reason}".rstrip())
        self.code = code
        self.reason = reason


class WebSocket:
    """One WebSocket connection: ``receive()``, ``send()``, ``aclose()``, ``async for``.

    ``receive`` and ``send`` may run in different tasks (a reader and a writer); sends are
    serialized. A send waits while the peer is slow to read (backpressure), up to
    ``send_timeout``.

    Attributes:
        request: The upgrade request (server side), for its headers and path parameters.
        subprotocol: The negotiated subprotocol, or None.
        close_code: Set once the connection is closed (1006 if it ended without a close frame).
    """

    def __init__(
        self,
        transport: trio.abc.Stream,
        *,
        client: bool = False,
        config: WebSocketConfig | None = None,
        request: Request | None = None,
        subprotocol: str | None = None,
        buffered: bytes = b"",
    ) -> None:
        self._transport = transport
        self._ws = _WsConnection(ConnectionType.CLIENT if client else ConnectionType.SERVER)
        self._client = client
        self.config = config or WebSocketConfig()
        self.request = request
        self.subprotocol = subprotocol
        self.close_code: int | None = None
        self.close_reason = ""
        self._send_lock = trio.StrictFIFOLock()
        self._receive_lock = trio.StrictFIFOLock()
        self._parts: list[str | bytes] = []
        self._size = 0
        self._pong = trio.Event()
        self._closed_event = trio.Event()
        # Received bytes not yet cut into frames; _owed: bytes of the current frame still
        # due to wsproto; _fragmenting: a fragmented message is under way (wsproto's);
        # _direct: closing, so every byte goes straight to wsproto.
        self._inbuf = bytearray(buffered)
        self._owed = 0
        self._fragmenting = False
        self._direct = False
        self._closing: tuple[int, str] | None = None
        close = getattr(transport, "close", None)
        self._close_now: Callable[[], object] | None = close if callable(close) else None
        self._wheel = TimerWheel.current()
        self._send_deadline = Deadline(self._send_timer_fired, self._wheel)
        self._sending = False
        self._stalled = False

    # -- sending --------------------------------------------------------------------------

    async def send(self, message: str | bytes) -> None:
        """Send a text (``str``) or binary (``bytes``) message.

        Cancellation: a cancelled send closes the connection (a frame may be half sent).

        Raises:
            ConnectionClosed: the connection is closed (or closes for a stalled send).
        """
        if self.close_code is not None:
            raise ConnectionClosed(self.close_code, self.close_reason)
        if self._ws.state is not ConnectionState.OPEN:  # our close frame is out, or the peer's in
            raise ConnectionClosed(*(self._closing or (1006, "the connection is closing")))
        if isinstance(message, str):
            frame = _frame(1, message.encode("utf-8"), self._client)
        else:
            frame = _frame(2, bytes(message), self._client)
        await self._write(frame)

    async def _write(self, data: bytes) -> None:
        """Send framed bytes within ``send_timeout``.

        Cancellation: a send cut short may have sent part of a frame, after which nothing
        else can be framed: the connection is marked closed (1006) and its transport closed,
        then the cancel goes on.
        """
        if not data:
            return
        async with self._send_lock:
            if self._close_now is not None:
                await self._write_timed(data)
            else:  # a transport without a synchronous close (a test's stream): a scope
                await self._write_scoped(data)

    async def _write_timed(self, data: bytes) -> None:
        # The hot path: no scope per send. One Deadline per WebSocket, moved by a store;
        # if a send is still running at the deadline, the transport is closed under it,
        # which ends the send.
        self._send_deadline.set(self._wheel.now() + self.config.send_timeout)
        self._sending = True
        try:
            await self._transport.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            if self._stalled:
                raise ConnectionClosed(1006, "send stalled (send_timeout)") from None
            self._gone(1006, "the connection broke")
            raise ConnectionClosed(1006, "the connection broke") from None
        except trio.Cancelled:
            self._gone(1006, "a send was cancelled")
            assert self._close_now is not None
            self._close_now()
            raise
        finally:
            self._sending = False

    def _send_timer_fired(self) -> None:
        if not self._sending:
            return
        self._stalled = True
        self._gone(1006, f"send stalled for {self.config.send_timeout:g}s")
        assert self._close_now is not None
        self._close_now()

    async def _write_scoped(self, data: bytes) -> None:
        with move_on_after(self.config.send_timeout) as scope:
            try:
                await self._transport.send_all(data)
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                self._gone(1006, "the connection broke")
                raise ConnectionClosed(1006, "the connection broke") from None
            except trio.Cancelled:
                if not scope.expired:  # not our send_timeout: someone cancelled us
                    self._gone(1006, "a send was cancelled")
                    with trio.CancelScope(shield=True), move_on_after(1):
                        await self._transport.aclose()
                raise
        if scope.cancelled_caught:
            self._gone(1006, f"send stalled for {self.config.send_timeout:g}s")
            await self._transport.aclose()
            raise ConnectionClosed(1006, "send stalled (send_timeout)")

    # -- receiving ------------------------------------------------------------------------

    async def receive(self) -> str | bytes:
        """The next message, fragments reassembled (``str`` for text, ``bytes`` for binary).

        Pings are answered on the way. A message over ``max_message_size`` closes with 1009.

        Raises:
            ConnectionClosed: the peer closed (its code), or the connection ended.
        """
        async with self._receive_lock:
            while True:
                message = await self._next_message()
                if message is not None:
                    return message

    def __aiter__(self) -> AsyncIterator[str | bytes]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[str | bytes]:
        try:
            while True:
                async with self._receive_lock:  # held per message, not across the yield
                    message = await self._next_message()
                    while message is None:
                        message = await self._next_message()
                yield message
        except ConnectionClosed:
            return

    async def _next_message(self) -> str | bytes | None:
        for event in self._ws.events():
            if isinstance(event, Message):
                self._size += len(event.data)
                if self._size > self.config.max_message_size:
                    await self._fail(1009, f"message over {self.config.max_message_size} bytes")
                self._parts.append(event.data)
                if event.message_finished:
                    parts, self._parts, self._size = self._parts, [], 0
                    if isinstance(event, TextMessage):
                        return "".join(parts)  # type: ignore[arg-type]
                    return b"".join(parts)  # type: ignore[arg-type]
            elif isinstance(event, Ping):
                await self._write(self._ws.send(event.response()))
            elif isinstance(event, Pong):
                self._pong.set()
            elif isinstance(event, CloseConnection):
                state = self._ws.state
                try:
                    if state is ConnectionState.REMOTE_CLOSING:
                        await self._write(self._ws.send(event.response()))
                    elif state is ConnectionState.OPEN:
                        # wsproto found a protocol error (1002, 1007): tell the peer why
                        await self._write(self._ws.send(CloseConnection(event.code, event.reason)))
                except ConnectionClosed:
                    pass
                self._gone(event.code, event.reason or "")
                await self._transport.aclose()
                raise ConnectionClosed(event.code, event.reason or "")
        if self.close_code is not None:
            raise ConnectionClosed(self.close_code, self.close_reason)
        if not self._direct:
            try:
                got = self._take()
            except _Invalid as exc:
                await self._fail(exc.code, exc.reason)
            if got is _FED:
                return None
            if got is not _MORE:
                return got  # type: ignore[return-value]
        try:
            data = await self._transport.receive_some(_RECEIVE_SIZE)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            data = b""
        if not data:
            self._gone(1006, "the connection ended without a close frame")
            raise ConnectionClosed(1006, "the connection ended without a close frame")
        if self._direct:
            self._ws.receive_data(bytes(data))
        else:
            self._inbuf += data
        return None

    def _take(self) -> str | bytes | object:
        """Cut the next frame out of ``_inbuf``: a whole plain data frame becomes the message
        here; any other frame goes to wsproto (``_FED``). ``_MORE``: it is not all here yet.

        Raises:
            _Invalid: a text frame cut out here is not UTF-8 (1007).
        """
        buf = self._inbuf
        if self._owed:
            n = min(self._owed, len(buf))
            if not n:
                return _MORE
            self._ws.receive_data(bytes(buf[:n]))
            del buf[:n]
            self._owed -= n
            return _FED
        have = len(buf)
        if have < 2:
            return _MORE
        b0 = buf[0]
        b1 = buf[1]
        length = b1 & 0x7F
        head = 2
        minimal = True
        if length == 126:
            if have < 4:
                return _MORE
            length = (buf[2] << 8) | buf[3]
            head = 4
            minimal = length >= 126
        elif length == 127:
            if have < 10:
                return _MORE
            length = int.from_bytes(buf[2:10], "big")
            head = 10
            minimal = 65536 <= length < (1 << 63)
        masked = b1 & 0x80
        if masked:
            head += 4
        opcode = b0 & 0x0F
        if (
            b0 & 0xF0 == 0x80  # final, no reserved bits
            and (opcode == 1 or opcode == 2)
            and not self._fragmenting
            and minimal
            and bool(masked) is not self._client  # clients mask, servers do not
            and length <= self.config.max_message_size  # else wsproto's, for the 1009
        ):
            end = head + length
            if have < end:
                return _MORE
            payload = bytes(buf[head:end])
            if masked:
                payload = _mask(payload, buf[head - 4 : head])
            del buf[:end]
            if opcode == 2:
                return payload
            try:
                return payload.decode("utf-8")
            except UnicodeDecodeError:
                raise _Invalid(1007, "invalid UTF-8 in a text message") from None
        if opcode == 1 or opcode == 2:
            self._fragmenting = not b0 & 0x80
        elif opcode == 0 and b0 & 0x80:
            self._fragmenting = False
        self._owed = head + length
        return self._take()

    def _go_direct(self) -> None:
        """From now on (closing) every byte goes to wsproto; what is buffered goes first."""
        if not self._direct:
            self._direct = True
            if self._inbuf:
                data = bytes(self._inbuf)
                self._inbuf.clear()
                self._ws.receive_data(data)

    async def _fail(self, code: int, reason: str) -> None:
        await self._close(code, reason, reading=True)  # the caller holds the receive lock
        raise ConnectionClosed(code, reason)

    # -- closing --------------------------------------------------------------------------

    async def aclose(self, code: int = 1000, reason: str = "") -> None:
        """Close with ``code``: send the close frame, wait for the peer's (within
        ``close_timeout``), close the transport. Idempotent.

        If another task is in :meth:`receive`, that task reads the peer's answer (and gets
        :class:`ConnectionClosed`); this one waits for it.
        """
        if self._receive_lock.locked():
            await self._close(code, reason, reading=False)
        else:
            async with self._receive_lock:
                await self._close(code, reason, reading=True)

    async def _close(self, code: int, reason: str, *, reading: bool) -> None:
        if self.close_code is not None:
            return
        if self._ws.state is ConnectionState.OPEN:
            self._closing = (code, reason)
            try:
                await self._write(self._ws.send(CloseConnection(code=code, reason=reason)))
            except ConnectionClosed:
                pass
            else:
                with move_on_after(self.config.close_timeout):
                    if not reading:
                        await self._closed_event.wait()
                    if reading:
                        self._go_direct()
                        for _event in self._ws.events():
                            pass
                    while reading and not self._closed_by_peer():
                        try:
                            data = bytes(await self._transport.receive_some(_RECEIVE_SIZE))
                        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                            break
                        if not data:
                            break
                        self._ws.receive_data(data)
                        for _event in self._ws.events():
                            pass
        self._gone(code, reason)
        await self._transport.aclose()

    def _closed_by_peer(self) -> bool:
        return self._ws.state is ConnectionState.CLOSED

    def _gone(self, code: int, reason: str) -> None:
        if self.close_code is None:
            self.close_code = code
            self.close_reason = reason
            self._closed_event.set()
            self._send_deadline.close()  # the wheel lets go of this WebSocket

    async def _keepalive(self) -> None:  # started by the server's hand-over and ws_connect
        """Ping every ``ping_interval``; a pong not back within ``ping_timeout`` closes."""
        config = self.config
        while self.close_code is None:
            await sleep(config.ping_interval)
            self._pong = trio.Event()
            try:
                await self._write(self._ws.send(Ping(payload=b"runtime")))
            except ConnectionClosed:
                return
            with move_on_after(config.ping_timeout):
                await self._pong.wait()
            if not self._pong.is_set() and self.close_code is None:
                logger.info("WebSocket peer sent no pong within %gs; closing", config.ping_timeout)
                self._gone(1011, "ping timeout")
                await self._transport.aclose()
                return


WebSocketHandler = Callable[[WebSocket], Awaitable[None]]


def _accept_key(key: str) -> str:
    return base64.b64encode(hashlib.sha1(key.encode("ascii") + _GUID).digest()).decode()


def _tokens(value: str | None) -> list[str]:
    return [t.strip().lower() for t in (value or "").split(",") if t.strip()]


def websocket_endpoint(
    handler: WebSocketHandler, config: WebSocketConfig | None = None
) -> Callable[[Request], Awaitable[Response]]:
    """A request handler that upgrades to WebSocket and runs ``handler`` on the connection.

    The handler owns the WebSocket until it returns; then the server closes it (1000) if the
    handler did not. An exception in the handler closes with 1011 and is logged.
    """
    cfg = config or WebSocketConfig()

    async def endpoint(request: Request) -> Response:
        headers = request.headers
        upgrade = "websocket" in _tokens(headers.get("upgrade"))
        if not upgrade or "upgrade" not in _tokens(headers.get("connection")):
            return Response.text(
                "this is a WebSocket endpoint: connect with Upgrade: websocket\n",
                426,
                headers=[("upgrade", "websocket"), ("connection", "upgrade")],
            )
        if request.method != "GET" or request.http_version != "1.1":
            return Response.text("a WebSocket handshake is a GET over HTTP/1.1\n", 400)
        if headers.get("sec-websocket-version") != "13":
            return Response.text(
                "unsupported WebSocket version: this server speaks 13\n",
                426,
                headers=[("sec-websocket-version", "13")],
            )
        key = headers.get("sec-websocket-key") or ""
        try:
            valid_key = len(base64.b64decode(key, validate=True)) == 16
        except (binascii.Error, ValueError):
            valid_key = False
        if not valid_key:
            return Response.text("Sec-WebSocket-Key must be 16 bytes in base64\n", 400)
        origin = headers.get("origin")
        if cfg.allowed_origins is not None and origin not in cfg.allowed_origins:
            return Response.text(f"origin {origin!r} is not allowed\n", 403)
        offered = [
            p.strip() for p in ",".join(headers.get_all("sec-websocket-protocol")).split(",")
        ]
        chosen = next((p for p in cfg.subprotocols if p in offered), None)
        reply = [("sec-websocket-accept", _accept_key(key))]
        if chosen is not None:
            reply.append(("sec-websocket-protocol", chosen))

        async def take_over(connection: UpgradedConnection) -> None:
            ws = WebSocket(connection, config=cfg, request=request, subprotocol=chosen)
            await _run(ws, handler, connection)

        return Response.switching_protocols("websocket", take_over, headers=reply)

    return endpoint


async def _run(ws: WebSocket, handler: WebSocketHandler, connection: UpgradedConnection) -> None:
    """Run ``handler`` with the keepalive beside it; a drain closes with 1001."""
    async with trio.open_nursery() as nursery:
        nursery.start_soon(ws._keepalive)

        async def on_drain() -> None:
            await connection.draining.cancelled()
            await ws.aclose(1001, "server shutting down")

        nursery.start_soon(on_drain)
        try:
            await handler(ws)
        except ConnectionClosed:
            pass
        except Exception as exc:
            logger.error("WebSocket handler failed; closing with 1011", exc_info=exc)
            await ws.aclose(1011, "internal error")
        await ws.aclose(1000)
        nursery.cancel_scope.cancel()


class HandshakeError(Exception):
    """The server refused the WebSocket handshake (``status`` is its HTTP answer, if any)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


_MAX_HANDSHAKE_BYTES = 16 * 1024


@asynccontextmanager
async def ws_connect(
    url: str,
    *,
    connector: Connector[Any] | None = None,
    ssl_context: ssl.SSLContext | None = None,
    subprotocols: Sequence[str] = (),
    headers: Sequence[tuple[str, str]] = (),
    config: WebSocketConfig | None = None,
    open_timeout: float = 10.0,
) -> AsyncIterator[WebSocket]:
    """Open a WebSocket to ``url`` (``ws://`` or ``wss://``), the same :class:`WebSocket` as
    the server side; closed (1000) when the block ends.

    Example::

        async with ws_connect("ws://127.0.0.1:9000/echo") as ws:
            await ws.send("hello")
            print(await ws.receive())

    Args:
        url: Where to connect.
        connector: How to connect (default a :class:`~runtime.net.TcpConnector`, wrapped in
            TLS for ``wss://``; a test passes an in-memory one).
        ssl_context: The client context for ``wss://`` (default: verified, system CAs).
        subprotocols: Subprotocols to offer.
        headers: More request headers (e.g. ``Origin``, ``Authorization``).
        config: Limits (the same :class:`WebSocketConfig` as the server's).
        open_timeout: Seconds for the connect and the handshake together; then
            :class:`~runtime.time.Elapsed` (a ``TimeoutError``).

    Raises:
        HandshakeError: the server answered something other than a valid 101.
        ValueError: ``url`` is not a ws:// or wss:// URL.
    """
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        raise ValueError(f"not a WebSocket URL: {url!r} (ws://host[:port]/path or wss://...)")
    secure = parts.scheme == "wss"
    host = parts.hostname
    port = parts.port or (443 if secure else 80)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    if connector is None:
        connector = TcpConnector()
        if secure:
            connector = TlsConnector(ssl_context or client_ssl_context(), inner=connector)
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [
        f"GET {target} HTTP/1.1",
        f"Host: {parts.netloc.rpartition('@')[2]}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
    ]
    if subprotocols:
        lines.append(f"Sec-WebSocket-Protocol: {', '.join(subprotocols)}")
    lines += [f"{name}: {value}" for name, value in headers]
    with timeout(open_timeout):
        stream = await connector.connect(host, port)
        try:
            await stream.send_all(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
            parser = h11.Connection(h11.CLIENT, max_incomplete_event_size=_MAX_HANDSHAKE_BYTES)
            # h11 reads the answer; it is told of the request (the bytes sent are ours).
            parser.send(
                h11.Request(
                    method="GET",
                    target=target,
                    headers=[("host", host), ("upgrade", "websocket"), ("connection", "upgrade")],
                )
            )
            parser.send(h11.EndOfMessage())
            while True:
                event = parser.next_event()
                if event is h11.NEED_DATA:
                    parser.receive_data(bytes(await stream.receive_some(_RECEIVE_SIZE)))
                    continue
                break
            if not isinstance(event, h11.InformationalResponse) or event.status_code != 101:
                status = getattr(event, "status_code", None)
                raise HandshakeError(f"the server answered {status}, not 101", status)
            got = {
                name.decode("latin-1"): value.decode("latin-1") for name, value in event.headers
            }
            if got.get("sec-websocket-accept") != _accept_key(key):
                raise HandshakeError("the server's Sec-WebSocket-Accept is wrong", 101)
            chosen = got.get("sec-websocket-protocol")
            if chosen is not None and chosen not in subprotocols:
                raise HandshakeError(f"the server chose a subprotocol not offered: {chosen}", 101)
        except BaseException:
            await stream.aclose()
            raise
    ws = WebSocket(
        stream,
        client=True,
        config=config,
        subprotocol=chosen,
        buffered=bytes(parser.trailing_data[0]),
    )
    async with trio.open_nursery() as nursery:
        nursery.start_soon(ws._keepalive)
        try:
            yield ws
        finally:
            with trio.CancelScope(shield=True), move_on_after(ws.config.close_timeout + 1):
                await ws.aclose(1000)
            nursery.cancel_scope.cancel()


__all__ = [
    "HandshakeError",
    "ws_connect",
    "ConnectionClosed",
    "WebSocket",
    "WebSocketConfig",
    "WebSocketHandler",
    "websocket_endpoint",
]
