"""Framed over real and in-memory streams: frames, backpressure, errors, cancellation."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from runtime.io import Framed, FrameTooLarge, LengthDelimitedCodec, LinesCodec, TruncatedFrame
from runtime.net import UnixStream


async def test_lines_over_a_socket_pair() -> None:
    a, b = UnixStream.pair()
    left = Framed(a, LinesCodec())
    right = Framed(b, LinesCodec())
    async with left, right:
        await left.send("hello")
        left.feed("pipelined 1")
        left.feed("pipelined 2")
        await left.flush()
        await a.send_eof()
        assert [line async for line in right] == ["hello", "pipelined 1", "pipelined 2"]


async def test_oversize_line_raises_frame_too_large() -> None:
    a, b = UnixStream.pair()
    framed = Framed(b, LinesCodec(16))
    await a.send_all(b"x" * 100)
    with pytest.raises(FrameTooLarge):
        await framed.receive()
    await a.aclose()
    await b.aclose()


async def test_truncated_length_delimited_frame_at_eof() -> None:
    a, b = UnixStream.pair()
    codec = LengthDelimitedCodec()
    await a.send_all(codec.encode(b"whole") + codec.encode(b"partial")[:5])
    await a.send_eof()
    framed = Framed(b, LengthDelimitedCodec())
    assert await framed.receive() == b"whole"
    with pytest.raises(TruncatedFrame):
        await framed.receive()
    await a.aclose()
    await b.aclose()


async def test_cancelled_receive_loses_nothing(autojump_clock: trio.abc.Clock) -> None:
    send, recv = trio.testing.memory_stream_pair()
    framed = Framed(recv, LinesCodec())
    await send.send_all(b"part")
    with trio.move_on_after(1):
        await framed.receive()  # waits for the rest of the line
    await send.send_all(b"ial line\n")
    assert await framed.receive() == "partial line"


async def test_write_backpressure_blocks_the_feeder() -> None:
    send, recv = trio.testing.lockstep_stream_pair()  # no buffering at all
    framed = Framed(send, LengthDelimitedCodec(), write_high_water=64)
    progress: list[int] = []

    async def producer() -> None:
        for i in range(10):
            await framed.feed_and_maybe_flush(b"x" * 40)
            progress.append(i)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(producer)
        await trio.testing.wait_all_tasks_blocked()
        assert progress == [0]  # the second feed crossed the high-water mark and is waiting
        reader = Framed(recv, LengthDelimitedCodec())
        for _ in range(2):
            assert await reader.receive() == b"x" * 40
        await trio.testing.wait_all_tasks_blocked()
        assert len(progress) >= 2
        nursery.cancel_scope.cancel()


def test_framed_needs_an_encoder() -> None:
    class DecodeOnly:
        def decode(self, buffer: bytearray) -> bytes | None:
            return None

        def decode_eof(self, buffer: bytearray) -> bytes | None:
            return None

    with pytest.raises(TypeError, match="pass an encoder"):
        Framed(trio.testing.memory_stream_pair()[0], DecodeOnly())


async def test_one_lines_codec_shared_by_two_framed_frames_both(
    autojump_clock: trio.abc.Clock,
) -> None:
    """Regression (B8): the codec kept one scan offset for whichever buffer it saw last."""
    codec = LinesCodec()
    send_a, recv_a = trio.testing.memory_stream_pair()
    send_b, recv_b = trio.testing.memory_stream_pair()
    a, b = Framed(recv_a, codec), Framed(recv_b, codec)
    lines: dict[str, list[str]] = {"a": [], "b": []}

    async def read_all(name: str, framed: Framed[str, str]) -> None:
        async for line in framed:
            lines[name].append(line)

    async def step(send: trio.abc.SendStream, data: bytes) -> None:
        await send.send_all(data)
        await trio.testing.wait_all_tasks_blocked()  # the reader decoded what it got

    async with trio.open_nursery() as nursery:
        nursery.start_soon(read_all, "a", a)
        nursery.start_soon(read_all, "b", b)
        await trio.testing.wait_all_tasks_blocked()  # both wait in receive_some
        await step(send_a, b"a long partial line from stream a, ")
        await step(send_b, b"hi\nthere you\n")
        assert lines["b"] == ["hi", "there you"]
        await step(send_a, b"done\nabcdef")
        await step(send_b, b"and more\n")
        await step(send_a, b"\n")
        await send_a.aclose()
        await send_b.aclose()
    assert lines == {
        "a": ["a long partial line from stream a, done", "abcdef"],
        "b": ["hi", "there you", "and more"],
    }
