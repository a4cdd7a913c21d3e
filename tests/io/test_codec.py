"""Codecs: the same bytes, whole or split at any point, give the same frames; limits hold."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runtime.io import (
    BytesCodec,
    FrameError,
    FrameTooLarge,
    LengthDelimitedCodec,
    LinesCodec,
    ReadBuffer,
    TruncatedFrame,
)


def feed(codec: Any, chunks: list[bytes]) -> list[Any]:
    """Feed chunks one by one, decoding all complete frames after each; then decode_eof."""
    buffer = bytearray()
    frames = []
    for chunk in chunks:
        buffer += chunk
        while (frame := codec.decode(buffer)) is not None:
            frames.append(frame)
    while (frame := codec.decode_eof(buffer)) is not None:
        frames.append(frame)
    return frames


def every_split(data: bytes) -> list[list[bytes]]:
    return [[data[:i], data[i:]] for i in range(len(data) + 1)]


def outcome(make: Any, chunks: list[bytes]) -> tuple[str, Any]:
    try:
        return ("frames", feed(make(), chunks))
    except FrameError as exc:
        return (type(exc).__name__, None)


# -- LinesCodec --------------------------------------------------------------------------


SAMPLE_LINES = b"hello\nworld\r\n\nunicode \xc3\xa9\nlast line without newline"


def test_lines_whole() -> None:
    assert feed(LinesCodec(), [SAMPLE_LINES]) == [
        "hello",
        "world",
        "",
        "unicode é",
        "last line without newline",
    ]


def test_lines_every_split_point_gives_the_same_frames() -> None:
    whole = feed(LinesCodec(), [SAMPLE_LINES])
    for chunks in every_split(SAMPLE_LINES):
        assert feed(LinesCodec(), chunks) == whole
    assert feed(LinesCodec(), [bytes([b]) for b in SAMPLE_LINES]) == whole


@given(
    lines=st.lists(st.binary(max_size=40).map(lambda b: b.replace(b"\n", b"")), max_size=10),
    cuts=st.lists(st.integers(min_value=0, max_value=500), max_size=8),
    limit=st.integers(min_value=1, max_value=50),
)
def test_lines_random_splits_agree(lines: list[bytes], cuts: list[int], limit: int) -> None:
    data = b"".join(line + b"\n" for line in lines)
    points = sorted({c % (len(data) + 1) for c in cuts})
    chunks = [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]

    def make() -> LinesCodec:
        return LinesCodec(limit, encoding=None)

    assert outcome(make, chunks) == outcome(make, [data])


def test_line_over_the_limit_is_refused_before_the_newline_arrives() -> None:
    codec = LinesCodec(10)
    buffer = bytearray(b"x" * 11)
    assert codec.decode(buffer) is None  # 10 bytes + a possible "\r"
    buffer += b"x"
    with pytest.raises(FrameTooLarge, match="max_length") as info:
        codec.decode(buffer)
    assert info.value.limit == 10


def test_line_at_the_limit_with_crlf_is_accepted() -> None:
    assert feed(LinesCodec(5), [b"12345\r\n"]) == ["12345"]
    with pytest.raises(FrameTooLarge):
        feed(LinesCodec(5), [b"123456\r\n"])


def test_invalid_utf8_is_a_frame_error() -> None:
    with pytest.raises(FrameError, match="utf-8"):
        feed(LinesCodec(), [b"\xff\xfe\n"])


def test_lines_encode() -> None:
    codec = LinesCodec(5)
    assert codec.encode("hi") == b"hi\n"
    assert codec.encode(b"bytes") == b"bytes\n"
    with pytest.raises(FrameTooLarge):
        codec.encode("too long")
    with pytest.raises(ValueError, match="newline"):
        codec.encode("a\nb")


# -- LengthDelimitedCodec ----------------------------------------------------------------


def test_length_delimited_round_trip_every_split() -> None:
    codec = LengthDelimitedCodec()
    frames = [b"", b"a", b"hello world", bytes(range(256))]
    data = b"".join(codec.encode(f) for f in frames)
    for chunks in every_split(data):
        assert feed(LengthDelimitedCodec(), chunks) == frames


@given(
    frames=st.lists(st.binary(max_size=300), max_size=8),
    cuts=st.lists(st.integers(min_value=0, max_value=3000), max_size=8),
    header=st.sampled_from([2, 4, 8]),
)
def test_length_delimited_random_splits(frames: list[bytes], cuts: list[int], header: int) -> None:
    codec = LengthDelimitedCodec(header, max_frame_length=1000)
    data = b"".join(codec.encode(f) for f in frames)
    points = sorted({c % (len(data) + 1) for c in cuts})
    chunks = [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]
    assert feed(LengthDelimitedCodec(header, 1000), chunks) == frames


def test_oversize_header_is_refused_before_the_payload() -> None:
    codec = LengthDelimitedCodec(4, max_frame_length=1024)
    buffer = bytearray((2**31).to_bytes(4, "big"))  # announces 2 GiB, sends nothing more
    with pytest.raises(FrameTooLarge, match="announces 2147483648 bytes") as info:
        codec.decode(buffer)
    assert info.value.length == 2**31


def test_truncated_frame_at_eof() -> None:
    codec = LengthDelimitedCodec()
    data = codec.encode(b"complete") + codec.encode(b"cut short")[:-3]
    with pytest.raises(TruncatedFrame, match="input ended inside a frame"):
        feed(codec, [data])


def test_length_delimited_validation() -> None:
    with pytest.raises(ValueError, match="1, 2, 4 or 8"):
        LengthDelimitedCodec(3)
    with pytest.raises(ValueError, match="between 1 and 255"):
        LengthDelimitedCodec(1, max_frame_length=1000)
    with pytest.raises(FrameTooLarge):
        LengthDelimitedCodec(2, 10).encode(b"x" * 11)


# -- BytesCodec --------------------------------------------------------------------------


def test_bytes_codec_concatenation_is_preserved() -> None:
    data = bytes(range(200)) * 3
    for chunks in every_split(data):
        assert b"".join(feed(BytesCodec(max_chunk=64), chunks)) == data
    assert all(len(c) <= 64 for c in feed(BytesCodec(max_chunk=64), [data]))


def test_a_shared_lines_codec_frames_interleaved_buffers() -> None:
    """Regression (B8): one codec, two buffers fed in turns, each framed on its own."""
    codec = LinesCodec(encoding=None)
    first, second = ReadBuffer(b"first stream, a long partial"), ReadBuffer(b"xy\nmore")
    assert codec.decode(first) is None
    assert codec.decode(second) == b"xy"
    assert codec.decode(second) is None
    first += b" line\n"
    assert codec.decode(first) == b"first stream, a long partial line"
    second += b" text\n"
    assert codec.decode(second) == b"more text"


def test_read_buffer_keeps_the_scan_position_and_deletion_resets_it() -> None:
    codec = LinesCodec(encoding=None)
    buffer = ReadBuffer(b"no newline yet")
    assert codec.decode(buffer) is None
    assert buffer.scanned == len(buffer)  # the next decode searches only the new bytes
    buffer += b"\nnext"
    assert codec.decode(buffer) == b"no newline yet"
    assert (bytes(buffer), buffer.scanned) == (b"next", 0)
    buffer.scanned = 4
    buffer.clear()
    assert buffer.scanned == 0


def test_a_plain_bytearray_is_searched_only_up_to_the_limit() -> None:
    codec = LinesCodec(4, encoding=None)
    assert codec.decode(bytearray(b"1234\r\n")) == b"1234"
    with pytest.raises(FrameTooLarge):
        codec.decode(bytearray(b"12345\n" + b"x" * 100))
