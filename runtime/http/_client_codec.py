"""The client's wire codecs: what a pooled connection writes and how it reads the answer.

:class:`~runtime.http.Client` talks to a codec through a few calls, the same for both:

* ``head(method, target, pairs)``, ``data(chunk)`` and ``end()`` give the bytes to write;
  the framing (``Content-Length`` or chunked) is the one the head's fields declare, and a body
  that does not match it is a ``ValueError`` before anything wrong is written.
* ``receive_data(bytes)`` feeds what arrived (``b""``: the server closed its end), and
  ``next_event()`` hands out :class:`ResponseHead`, body ``bytes``, :data:`END`, :data:`CLOSED`
  or :data:`NEED_DATA`, one at a time. Informational answers (100, 103) are skipped. A
  malformed or oversized answer raises :class:`BadResponse`.
* ``complete()`` says whether the whole response is parsed already, ``reusable()`` whether the
  connection may carry another request, and ``start_next_cycle()`` readies it for one.

:class:`H11Codec` is h11's state machine, the default. :class:`HttptoolsCodec` writes the
request itself (names and values checked, as the server checks its responses) and parses the
answer with httptools (llhttp, in C): the same answers at a fraction of the cost, which a
proxy pays on every request. What llhttp can't know, the codec does: a response to ``HEAD``
has no body whatever its ``Content-Length`` says, so the message ends at its head, and any
byte after it makes the connection unfit for reuse; a ``Transfer-Encoding`` other than a
lone ``chunked``, or one beside a ``Content-Length``, is refused as h11 refuses it.
"""

from __future__ import annotations

import re
from collections import deque
from typing import Any

import h11

try:
    import httptools
except ImportError:  # pragma: no cover - depends on the environment
    httptools = None  # type: ignore[assignment]

HTTPTOOLS = httptools is not None

NEED_DATA: Any = h11.NEED_DATA
END: Any = h11.EndOfMessage()
CLOSED: Any = h11.ConnectionClosed()


class BadResponse(Exception):
    """The server's answer is not well-formed HTTP/1.1, or exceeds a limit (the message says)."""


class ResponseHead:
    """A final response's head: status, reason and ``(name, value)`` pairs, names lowercase."""

    __slots__ = ("headers", "reason", "status_code")

    def __init__(self, status_code: int, reason: bytes, headers: list[tuple[bytes, bytes]]):
        self.status_code = status_code
        self.reason = reason
        self.headers = headers


def _head_too_large(size: int, limit: int) -> BadResponse:
    return BadResponse(
        f"the response head has {size} bytes, more than max_header_bytes ({limit}); "
        "raise the limit if this server is trusted"
    )


