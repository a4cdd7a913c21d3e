"""RESP2, the Redis protocol, as a sans-IO codec in the style of ``runtime.io``.

A RESP value is one of five kinds, each announced by its first byte and ended by ``\\r\\n``:

=========  ==========================  ==============================
first      kind                        here
=========  ==========================  ==============================
``+``      simple string               :class:`SimpleString` (a str)
``-``      error                       :class:`RespError` (a str)
``:``      integer                     ``int``
``$``      bulk string, or ``$-1``     ``bytes``, or :data:`NULL`
``*``      array, or ``*-1``           ``list``, or :data:`NULL`
=========  ==========================  ==============================

A client sends each command as an array of bulk strings
(``*2\\r\\n$3\\r\\nGET\\r\\n$1\\r\\nk\\r\\n``) or, typed by hand or sent by
``redis-benchmark``'s inline test, as one *inline* line (``PING\\r\\n``).
:class:`CommandCodec` is the server's side: it decodes commands (both forms) into
``list[bytes]`` and encodes replies. :class:`RespCodec` is the client's side: it decodes
any value and encodes commands.

Both keep no per-stream state, like every codec of ``runtime.io``: ``decode(buffer)`` removes
one whole frame from the front of the buffer and returns it, or returns None and leaves the
buffer alone when the frame is not complete yet. Null is :data:`NULL`, never None, because
None already means "not yet". When the buffer is a :class:`~runtime.io.ReadBuffer`, a decode
that comes up short stores in ``buffer.scanned`` how many bytes the frame needs at least, so a
8 MiB value arriving in 128 reads is parsed twice, not 128 times.

Every limit is checked *before* the bytes it guards are buffered: a bulk header announcing
2 GiB is refused on sight (:class:`~runtime.io.FrameTooLarge`), as is an array of a billion
elements, an array nested deeper than ``max_depth`` and a line running past ``max_line``
without its ``\\r\\n``. Malformed input (``$abc``, a bulk string not followed by ``\\r\\n``,
an unknown type byte) raises :class:`~runtime.io.FrameError`. The messages start with
"Protocol error:", as Redis's do, so the server can send them as they are and close.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final, TypeAlias, final

from runtime.io import FrameError, FrameTooLarge, ReadBuffer, TruncatedFrame

DEFAULT_MAX_BULK: Final = 8 * 1024 * 1024
"""Longest bulk string: 8 MiB (Redis allows 512 MiB; raise it if you store big values)."""
DEFAULT_MAX_ARRAY: Final = 1024 * 1024
"""Most elements in one array, so most arguments of one command: 1,048,576."""
DEFAULT_MAX_DEPTH: Final = 8
"""Deepest nesting of arrays in a reply (a command is always depth 1)."""
DEFAULT_MAX_LINE: Final = 64 * 1024
"""Longest line: an inline command, a simple string, an error or a header. 64 KiB, as Redis."""
DEFAULT_MAX_FRAME: Final = 64 * 1024 * 1024
"""Most bytes of one whole command or reply: 64 MiB."""


@final
class SimpleString(str):
    """A ``+`` reply, such as ``+OK``: a status, not data (it can't hold ``\\r`` or ``\\n``)."""

    __slots__ = ()


@final
class RespError(str):
    """A ``-`` reply, such as ``-ERR unknown command 'FOO'``. Its first word is its kind."""

    __slots__ = ()

    @property
    def kind(self) -> str:
        """``ERR``, ``WRONGTYPE``, ``NOPROTO``...: the first word of the message."""
        return self.split(" ", 1)[0]


@final
class Null:
    """The type of :data:`NULL`, the null bulk string (``$-1``) or null array (``*-1``)."""

    __slots__ = ()
    _instance: Null | None = None

    def __new__(cls) -> Null:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "NULL"

    def __bool__(self) -> bool:
        return False


NULL: Final = Null()
"""The null reply: GET of a missing key. Encoded as ``$-1\\r\\n``."""

Value: TypeAlias = "SimpleString | RespError | int | bytes | Null | list[Value]"
"""What a RESP2 reply decodes to."""

Reply: TypeAlias = (
    "SimpleString | RespError | int | bytes | bytearray | str | Null | Sequence[Reply] | None"
)
"""What :func:`encode` accepts: a Value, or ``str`` (a bulk string in UTF-8), ``None`` (null),
a tuple (an array)."""

_CRLF: Final = b"\r\n"
_FAST_WINDOW: Final = 1024  # bytes the fast path of CommandCodec looks at
_FAST_ARGS: Final = 8  # arguments it takes at most
_NEED: Final = -1  # a parse position meaning "incomplete"


class _Limits:
    """The limits both codecs share, and the errors they raise."""

    def __init__(
        self,
        *,
        max_bulk: int = DEFAULT_MAX_BULK,
        max_array: int = DEFAULT_MAX_ARRAY,
        max_line: int = DEFAULT_MAX_LINE,
        max_frame: int = DEFAULT_MAX_FRAME,
    ) -> None:
        for name, value in [
            ("max_bulk", max_bulk),
            ("max_array", max_array),
            ("max_line", max_line),
            ("max_frame", max_frame),
        ]:
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        self.max_bulk = max_bulk
        self.max_array = max_array
        self.max_line = max_line
        self.max_frame = max_frame

    def _line_end(self, buffer: bytearray, start: int) -> int:
        """Where the ``\\r\\n`` of the line at ``start`` begins, or _NEED; never looks past
        ``max_line``."""
        end = buffer.find(_CRLF, start, start + self.max_line + 2)
        if end < 0:
            if len(buffer) - start > self.max_line + 1:
                raise FrameTooLarge(
                    f"Protocol error: line exceeds {self.max_line} bytes (max_line) without "
                    "\\r\\n; raise the limit or fix the client",
                    length=len(buffer) - start,
                    limit=self.max_line,
                )
            return _NEED
        return end

    def _count(self, buffer: bytearray, start: int, end: int, what: str) -> int:
        """The integer in ``buffer[start:end]``: digits with an optional leading ``-``."""
        digits = buffer[start:end]
        if not (digits.isdigit() or (digits[:1] == b"-" and digits[1:].isdigit())) or (
            len(digits) > 20
        ):
            raise FrameError(f"Protocol error: invalid {what} length {bytes(digits)!r}")
        return int(digits)

    def _bulk_length(self, length: int, start: int) -> None:
        if length > self.max_bulk:
            raise FrameTooLarge(
                f"Protocol error: bulk string of {length} bytes exceeds {self.max_bulk} "
                "(max_bulk); raise the limit or fix the client",
                length=length,
                limit=self.max_bulk,
            )
        if start + length > self.max_frame:
            raise FrameTooLarge(
                f"Protocol error: frame of more than {self.max_frame} bytes (max_frame); "
                "raise the limit or fix the client",
                length=start + length,
                limit=self.max_frame,
            )

    def _array_length(self, length: int) -> None:
        if length > self.max_array:
            raise FrameTooLarge(
                f"Protocol error: array of {length} elements exceeds {self.max_array} "
                "(max_array); raise the limit or fix the client",
                length=length,
                limit=self.max_array,
            )

    def _bulk_end(self, buffer: bytearray, end: int) -> None:
        if buffer[end : end + 2] != _CRLF:
            raise FrameError(
                "Protocol error: a bulk string is not followed by \\r\\n (its length is wrong)"
            )

    def _eof(self, buffer: bytearray) -> None:
        """At end of input with no whole frame left: blank leftovers are fine, others not."""
        if buffer.strip():
            raise TruncatedFrame(f"input ended inside a frame ({len(buffer)} bytes of it)")
        del buffer[:]

    def encode(self, frame: Reply) -> bytes:
        """The wire form of ``frame``. See :func:`encode`."""
        return encode(frame, max_bulk=self.max_bulk)


def _short(buffer: bytearray, needed: int) -> None:
    """Remember that the frame at the front needs at least ``needed`` bytes."""
    if type(buffer) is ReadBuffer:
        buffer.scanned = needed


def _waiting(buffer: bytearray) -> bool:
    """True when the buffer is still shorter than an earlier decode said the frame needs."""
    return type(buffer) is ReadBuffer and len(buffer) < buffer.scanned


class CommandCodec(_Limits):
    """The server's codec: decodes commands (``list[bytes]``), encodes replies.

    Args:
        max_bulk: Longest argument, in bytes. Default 8 MiB.
        max_array: Most arguments in one command. Default 1,048,576.
        max_line: Longest inline command or header line. Default 64 KiB.
        max_frame: Most bytes in one command. Default 64 MiB.

    A command is an array of bulk strings, or an inline line split on spaces and tabs (no
    quoting). Empty arrays and blank lines are skipped, as Redis does. Anything else in an
    array than bulk strings is a :class:`~runtime.io.FrameError`.
    """

    def decode(self, buffer: bytearray) -> list[bytes] | None:
        """Remove one command from the front of ``buffer`` and return its arguments, or None.

        Raises:
            FrameTooLarge: a bulk, array or line over its limit (before it is buffered).
            FrameError: the bytes can't be a command.
        """
        while buffer:
            if _waiting(buffer):
                return None
            if buffer[0] == 0x2A and (command := self._short_command(buffer)) is not None:
                return command
            multibulk = buffer[0] == 0x2A  # "*"
            command = self._multibulk(buffer) if multibulk else self._inline(buffer)
            if command is None or command:
                return command
        return None

    def _short_command(self, buffer: bytearray) -> list[bytes] | None:
        """The fast path: a whole, well-formed command of a few short arguments at the front.

        It works on a ``bytes`` copy of the first ``_FAST_WINDOW`` bytes (slices of bytes are
        bytes, so each argument is copied once) and gives up, returning None, at anything
        unusual: a long or incomplete command, a bad length, a missing ``\\r\\n``. The
        general path then decodes it, or raises the right error.
        """
        data = bytes(buffer[:_FAST_WINDOW])
        end = data.find(b"\r\n", 1, 6)
        if end < 0:
            return None
        count = data[1:end]
        if not count.isdigit() or not 0 < (n := int(count)) <= min(_FAST_ARGS, self.max_array):
            return None
        pos = end + 2
        args = []
        for _ in range(n):
            end = data.find(b"\r\n", pos + 1, pos + 12)
            length = data[pos + 1 : end]
            if end < 0 or data[pos] != 0x24 or not length.isdigit():
                return None
            start = end + 2
            stop = start + int(length)
            if data[stop : stop + 2] != _CRLF or stop - start > self.max_bulk:
                return None
            args.append(data[start:stop])
            pos = stop + 2
        if pos > self.max_frame:
            return None
        del buffer[:pos]
        return args

    def _multibulk(self, buffer: bytearray) -> list[bytes] | None:
        end = self._line_end(buffer, 1)
        if end < 0:
            _short(buffer, len(buffer) + 1)
            return None
        count = self._count(buffer, 1, end, "multibulk")
        self._array_length(count)
        pos = end + 2
        args = []
        for _ in range(count):
            if pos >= len(buffer):
                _short(buffer, pos + 4)
                return None
            if buffer[pos] != 0x24:  # "$"
                got = chr(buffer[pos])
                raise FrameError(f"Protocol error: expected '$', got {got!r}")
            end = self._line_end(buffer, pos + 1)
            if end < 0:
                _short(buffer, len(buffer) + 1)
                return None
            length = self._count(buffer, pos + 1, end, "bulk")
            if length < 0:
                raise FrameError(f"Protocol error: invalid bulk length {length}")
            start = end + 2
            self._bulk_length(length, start)
            stop = start + length
            if len(buffer) < stop + 2:
                _short(buffer, stop + 2)
                return None
            self._bulk_end(buffer, stop)
            args.append(bytes(buffer[start:stop]))
            pos = stop + 2
        del buffer[:pos]
        return args

    def _inline(self, buffer: bytearray) -> list[bytes] | None:
        end = buffer.find(b"\n", 0, self.max_line + 2)
        if end < 0:
            if len(buffer) > self.max_line + 1:
                raise FrameTooLarge(
                    f"Protocol error: inline command exceeds {self.max_line} bytes (max_line) "
                    "without a newline; raise the limit or fix the client",
                    length=len(buffer),
                    limit=self.max_line,
                )
            _short(buffer, len(buffer) + 1)
            return None
        args = buffer[:end].split()
        del buffer[: end + 1]
        if len(args) > self.max_array:
            self._array_length(len(args))
        return [bytes(arg) for arg in args]

    def decode_eof(self, buffer: bytearray) -> list[bytes] | None:
        """Like ``decode``, at end of input.

        Raises:
            TruncatedFrame: the input ended inside a command.
        """
        frame = self.decode(buffer)
        if frame is None:
            self._eof(buffer)
        return frame


class RespCodec(_Limits):
    """The client's codec: decodes any RESP2 value, encodes commands (and any value).

    Args:
        max_bulk: Longest bulk string. Default 8 MiB.
        max_array: Most elements in one array. Default 1,048,576.
        max_depth: Deepest nesting of arrays. Default 8.
        max_line: Longest simple string, error or header line. Default 64 KiB.
        max_frame: Most bytes in one value. Default 64 MiB.
    """

    def __init__(
        self,
        *,
        max_bulk: int = DEFAULT_MAX_BULK,
        max_array: int = DEFAULT_MAX_ARRAY,
        max_depth: int = DEFAULT_MAX_DEPTH,
        max_line: int = DEFAULT_MAX_LINE,
        max_frame: int = DEFAULT_MAX_FRAME,
    ) -> None:
        super().__init__(
            max_bulk=max_bulk, max_array=max_array, max_line=max_line, max_frame=max_frame
        )
        if max_depth < 1:
            raise ValueError(f"max_depth must be >= 1, got {max_depth}")
        self.max_depth = max_depth

    def decode(self, buffer: bytearray) -> Value | None:
        """Remove one value from the front of ``buffer`` and return it, or None.

        Raises:
            FrameTooLarge: a bulk, array, nesting or line over its limit.
            FrameError: the bytes can't be a RESP2 value.
        """
        if not buffer or _waiting(buffer):
            return None
        value, pos = self._value(buffer, 0, 0)
        if pos < 0:
            return None
        del buffer[:pos]
        return value

    def _value(self, buffer: bytearray, pos: int, depth: int) -> tuple[Value | None, int]:
        """The value at ``pos`` and the position after it, or ``(None, _NEED)``."""
        if pos >= len(buffer):
            _short(buffer, pos + 3)
            return None, _NEED
        kind = buffer[pos]
        end = self._line_end(buffer, pos + 1)
        if end < 0:
            _short(buffer, len(buffer) + 1)
            return None, _NEED
        after = end + 2
        if kind == 0x2B:  # "+"
            return SimpleString(buffer[pos + 1 : end].decode("utf-8", "replace")), after
        if kind == 0x2D:  # "-"
            return RespError(buffer[pos + 1 : end].decode("utf-8", "replace")), after
        if kind == 0x3A:  # ":"
            return self._count(buffer, pos + 1, end, "integer"), after
        if kind == 0x24:  # "$"
            return self._bulk(buffer, pos, end)
        if kind == 0x2A:  # "*"
            return self._array(buffer, pos, end, depth + 1)
        raise FrameError(f"Protocol error: unknown type byte {chr(kind)!r}")

    def _bulk(self, buffer: bytearray, pos: int, end: int) -> tuple[Value | None, int]:
        length = self._count(buffer, pos + 1, end, "bulk")
        if length == -1:
            return NULL, end + 2
        if length < 0:
            raise FrameError(f"Protocol error: invalid bulk length {length}")
        start = end + 2
        self._bulk_length(length, start)
        stop = start + length
        if len(buffer) < stop + 2:
            _short(buffer, stop + 2)
            return None, _NEED
        self._bulk_end(buffer, stop)
        return bytes(buffer[start:stop]), stop + 2

    def _array(
        self, buffer: bytearray, pos: int, end: int, depth: int
    ) -> tuple[Value | None, int]:
        count = self._count(buffer, pos + 1, end, "multibulk")
        if count == -1:
            return NULL, end + 2
        if count < 0:
            raise FrameError(f"Protocol error: invalid multibulk length {count}")
        if depth > self.max_depth:
            raise FrameTooLarge(
                f"Protocol error: arrays nested deeper than {self.max_depth} (max_depth); "
                "raise the limit or fix the peer",
                length=depth,
                limit=self.max_depth,
            )
        self._array_length(count)
        items: list[Value] = []
        pos = end + 2
        for _ in range(count):
            item, pos = self._value(buffer, pos, depth)
            if pos < 0:
                return None, _NEED
            items.append(item)  # type: ignore[arg-type]
        return items, pos

    def decode_eof(self, buffer: bytearray) -> Value | None:
        """Like ``decode``, at end of input.

        Raises:
            TruncatedFrame: the input ended inside a value.
        """
        frame = self.decode(buffer)
        if frame is None:
            self._eof(buffer)
        return frame


# -- encoding ----------------------------------------------------------------------------------

OK: Final = b"+OK\r\n"
"""``+OK``, encoded once: the commonest reply."""
PONG: Final = b"+PONG\r\n"
NULL_BULK: Final = b"$-1\r\n"


def encode(frame: Reply, *, max_bulk: int = DEFAULT_MAX_BULK) -> bytes:
    """The wire form of a reply or a command.

    ``bytes`` and ``str`` become bulk strings, ``int`` an integer, ``NULL`` or ``None`` a
    null bulk, a list or tuple an array; :class:`SimpleString` and :class:`RespError` keep
    their kinds.

    Raises:
        FrameTooLarge: a bulk string over ``max_bulk``.
        ValueError: a simple string or error with ``\\r`` or ``\\n`` in it.
        TypeError: a value RESP2 has no form for (a float, a dict...).
    """
    out = bytearray()
    _encode_into(out, frame, max_bulk)
    return bytes(out)


def _encode_into(out: bytearray, frame: Reply, max_bulk: int) -> None:
    kind = type(frame)
    if kind is bytes or kind is bytearray:
        _bulk_into(out, frame, max_bulk)  # type: ignore[arg-type]
    elif kind is str:
        _bulk_into(out, frame.encode(), max_bulk)  # type: ignore[union-attr]
    elif kind is int:
        out += b":%d\r\n" % frame  # type: ignore[str-format]
    elif kind is SimpleString or kind is RespError:
        text = frame.encode()  # type: ignore[union-attr]
        if b"\r" in text or b"\n" in text:
            raise ValueError(f"a RESP {kind.__name__} must not contain \\r or \\n: {frame!r}")
        out += (b"+" if kind is SimpleString else b"-") + text + _CRLF
    elif frame is None or frame is NULL:
        out += NULL_BULK
    elif kind is list or kind is tuple:
        out += b"*%d\r\n" % len(frame)  # type: ignore[arg-type]
        for item in frame:  # type: ignore[union-attr]
            _encode_into(out, item, max_bulk)
    else:
        raise TypeError(f"RESP2 has no form for {kind.__name__} ({frame!r})")


def _bulk_into(out: bytearray, data: bytes, max_bulk: int) -> None:
    if len(data) > max_bulk:
        raise FrameTooLarge(
            f"bulk string of {len(data)} bytes exceeds {max_bulk} (max_bulk)",
            length=len(data),
            limit=max_bulk,
        )
    out += b"$%d\r\n" % len(data)
    out += data
    out += _CRLF


def bulk(data: bytes) -> bytes:
    """A bulk string, encoded: the fast path for GET's reply (no size check)."""
    return b"$%d\r\n%s\r\n" % (len(data), data)


def error(message: str) -> bytes:
    """An error reply, encoded. ``message`` starts with its kind (``ERR``, ``WRONGTYPE``)."""
    return b"-" + message.replace("\r", " ").replace("\n", " ").encode() + _CRLF
