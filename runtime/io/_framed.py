"""Framed: a stream plus a codec, read as frames and written as frames.

Reading is pull-based: bytes are read from the stream only when the caller asks for the next
frame and the buffer holds none, so the read buffer never holds more than one frame's limit
plus one read. Writing goes through a write buffer: :meth:`Framed.feed` encodes into it,
:meth:`Framed.flush` sends it, :meth:`Framed.send` does both. ``feed`` flushes by itself past
``write_high_water`` bytes, which is the write backpressure: a caller that feeds faster than
the peer reads waits in ``send_all``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from types import TracebackType
from typing import Generic, TypeVar

import trio

from ._codec import Decoder, Encoder, ReadBuffer

In = TypeVar("In")
Out = TypeVar("Out")

DEFAULT_READ_SIZE = 65536
DEFAULT_WRITE_HIGH_WATER = 65536


class Framed(Generic[In, Out]):
    """Frames over a ``trio.abc.Stream``: ``async for frame in framed`` and ``send(frame)``.

    Args:
        stream: Any Trio stream (ours, ``trio.SSLStream``, a memory stream in tests).
        decoder: Turns received bytes into ``In`` frames.
        encoder: Turns ``Out`` frames into bytes; defaults to ``decoder`` when it can encode.
        read_size: Bytes asked of the stream per read.
        write_high_water: ``feed`` flushes once this many bytes are buffered.

    Iteration ends when the peer closes cleanly. Errors from the codec (``FrameTooLarge``,
    ``TruncatedFrame``) and from the stream propagate; the caller decides whether to send an
    error reply before closing.

    Cancellation: a cancelled ``receive`` loses nothing (bytes already read stay buffered for
    the next call). A cancelled ``flush`` may have sent part of the buffer; close the stream.

    Codecs keep no per-stream state (the decoder's scan position lives in ``read_buffer``, a
    :class:`~runtime.io.ReadBuffer`), so one codec object can be shared by many Framed.
    """

    def __init__(
        self,
        stream: trio.abc.Stream,
        decoder: Decoder[In],
        encoder: Encoder[Out] | None = None,
        *,
        read_size: int = DEFAULT_READ_SIZE,
        write_high_water: int = DEFAULT_WRITE_HIGH_WATER,
    ) -> None:
        self.stream = stream
        self.decoder = decoder
        if encoder is None:
            if not hasattr(decoder, "encode"):
                raise TypeError("the decoder can't encode; pass an encoder")
            encoder = decoder  # type: ignore[assignment]
        self.encoder: Encoder[Out] = encoder  # type: ignore[assignment]
        self.read_size = read_size
        self.write_high_water = write_high_water
        self.read_buffer = ReadBuffer()  # carries the decoder's scan position
        self.write_buffer = bytearray()
        self._eof = False

    async def receive(self) -> In | None:
        """The next frame, or None at a clean end of input.

        Raises:
            FrameError: the codec refused the input (e.g. FrameTooLarge, TruncatedFrame).
            trio.BrokenResourceError: the stream broke.
        """
        buffer = self.read_buffer
        decode = self.decoder.decode
        while True:
            frame = decode(buffer)
            if frame is not None:
                return frame
            if self._eof:
                return self.decoder.decode_eof(buffer)
            data = await self.stream.receive_some(self.read_size)
            if not data:
                self._eof = True
                continue
            buffer += data

    def __aiter__(self) -> AsyncIterator[In]:
        return self._frames()

    async def _frames(self) -> AsyncIterator[In]:
        while (frame := await self.receive()) is not None:
            yield frame

    def feed(self, frame: Out) -> None:
        """Encode ``frame`` into the write buffer without sending it.

        Raises:
            FrameTooLarge: the frame is over the encoder's limit; nothing was buffered.
        """
        self.write_buffer += self.encoder.encode(frame)

    async def flush(self) -> None:
        """Send everything in the write buffer."""
        if self.write_buffer:
            data = bytes(self.write_buffer)
            self.write_buffer.clear()
            await self.stream.send_all(data)
        else:
            await trio.lowlevel.checkpoint()

    async def send(self, frame: Out) -> None:
        """Encode and send one frame (with anything fed before it)."""
        self.feed(frame)
        await self.flush()

    async def feed_and_maybe_flush(self, frame: Out) -> None:
        """Encode ``frame``; flush only past ``write_high_water``. For pipelined replies."""
        self.feed(frame)
        if len(self.write_buffer) >= self.write_high_water:
            await self.flush()
        else:
            await trio.lowlevel.checkpoint()

    async def aclose(self) -> None:
        """Close the stream (unflushed writes are dropped; flush first to keep them)."""
        await self.stream.aclose()

    async def __aenter__(self) -> Framed[In, Out]:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