class H11Codec:
    """h11's client state machine behind the codec calls (see the module doc)."""

    __slots__ = ("_conn", "_fed", "_limit")

    def __init__(self, max_header_bytes: int) -> None:
        self._conn = h11.Connection(h11.CLIENT, max_incomplete_event_size=max_header_bytes)
        self._limit = max_header_bytes
        self._fed = 0  # bytes fed since the current response head began

    def _send(self, event: Any) -> bytes:
        try:
            return self._conn.send(event) or b""
        except h11.LocalProtocolError as exc:
            raise ValueError(f"cannot send this request: {exc}") from exc

    def head(self, method: str, target: str, pairs: list[tuple[str, str]]) -> bytes:
        self._fed = 0
        try:
            raw = [(n.encode("latin-1"), v.encode("latin-1")) for n, v in pairs]
            event = h11.Request(method=method, target=target, headers=raw)
        except (h11.LocalProtocolError, UnicodeEncodeError) as exc:
            raise ValueError(f"cannot send this request: {exc}") from exc
        return self._send(event)

    def data(self, chunk: bytes) -> bytes:
        return self._send(h11.Data(data=chunk))

    def end(self) -> bytes:
        return self._send(END)

    def receive_data(self, data: bytes) -> None:
        self._fed += len(data)
        self._conn.receive_data(data)

    def next_event(self) -> Any:
        conn = self._conn
        while True:
            try:
                event: Any = conn.next_event()
            except h11.RemoteProtocolError as exc:
                raise BadResponse(f"the server sent a bad response: {exc}") from exc
            cls = type(event)
            if cls is h11.Data:
                if event.data:
                    return bytes(event.data)
                continue
            if cls is h11.Response or cls is h11.InformationalResponse:
                # h11 checks max_incomplete_event_size only while a head is incomplete, so a
                # longer head that arrives in one read passes it (h11#182): count ourselves.
                trailing = len(conn.trailing_data[0])
                size, self._fed = self._fed - trailing, trailing
                if size > self._limit:
                    raise _head_too_large(size, self._limit)
                if cls is h11.InformationalResponse:
                    continue  # 100 Continue, 103 Early Hints: not the answer
                headers = list(event.headers)
                names = {name for name, _ in headers}
                if b"transfer-encoding" in names and b"content-length" in names:
                    # h11 lets Transfer-Encoding win; RFC 9112 6.3 says to treat it as an
                    # error (response splitting), as llhttp does.
                    raise BadResponse(
                        "the server sent a bad response: both Content-Length and Transfer-Encoding"
                    )
                return ResponseHead(event.status_code, event.reason, headers)
            if cls is h11.EndOfMessage:
                return END
            if cls is h11.ConnectionClosed:
                return CLOSED
            return event  # NEED_DATA, or PAUSED (a second answer to one request)

    def complete(self, length: int) -> bool:
        return len(self._conn.trailing_data[0]) >= length

    def reusable(self) -> bool:
        conn = self._conn
        data, closed = conn.trailing_data
        # Bytes past the answer are no answer to the next request (never read them as one).
        return conn.our_state is h11.DONE and conn.their_state is h11.DONE and not (data or closed)

    def start_next_cycle(self) -> None:
        self._conn.start_next_cycle()


_TOKEN = re.compile(r"[-!#$%&'*+.^_`|~0-9A-Za-z]+")
_BAD_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_BAD_TARGET = re.compile(r"[\x00-\x20\x7f]")
_KNOWN_NAMES: set[str] = {
    "host",
    "accept",
    "user-agent",
    "content-length",
    "content-type",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-request-id",
    "traceparent",
}
_MAX_KNOWN_NAMES = 4096
_FIXED, _CHUNKED, _NONE = 1, 2, 3  # how the request body is framed


