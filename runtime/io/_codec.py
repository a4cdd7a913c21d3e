"""Sans-IO codecs: turn bytes into frames and frames into bytes, with a size limit.

A codec never touches a socket. :class:`~runtime.io.Framed` (or a test) appends received bytes
to a ``bytearray`` and calls ``decode(buffer)``; the codec removes one frame's bytes from the
front and returns the frame, or returns None and leaves the buffer alone when a frame is not
complete yet. At end of input ``decode_eof(buffer)`` says what the leftovers mean.

Every decoder has a limit, and enforces it *before* buffering the oversize frame: a
length-delimited header announcing 2 GiB is refused on sight, and a line with no newline in
sight is refused as soon as it passes ``max_length``. The error is :class:`FrameTooLarge`.
Because decoding depends only on the bytes, the same input split at any point yields the same
frames (the tests check every split point).

Codecs hold configuration only, never per-stream state, so one codec object may be shared by
any number of connections. The one piece of decode state worth keeping, how far
:class:`LinesCodec` has already searched for a newline (without it a long line arriving in many
reads is rescanned from its start on every read), lives *with the buffer*: a
:class:`ReadBuffer` carries it in ``scanned``. Framed reads into a ReadBuffer; a plain
``bytearray`` works too, and is searched from its front on each call (the search is bounded by
the codec's limit, so that costs at most ``max_length`` bytes per call).
"""

from __future__ import annotations

from typing import Protocol, SupportsIndex, TypeVar

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)
T_contra = TypeVar("T_contra", contravariant=True)


class ReadBuffer(bytearray):
    """A ``bytearray`` that also carries a decoder's scan position over its front.

    Attributes:
        scanned: Bytes at the front of the buffer that a decoder has already searched (for
            :class:`LinesCodec`: bytes known to hold no newline). Appending keeps it valid.
            Deleting from the buffer (``del buffer[:n]``, ``clear()``) resets it to 0, which
            is always safe; other in-place edits of the front must reset it too.
    """

    __slots__ = ("scanned",)

    def __init__(self, data: bytes | bytearray | memoryview = b"") -> None:
        super().__init__(data)
        self.scanned = 0

    def __delitem__(self, index: SupportsIndex | slice) -> None:
        super().__delitem__(index)
        self.scanned = 0

    def clear(self) -> None:
        """Empty the buffer (and forget the scan position)."""
        super().clear()
        self.scanned = 0


class FrameError(Exception):
    """Input that can't be decoded. The connection it came from should be closed.

    A *local* protocol error in h11's sense: the peer sent something we won't accept.
    """


class FrameTooLarge(FrameError):
    """A frame over the codec's limit. Raised before the frame is buffered.

    Attributes:
        length: the size seen (or announced), in bytes.
        limit: the codec's limit, in bytes.
    """

    def __init__(self, message: str, *, length: int, limit: int) -> None:
        super().__init__(message)
        self.length = length
        self.limit = limit


class TruncatedFrame(FrameError):
    """The input ended in the middle of a frame."""


class Decoder(Protocol[T_co]):
    """Turns buffered bytes into frames."""

    def decode(self, buffer: bytearray) -> T_co | None:
        """Remove one complete frame from the front of ``buffer`` and return it, or None.

        Raises:
            FrameError: the bytes can never become a valid frame (e.g. FrameTooLarge).
        """
        ...

    def decode_eof(self, buffer: bytearray) -> T_co | None:
        """Like ``decode``, at end of input: the last frame, or None when ``buffer`` is empty.

        Raises:
            TruncatedFrame: ``buffer`` holds part of a frame that can never complete.
        """
        ...


class Encoder(Protocol[T_contra]):
    """Turns frames into bytes."""

    def encode(self, frame: T_contra) -> bytes:
        """The wire form of ``frame``.

        Raises:
            FrameTooLarge: the frame is over the codec's limit.
        """
        ...


class Codec(Decoder[T], Encoder[T], Protocol[T]):
    """A decoder and an encoder of the same frame type."""


DEFAULT_MAX_LINE = 8 * 1024
"""LinesCodec's default limit: 8 KiB, as for an HTTP request line; raise it for bulk text."""


