"""The optional fast request parser: httptools (llhttp, in C) behind h11's interface.

The server reads requests through the few parts of ``h11.Connection`` it uses:
``receive_data``, ``next_event``, ``trailing_data``, ``they_are_waiting_for_100_continue`` and
``their_state``. :class:`HttptoolsParser` offers the same on top of
``httptools.HttpRequestParser``, so every check of the server (sizes, deadlines, framing,
smuggling) runs unchanged on either parser.

httptools is push-based and can't pause: it parses everything it is fed, pipelined requests
included. So its callbacks queue events, and :meth:`HttptoolsParser.next_event` hands them out
one at a time, as h11 does. A parse error is queued too, behind the events of the requests
before it: three pipelined requests with a bad second one still give 200, then 400. What the
parser is fed is bounded by what the server reads, and the server reads only when it needs to.

llhttp refuses most of what the server must refuse (obs-fold, whitespace before the colon,
NUL/CR/LF in values, CL+TE, bad or overflowing Content-Length and chunk sizes); the server's
own checks cover the rest (``HTTP/2.0``, a second Transfer-Encoding line, Transfer-Encoding on
HTTP/1.0, Host, the header-byte and header-count limits).
"""

from __future__ import annotations

from collections import deque
from typing import Any

import h11

try:
    import httptools
except ImportError:  # pragma: no cover - depends on the environment
    httptools = None  # type: ignore[assignment]

AVAILABLE = httptools is not None

_END = h11.EndOfMessage()
_CLOSED = h11.ConnectionClosed()


class HeadEvent:
    """A request head, with the attributes of ``h11.Request`` that the server reads."""

    __slots__ = ("headers", "http_version", "method", "target")

    def __init__(
        self, method: bytes, target: bytes, http_version: bytes, headers: list[tuple[bytes, bytes]]
    ) -> None:
        self.method = method
        self.target = target
        self.http_version = http_version
        self.headers = headers


class _Error:
    __slots__ = ("message", "status")

    def __init__(self, message: str, status: int) -> None:
        self.message = message
        self.status = status


OBS_FOLD = "obs-fold (a header line starting with whitespace) is not allowed"
SMUGGLING = "both Content-Length and Transfer-Encoding (request smuggling?)"

# llhttp's words for what the server's own checks say on the h11 path: the same words on both.
_OUR_WORDS = {
    "unexpected whitespace after header value": OBS_FOLD,
    "transfer-encoding can't be present with content-length": SMUGGLING,
    "content-length can't be present with transfer-encoding": SMUGGLING,
}


def _words_for(message: str) -> str:
    ours = _OUR_WORDS.get(message.lower())
    return ours if ours is not None else f"bad request: {message}"


def _status_for(message: str) -> int:
    # An unknown transfer coding is unsupported framing (501); any other error (CL+TE, a
    # chunked that is not the last coding among them) is a malformed request (400).
    lowered = message.lower()
    if "pri/upgrade" in lowered:
        return 505  # the HTTP/2 connection preface (PRI * HTTP/2.0): refused as h11's path does
    if "request has invalid `transfer-encoding`" in lowered:
        return 501  # a coding other than chunked (llhttp says "header value" when malformed)
    return 400