class HttptoolsCodec:
    """Our request writer and httptools' response parser (see the module doc)."""

    __slots__ = (
        "_closed",
        "_dead",
        "_events",
        "_fed",
        "_framing",
        "_head_done",
        "_head_only",
        "_headers",
        "_informational",
        "_keep_alive",
        "_limit",
        "_message_done",
        "_parser",
        "_reason",
        "_remaining",
        "_sent_end",
        "_size",
        "_tainted",
        "_until_close",
    )

    def __init__(self, max_header_bytes: int) -> None:
        if httptools is None:  # pragma: no cover - Client(parser="httptools") checks
            raise RuntimeError("httptools is not installed: pip install httptools")
        self._limit = max_header_bytes
        self._events: deque[Any] = deque()
        self._framing = _NONE
        self._remaining = 0
        self._reset()

    def _reset(self) -> None:
        self._parser: Any = httptools.HttpResponseParser(self)
        self._events.clear()
        self._fed = 0  # head bytes fed (a bound while the head is incomplete)
        self._size = 0  # the head's size, counted from its parts
        self._reason = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._head_done = False  # the final response's head is parsed
        self._informational = False  # the message being parsed is a 1xx
        self._message_done = False
        self._keep_alive = False  # llhttp's verdict, taken while it knows (it resets after)
        self._until_close = False  # the body ends when the server closes
        self._head_only = False  # a HEAD request: the answer ends at its head
        self._tainted = False  # bytes came that are no part of the response: don't reuse
        self._dead = False
        self._closed = False
        self._sent_end = False

    # -- writing --------------------------------------------------------------------------

    def head(self, method: str, target: str, pairs: list[tuple[str, str]]) -> bytes:
        if _TOKEN.fullmatch(method) is None:
            raise ValueError(f"cannot send this request: bad method {method!r}")
        if not target or _BAD_TARGET.search(target) is not None:
            raise ValueError(f"cannot send this request: bad request-target {target!r}")
        lines = [f"{method} {target} HTTP/1.1\r\n"]
        append = lines.append
        length: str | None = None
        chunked = False
        host = False
        for name, value in pairs:
            if name not in _KNOWN_NAMES:
                if _TOKEN.fullmatch(name) is None:
                    raise ValueError(f"cannot send this request: bad header name {name!r}")
                if len(_KNOWN_NAMES) < _MAX_KNOWN_NAMES:
                    _KNOWN_NAMES.add(name)
            if _BAD_VALUE.search(value) is not None:
                raise ValueError(
                    f"cannot send this request: header {name!r} has a control character"
                )
            if name == "content-length":
                if length is not None and value != length:
                    raise ValueError("cannot send this request: two different Content-Lengths")
                if not value.isdigit() or not value.isascii():
                    raise ValueError(f"cannot send this request: bad Content-Length {value!r}")
                if length is not None:
                    continue
                length = value
            elif name == "transfer-encoding":
                if chunked or value.strip().lower() != "chunked":
                    raise ValueError(
                        "cannot send this request: only Transfer-Encoding: chunked is supported"
                    )
                chunked = True
            elif name == "host":
                host = True
            append(f"{name}: {value}\r\n")
        if not host:
            raise ValueError("cannot send this request: an HTTP/1.1 request needs a Host")
        if chunked and length is not None:
            raise ValueError("cannot send this request: both Content-Length and Transfer-Encoding")
        append("\r\n")
        try:
            encoded = "".join(lines).encode("latin-1")
        except UnicodeEncodeError as exc:
            raise ValueError(f"cannot send this request: {exc}") from None
        self._framing = _CHUNKED if chunked else _FIXED if length is not None else _NONE
        self._remaining = int(length) if length is not None else 0
        self._head_only = method == "HEAD"
        self._sent_end = False
        return encoded

    def data(self, chunk: bytes) -> bytes:
        if not chunk:
            return b""
        framing = self._framing
        if framing == _CHUNKED:
            return b"%x\r\n%b\r\n" % (len(chunk), chunk)
        if framing == _FIXED and len(chunk) <= self._remaining:
            self._remaining -= len(chunk)
            return chunk
        raise ValueError("cannot send this request: too much data for its declared length")

    def end(self) -> bytes:
        if self._framing == _FIXED and self._remaining:
            raise ValueError(
                f"cannot send this request: {self._remaining} bytes short of its Content-Length"
            )
        self._sent_end = True
        return b"0\r\n\r\n" if self._framing == _CHUNKED else b""

    # -- httptools' callbacks -------------------------------------------------------------

    def on_message_begin(self) -> None:
        if self._message_done or self._head_done:
            self._tainted = True  # a second answer to one request: not ours to read
        self._reason = b""
        self._headers = []

    def on_status(self, reason: bytes) -> None:
        self._reason += reason

    def on_header(self, name: bytes, value: bytes) -> None:
        # llhttp keeps the value's trailing whitespace; RFC 9110 says it is not part of it.
        self._headers.append((name.lower(), value.strip(b" \t")))

    def on_headers_complete(self) -> None:
        if self._tainted:
            return
        headers = self._headers
        size = 15 + len(self._reason) + sum(len(n) + len(v) + 4 for n, v in headers)
        self._fed = 0
        if size > self._limit:
            raise _head_too_large(size, self._limit)
        status = self._parser.get_status_code()
        if 100 <= status < 200:
            if status == 101:
                raise BadResponse("the server switched protocols (101) though none was asked")
            self._informational = True
            return
        length = codings = None
        for name, value in headers:
            if name == b"transfer-encoding":
                codings = (codings or []) + [c.strip().lower() for c in value.split(b",")]
            elif name == b"content-length":
                length = value
        if codings is not None:
            if codings != [b"chunked"]:
                raise BadResponse(
                    "the server sent a bad response: only Transfer-Encoding: chunked is "
                    f"supported, got {b', '.join(codings).decode('latin-1')!r}"
                )
            if length is not None:
                raise BadResponse(
                    "the server sent a bad response: both Content-Length and Transfer-Encoding"
                )
        self._head_done = True
        self._keep_alive = self._parser.should_keep_alive()
        self._events.append(ResponseHead(status, self._reason, headers))
        if self._head_only:
            self._message_done = True
            self._events.append(END)
        elif codings is None and length is None and status not in (204, 304):
            self._until_close = True

    def on_body(self, body: bytes) -> None:
        if self._message_done:
            self._tainted = True  # a body after a HEAD answer (or after the end)
            return
        self._events.append(bytes(body))

    def on_message_complete(self) -> None:
        if self._informational:
            self._informational = False
            return
        if self._message_done:
            return
        self._message_done = True
        self._events.append(END)

    # -- reading --------------------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        if not data:
            self._closed = True
            return
        if self._dead or self._tainted:
            self._tainted = True
            return
        if not self._head_done:
            self._fed += len(data)
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            # A callback of ours refused the answer (a limit, a framing rule): httptools
            # raises its own error with ours as the context.
            cause = exc.__context__
            if isinstance(cause, BadResponse):
                self._fail(cause)
            else:  # pragma: no cover - a bug of ours
                self._fail(BadResponse(f"the server sent a bad response: {cause!r}"))
        except httptools.HttpParserUpgrade:
            self._fail(BadResponse("the server switched protocols (101) though none was asked"))
        except httptools.HttpParserError as exc:
            if self._message_done and not self._dead:
                self._tainted = True  # garbage after a complete answer: answered, not reused
            else:
                self._fail(BadResponse(f"the server sent a bad response: {exc}"))
        if not self._head_done and not self._dead and self._fed > self._limit:
            self._fail(_head_too_large(self._fed, self._limit))

    def _fail(self, exc: BadResponse) -> None:
        self._dead = True
        self._events.append(exc)

    def next_event(self) -> Any:
        events = self._events
        if events:
            event = events.popleft()
            if type(event) is BadResponse:
                raise event
            return event
        if self._closed:
            if not self._head_done:
                if self._fed:
                    raise BadResponse(
                        "the server sent a bad response: the connection closed inside a head"
                    )
                return CLOSED
            if not self._message_done:
                if self._until_close:
                    self._message_done = True
                    return END
                raise BadResponse(
                    "the server sent a bad response: the connection closed before the end of "
                    "the body"
                )
            return CLOSED
        return NEED_DATA

    def complete(self, length: int) -> bool:
        return self._message_done

    def reusable(self) -> bool:
        return (
            self._sent_end
            and self._message_done
            and not self._until_close
            and not self._tainted
            and not self._dead
            and not self._closed
            and self._keep_alive
        )

    def start_next_cycle(self) -> None:
        self._reset()


Codec = H11Codec | HttptoolsCodec


def codec_class(parser: str) -> type[H11Codec] | type[HttptoolsCodec]:
    """The codec a ``Client(parser=...)`` uses: ``"h11"``, ``"httptools"`` or ``"auto"``."""
    if parser == "h11" or (parser == "auto" and not HTTPTOOLS):
        return H11Codec
    if parser in ("httptools", "auto"):
        if not HTTPTOOLS:
            raise ValueError('httptools is not installed: pip install httptools, or use "auto"')
        return HttptoolsCodec
    raise ValueError(f'parser must be "h11", "httptools" or "auto", got {parser!r}')


__all__ = [
    "CLOSED",
    "END",
    "HTTPTOOLS",
    "NEED_DATA",
    "BadResponse",
    "Codec",
    "H11Codec",
    "HttptoolsCodec",
    "ResponseHead",
    "codec_class",
]