class LinesCodec:
    """Newline-delimited text. ``\\n`` ends a line; a ``\\r`` before it is dropped too.

    Args:
        max_length: Longest line accepted, without its line ending. Default 8 KiB.
        encoding: Lines are ``str`` decoded with this encoding (default UTF-8); None gives
            ``bytes`` lines instead.

    Decoding raises :class:`FrameTooLarge` as soon as the buffer holds more than
    ``max_length`` bytes without a newline, and :class:`FrameError` for a line that is not
    valid in ``encoding``. At end of input, a last line without a newline is returned.

    The codec keeps no state between calls, so one instance may serve any number of streams;
    the newline search position is kept by the buffer (see :class:`ReadBuffer`).
    """

    def __init__(self, max_length: int = DEFAULT_MAX_LINE, *, encoding: str | None = "utf-8"):
        if max_length < 1:
            raise ValueError(f"max_length must be >= 1, got {max_length}")
        self.max_length = max_length
        self.encoding = encoding

    def decode(self, buffer: bytearray) -> str | bytes | None:
        """See :class:`Decoder`.

        The search for the newline resumes at ``buffer.scanned`` when ``buffer`` is a
        :class:`ReadBuffer` (so a long line arriving in many reads is searched once), and
        never looks past the limit.
        """
        scanned = buffer.scanned if type(buffer) is ReadBuffer else 0
        # A line of max_length bytes may end in "\r\n": its "\n" is at index max_length + 1.
        end = buffer.find(b"\n", scanned, self.max_length + 2)
        if end < 0:
            if len(buffer) > self.max_length + 1:  # +1: a "\r" may still be followed by "\n"
                self._too_long(len(buffer))
            if type(buffer) is ReadBuffer:
                buffer.scanned = len(buffer)
            return None
        line_end = end - 1 if end and buffer[end - 1] == 0x0D else end
        if line_end > self.max_length:
            self._too_long(line_end)
        line = bytes(buffer[:line_end])
        del buffer[: end + 1]  # a ReadBuffer resets its scan position
        return self._text(line)

    def decode_eof(self, buffer: bytearray) -> str | bytes | None:
        """See :class:`Decoder`: a trailing line without a newline is returned as the last."""
        frame = self.decode(buffer)
        if frame is not None or not buffer:
            return frame
        line = bytes(buffer)
        del buffer[:]
        if line.endswith(b"\r"):
            line = line[:-1]
        if len(line) > self.max_length:
            self._too_long(len(line))
        return self._text(line)

    def encode(self, frame: str | bytes) -> bytes:
        """The line plus ``\\n``.

        Raises:
            FrameTooLarge: over ``max_length``.
            ValueError: the line contains a newline (it would arrive as two lines).
        """
        data = frame.encode(self.encoding or "utf-8") if isinstance(frame, str) else frame
        if len(data) > self.max_length:
            raise FrameTooLarge(
                f"line of {len(data)} bytes exceeds {self.max_length} (max_length)",
                length=len(data),
                limit=self.max_length,
            )
        if b"\n" in data:
            raise ValueError("a line to encode must not contain a newline")
        return data + b"\n"

    def _text(self, line: bytes) -> str | bytes:
        if self.encoding is None:
            return line
        try:
            return line.decode(self.encoding)
        except UnicodeDecodeError as exc:
            raise FrameError(f"line is not valid {self.encoding}: {exc.reason}") from exc

    def _too_long(self, length: int) -> None:
        raise FrameTooLarge(
            f"line exceeds {self.max_length} bytes (max_length) without a newline; "
            "raise the limit or fix the peer",
            length=length,
            limit=self.max_length,
        )


DEFAULT_MAX_FRAME = 8 * 1024 * 1024
"""LengthDelimitedCodec's default limit: 8 MiB, as in Tokio."""


class LengthDelimitedCodec:
    """Frames prefixed by their length: an unsigned big-endian integer header.

    Args:
        length_field_bytes: Size of the header: 1, 2, 4 (default) or 8 bytes.
        max_frame_length: Largest payload accepted or sent. Default 8 MiB.

    A header announcing more than ``max_frame_length`` raises :class:`FrameTooLarge` before
    any of the payload is buffered.
    """

    def __init__(
        self, length_field_bytes: int = 4, max_frame_length: int = DEFAULT_MAX_FRAME
    ) -> None:
        if length_field_bytes not in (1, 2, 4, 8):
            raise ValueError(f"length_field_bytes must be 1, 2, 4 or 8, got {length_field_bytes}")
        largest = (1 << (8 * length_field_bytes)) - 1
        if not 0 < max_frame_length <= largest:
            raise ValueError(
                f"max_frame_length must be between 1 and {largest} for a "
                f"{length_field_bytes}-byte header, got {max_frame_length}"
            )
        self.length_field_bytes = length_field_bytes
        self.max_frame_length = max_frame_length

    def decode(self, buffer: bytearray) -> bytes | None:
        """See :class:`Decoder`."""
        header = self.length_field_bytes
        if len(buffer) < header:
            return None
        length = int.from_bytes(buffer[:header], "big")
        if length > self.max_frame_length:
            raise FrameTooLarge(
                f"frame header announces {length} bytes, over {self.max_frame_length} "
                "(max_frame_length); raise the limit or fix the peer",
                length=length,
                limit=self.max_frame_length,
            )
        end = header + length
        if len(buffer) < end:
            return None
        frame = bytes(buffer[header:end])
        del buffer[:end]
        return frame

    def decode_eof(self, buffer: bytearray) -> bytes | None:
        """See :class:`Decoder`: leftovers that are not a whole frame are TruncatedFrame."""
        frame = self.decode(buffer)
        if frame is None and buffer:
            raise TruncatedFrame(
                f"input ended inside a frame ({len(buffer)} bytes of header and payload)"
            )
        return frame

    def encode(self, frame: bytes | bytearray | memoryview) -> bytes:
        """Header plus payload.

        Raises:
            FrameTooLarge: the payload is over ``max_frame_length``.
        """
        length = len(frame)
        if length > self.max_frame_length:
            raise FrameTooLarge(
                f"frame of {length} bytes exceeds {self.max_frame_length} (max_frame_length)",
                length=length,
                limit=self.max_frame_length,
            )
        return length.to_bytes(self.length_field_bytes, "big") + bytes(frame)


class BytesCodec:
    """No framing: each decode returns whatever bytes have arrived (up to ``max_chunk``).

    Args:
        max_chunk: Largest chunk returned at once. Default 64 KiB.
    """

    def __init__(self, max_chunk: int = 65536) -> None:
        if max_chunk < 1:
            raise ValueError(f"max_chunk must be >= 1, got {max_chunk}")
        self.max_chunk = max_chunk

    def decode(self, buffer: bytearray) -> bytes | None:
        """See :class:`Decoder`."""
        if not buffer:
            return None
        chunk = bytes(buffer[: self.max_chunk])
        del buffer[: self.max_chunk]
        return chunk

    def decode_eof(self, buffer: bytearray) -> bytes | None:
        """See :class:`Decoder`."""
        return self.decode(buffer)

    def encode(self, frame: bytes | bytearray | memoryview) -> bytes:
        """The bytes themselves."""
        return bytes(frame)
