"""HTTP values: ``Headers``, ``Request``, ``Response`` and streaming ``Body``.

These are plain data and know nothing of sockets: the server builds a ``Request`` from h11's
events and turns a ``Response`` back into h11 events; a test builds them directly.

Header names are case-insensitive and stored lowercased; values are ``str`` decoded as
latin-1 (RFC 9110 allows only visible ASCII and obs-text; latin-1 maps every byte one to one,
so nothing is lost and ``raw()`` gives the exact bytes back).
"""

from __future__ import annotations

import builtins
import http
import json as _json
import urllib.parse
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
    Mapping,
)
from typing import TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:
    from ._upgrade import UpgradedConnection

HeaderPairs = Iterable[tuple[str | bytes, str | bytes]]


def _text(value: str | bytes) -> str:
    return value.decode("latin-1") if isinstance(value, bytes) else value


class Headers:
    """A case-insensitive, multi-valued, ordered collection of header fields.

    ``headers["content-type"]`` and ``headers.get("Content-Type")`` give the first value;
    ``get_all`` gives every value of a name in order (``Set-Cookie`` may repeat).

    Example:
        >>> h = Headers([("Content-Type", "text/plain"), ("set-cookie", "a=1")])
        >>> h.add("Set-Cookie", "b=2")
        >>> h["content-type"], h.get_all("set-cookie")
        ('text/plain', ['a=1', 'b=2'])
    """

    __slots__ = ("_items",)

    def __init__(self, items: HeaderPairs | Mapping[str, str] | Headers | None = None) -> None:
        self._items: list[tuple[str, str]] = []
        if items is None:
            return
        if isinstance(items, Headers):
            # Iterating a Headers gives its names, not pairs: copy the pairs instead.
            self._items = list(items._items)
            return
        pairs = items.items() if isinstance(items, Mapping) else items
        for name, value in pairs:
            self._items.append((_text(name).lower(), _text(value)))

    @classmethod
    def _adopt(cls, items: list[tuple[str, str]]) -> Headers:
        """Headers that take ``items`` as they are: ``str`` pairs whose names are lowercase
        already (a proxy's, filtered from other Headers). The list is used, not copied."""
        headers = cls.__new__(cls)
        headers._items = items
        return headers

    @classmethod
    def _from_lowercase(cls, pairs: Iterable[tuple[bytes, bytes]]) -> Headers:
        """Headers from a parser's pairs whose names are lowercase already (the server's)."""
        headers = cls.__new__(cls)
        headers._items = [(n.decode("latin-1"), v.decode("latin-1")) for n, v in pairs]
        return headers

    def get(self, name: str, default: str | None = None) -> str | None:
        """The first value of ``name``, or ``default``."""
        key = name.lower()
        for item_name, value in self._items:
            if item_name == key:
                return value
        return default

    def __getitem__(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise KeyError(name)
        return value

    def get_all(self, name: str) -> list[str]:
        """Every value of ``name``, in order (an empty list if there is none)."""
        key = name.lower()
        return [value for item_name, value in self._items if item_name == key]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def add(self, name: str, value: str) -> None:
        """Append a field, keeping any that have the same name."""
        self._items.append((name.lower(), value))

    def set(self, name: str, value: str) -> None:
        """Replace every field called ``name`` with one."""
        self.remove(name)
        self._items.append((name.lower(), value))

    def setdefault(self, name: str, value: str) -> str:
        """The first value of ``name``; add ``value`` first if there is none."""
        existing = self.get(name)
        if existing is None:
            self.add(name, value)
            return value
        return existing

    def remove(self, name: str) -> None:
        """Drop every field called ``name`` (nothing happens if there is none)."""
        key = name.lower()
        for item in self._items:
            if item[0] == key:
                self._items = [item for item in self._items if item[0] != key]
                return

    def items(self) -> list[tuple[str, str]]:
        """Every ``(name, value)`` pair in order, names lowercased."""
        return list(self._items)

    def raw(self) -> list[tuple[bytes, bytes]]:
        """The pairs as bytes, as h11 takes them."""
        return [(n.encode("latin-1"), v.encode("latin-1")) for n, v in self._items]

    def __iter__(self) -> Iterator[str]:
        return (name for name, _ in self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Headers):
            return self._items == other._items
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Headers({self._items!r})"


class BodyTooLarge(Exception):
    """A body is larger than the limit it is read with."""


async def _no_chunks() -> AsyncIterator[bytes]:
    return
    yield b""  # pragma: no cover - makes this an async generator


class Body:
    """A message body that arrives in chunks: iterate it, or ``read()`` it whole.

    It can be consumed once. The server's request bodies stream with backpressure: a chunk is
    read from the connection only when the handler asks for it.

    Args:
        chunks: The chunks, as an async iterable, or the whole body as ``bytes``.
        length: The length, when known in advance (Content-Length).
    """

    __slots__ = ("_chunks", "_consumed", "_data", "length")

    def __init__(self, chunks: AsyncIterable[bytes] | bytes = b"", length: int | None = None):
        if isinstance(chunks, bytes | bytearray | memoryview):
            data = bytes(chunks)
            self.length: int | None = len(data)
            self._data: bytes | None = data
            self._chunks: AsyncIterable[bytes] = _one(data) if data else _no_chunks()
        else:
            self.length = length
            self._data = None
            self._chunks = chunks
        self._consumed = False

    @property
    def buffered(self) -> bytes | None:
        """The whole body if it is already in memory and unread, else None.

        A client's response body is, when it was small and came with its head: a proxy
        can pass it on in one write, with nothing left to wait for.
        """
        return None if self._consumed else self._data

    async def aclose(self) -> None:
        """Say the rest of the body is not wanted: a client's response releases its
        connection (closed, since it was not read to its end). Reading after it fails."""
        self._consumed = True
        close = getattr(self._chunks, "aclose", None)
        if close is not None:
            await close()

    def __aiter__(self) -> AsyncIterator[bytes]:
        if self._consumed:
            raise RuntimeError("this body was already read")
        self._consumed = True
        return self._chunks.__aiter__()

    async def read(self, max_bytes: int | None = None) -> bytes:
        """The whole body.

        Args:
            max_bytes: Refuse a body longer than this (None: no limit beyond the server's).

        Raises:
            BodyTooLarge: the body is longer than ``max_bytes``.
            RuntimeError: the body was already consumed.
        """
        if max_bytes is not None and self.length is not None and self.length > max_bytes:
            raise BodyTooLarge(f"body of {self.length} bytes exceeds {max_bytes} bytes")
        parts: list[bytes] = []
        size = 0
        async for chunk in self:
            size += len(chunk)
            if max_bytes is not None and size > max_bytes:
                raise BodyTooLarge(f"body exceeds {max_bytes} bytes")
            parts.append(chunk)
        return b"".join(parts)

    async def json(self, max_bytes: int = 1 << 20) -> Any:
        """The body parsed as JSON (at most ``max_bytes``, default 1 MiB).

        Raises:
            BodyTooLarge: the body is longer than ``max_bytes``.
            ValueError: it is not valid JSON (``json.JSONDecodeError``).
        """
        return _json.loads(await self.read(max_bytes))


async def _one(data: bytes) -> AsyncIterator[bytes]:
    yield data


def _split_target(target: str) -> tuple[str | None, str, str]:
    """``(authority, path, query)`` of a request-target.

    The origin form (``/a?b``) has no authority. The absolute form (``http://host:port/a?b``,
    RFC 9112 section 3.2.2) is accepted as servers must: its path and query are taken as if
    the origin form had been sent, and its authority is returned for the caller to use in
    place of ``Host``. Any other form (``*``, an authority alone) is kept whole as the path.
    """
    if target[:1] != "/" and target[:8].lower().startswith(("http://", "https://")):
        try:
            parts = urllib.parse.urlsplit(target)
        except ValueError:  # "http://[::1/x": not a URI; kept whole like any other form
            pass
        else:
            authority = parts.netloc.rpartition("@")[2] or None  # userinfo is never used
            return authority, parts.path or "/", parts.query
    path, _, query = target.partition("?")
    return None, path, query


@attrs.define(eq=False)
class Request:
    """One HTTP request, as a handler (a ``Service[Request, Response]``) receives it.

    Attributes:
        method: ``"GET"``, ``"POST"``... (uppercase, as sent).
        target: The request-target as sent, e.g. ``"/items?page=2"``.
        headers: The header fields.
        body: The body, streaming (see :class:`Body`).
        http_version: ``"1.1"`` or ``"1.0"``.
        peer_address: The client's address, from the connection.
        scheme: ``"http"`` or ``"https"``.
        path: The target before ``?`` (of an absolute-form target, the path part of it).
        query: The target after ``?`` (``""`` if none).
        authority: The ``host[:port]`` of an absolute-form target
            (``GET http://api.example/items``), which RFC 9112 puts before ``Host``; ``None``
            for the usual origin form.
        extensions: Free room for middleware and adapters (e.g. route parameters).
    """

    method: str
    target: str
    headers: Headers = attrs.field(factory=Headers)
    body: Body = attrs.field(factory=Body)
    http_version: str = "1.1"
    peer_address: object = None
    scheme: str = "http"
    path: str = attrs.field(init=False)
    query: str = attrs.field(init=False)
    authority: str | None = attrs.field(init=False)
    extensions: dict[str, Any] = attrs.field(factory=dict)

    def __attrs_post_init__(self) -> None:
        self.authority, self.path, self.query = _split_target(self.target)

    async def json(self, max_bytes: int = 1 << 20) -> Any:
        """The body parsed as JSON (at most ``max_bytes``). See :meth:`Body.json`."""
        return await self.body.json(max_bytes)


def _reason(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"  # a status outside the registry still gets a reason phrase


@attrs.define(eq=False)
class Response:
    """One HTTP response.

    Build one with :meth:`text`, :meth:`json` or :meth:`bytes`, or directly with a streaming
    body (any async iterable of ``bytes``): it is sent chunked unless ``content-length`` is
    set.

    Attributes:
        status: The status code.
        headers: The header fields. The server adds ``date`` and ``server``, and
            ``content-length`` for a ``bytes`` body.
        body: ``bytes``, or an async iterable of ``bytes`` to stream.
        reason: The reason phrase; unless one is given, the standard one for the current
            ``status``, so a middleware that changes the status never sends "503 OK". Never
            empty (some clients count an empty one as a failure): ``""`` means the standard.
        upgrade: The connection hand-over: with status 101 (answering a request that asked
            for an ``Upgrade``) or a 2xx answer to ``CONNECT``, the server sends the head,
            then calls ``await upgrade(connection)`` with an
            :class:`~runtime.http.UpgradedConnection` and closes the connection when it
            returns. See :meth:`switching_protocols`.
    """

    status: int = 200
    headers: Headers = attrs.field(factory=Headers)
    body: builtins.bytes | AsyncIterable[builtins.bytes] = b""
    _reason: str | None = attrs.field(default=None, alias="reason")
    upgrade: Callable[[UpgradedConnection], Awaitable[None]] | None = attrs.field(
        default=None, kw_only=True
    )

    @property
    def reason(self) -> str:
        """The reason phrase: the one set, else the standard one for the current status."""
        return self._reason or _reason(self.status)

    @reason.setter
    def reason(self, value: str) -> None:
        self._reason = value

    @classmethod
    def text(
        cls, text: str, status: int = 200, *, headers: HeaderPairs | Headers = ()
    ) -> Response:
        """A ``text/plain; charset=utf-8`` response."""
        h = Headers(headers)
        h.setdefault("content-type", "text/plain; charset=utf-8")
        return cls(status, h, text.encode())

    @classmethod
    def json(
        cls, value: Any, status: int = 200, *, headers: HeaderPairs | Headers = ()
    ) -> Response:
        """An ``application/json`` response of ``value`` (compact, UTF-8).

        Raises:
            ValueError: ``value`` holds NaN or an infinity, which JSON cannot say.
            TypeError: ``value`` holds something ``json`` cannot serialize.
        """
        h = Headers(headers)
        h.setdefault("content-type", "application/json")
        data = _json.dumps(
            value, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        ).encode()
        return cls(status, h, data)

    @classmethod
    def switching_protocols(
        cls,
        protocol: str,
        upgrade: Callable[[UpgradedConnection], Awaitable[None]],
        *,
        headers: HeaderPairs | Headers = (),
    ) -> Response:
        """A ``101 Switching Protocols`` to ``protocol`` that hands the connection to ``upgrade``.

        The request must have asked for the upgrade (``Connection: upgrade`` and an
        ``Upgrade`` header); otherwise the server logs a handler error and answers 500.

        Example::

            async def take_over(connection: UpgradedConnection) -> None:
                async for data in connection:   # bytes of the new protocol
                    await connection.send_all(data)

            return Response.switching_protocols("echo", take_over)
        """
        h = Headers(headers)
        h.set("upgrade", protocol)
        h.set("connection", "upgrade")
        return cls(101, h, upgrade=upgrade)

    @classmethod
    def bytes(
        cls,
        data: builtins.bytes,
        status: int = 200,
        *,
        content_type: str = "application/octet-stream",
        headers: HeaderPairs | Headers = (),
    ) -> Response:
        """A response with ``data`` as its body."""
        h = Headers(headers)
        h.setdefault("content-type", content_type)
        return cls(status, h, builtins.bytes(data))


__all__ = ["Body", "BodyTooLarge", "HeaderPairs", "Headers", "Request", "Response"]