class HttptoolsParser:
    """Requests parsed by httptools, handed out like h11's events (see the module doc)."""

    __slots__ = (
        "_after",
        "_body_seen",
        "_closed",
        "_dead",
        "_events",
        "_expect_continue",
        "_head_done",
        "_headers",
        "_in_message",
        "_max_head",
        "_parser",
        "_progress",
        "_stalled",
        "_url",
        "head_fed",
        "upgraded",
    )

    def __init__(self, max_head_bytes: int) -> None:
        if httptools is None:  # pragma: no cover - HttpConfig(parser="httptools") checks
            raise RuntimeError("httptools is not installed: pip install httptools")
        self._parser: Any = httptools.HttpRequestParser(self)
        self._events: deque[Any] = deque()
        self._after = b""
        self._closed = False
        self._dead = False
        self.upgraded = False
        self._in_message = False
        self._head_done = False
        self._url = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._max_head = max_head_bytes
        self.head_fed = 0
        self._expect_continue = False
        self._body_seen = False
        # Inside a body, the bytes fed since a chunk header, data or a chunk's end: a
        # chunk-size line (and its extensions) is bounded like a head line.
        self._progress = False
        self._stalled = 0

    # -- httptools' callbacks -------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._in_message = True
        self._head_done = False
        self._url = b""
        self._headers = []
        self._stalled = 0

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        # llhttp keeps the value's trailing whitespace; RFC 9110 says it is not part of it.
        self._headers.append((name.lower(), value.strip(b" \t")))

    def on_headers_complete(self) -> None:
        self._head_done = True
        self.head_fed = 0
        parser = self._parser
        version = parser.get_http_version().encode("ascii")
        self._events.append(HeadEvent(parser.get_method(), self._url, version, self._headers))

    def on_body(self, body: bytes) -> None:
        self._progress = True
        self._events.append(h11.Data(data=bytes(body)))

    def on_chunk_header(self) -> None:
        self._progress = True

    def on_chunk_complete(self) -> None:
        self._progress = True

    def on_message_complete(self) -> None:
        self._in_message = False
        self._events.append(_END)

    # -- what the server calls ------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Feed bytes (``b""``: the client closed its end)."""
        if not data:
            self._closed = True
            return
        if self._dead:
            if self.upgraded:
                self._after += data
            return  # after an error: nothing more is parsed
        if not self._head_done or not self._in_message:
            self.head_fed += len(data)
        self._progress = False
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            self._dead = self.upgraded = True
            self._after = data[exc.args[0] :]
        except httptools.HttpParserError as exc:
            self._dead = True
            message = str(exc) or type(exc).__name__
            self._events.append(_Error(_words_for(message), _status_for(message)))
        if self._in_message and not self._head_done and self.head_fed > self._max_head:
            self._dead = True
            self._events.append(_Error("request head too large", 431))
        elif self._in_message and self._head_done and not self._dead:
            self._stalled = 0 if self._progress else self._stalled + len(data)
            if self._stalled > self._max_head:
                self._dead = True
                self._events.append(_Error("a chunk-size line or the trailers are too long", 400))

    def next_event(self) -> Any:
        """The next event, ``h11.NEED_DATA``, or ``h11.ConnectionClosed``.

        Raises:
            h11.RemoteProtocolError: a malformed request (``error_status_hint`` says which
                status to answer).
        """
        events = self._events
        if events:
            event = events.popleft()
            cls = type(event)
            if cls is _Error:
                raise h11.RemoteProtocolError(event.message, event.status)
            if cls is HeadEvent:
                self._body_seen = False
                self._expect_continue = event.http_version == b"1.1" and any(
                    name == b"expect" and value.lower() == b"100-continue"
                    for name, value in event.headers
                )
            elif cls is h11.Data:
                self._body_seen = True
            return event
        if self._closed:
            if self._in_message and not self.upgraded:
                raise h11.RemoteProtocolError("the client closed the connection inside a request")
            return _CLOSED
        return h11.NEED_DATA

    @property
    def they_are_waiting_for_100_continue(self) -> bool:
        return self._expect_continue and not self._body_seen

    @property
    def their_state(self) -> Any:
        """``h11.IDLE`` between requests with nothing buffered (what the server asks)."""
        if self._in_message or self._events:
            return h11.SEND_BODY
        return h11.IDLE

    @property
    def trailing_data(self) -> tuple[bytes, bool]:
        """The bytes after an upgrade request, and whether the client closed."""
        return self._after, self._closed

    def skip_end(self) -> None:
        """Drop the end of a request without a body (the server knows it from the head)."""
        events = self._events
        if events and events[0] is _END:
            events.popleft()

    def has_pending(self) -> bool:
        """Whether a next request has started arriving already (pipelined)."""
        return bool(self._events) or self._in_message or self._closed

    def start_next_cycle(self) -> None:
        """The request is answered; the parser goes on with what it has queued, and with
        the next request of a busy connection."""
        self._expect_continue = False

    def close(self) -> None:
        """Let go of httptools' parser, which holds this object's callbacks: dropped without
        this, the pair is a reference cycle that only the garbage collector frees."""
        self._parser = None
        self._dead = True


__all__ = ["AVAILABLE", "OBS_FOLD", "SMUGGLING", "HeadEvent", "HttptoolsParser"]
