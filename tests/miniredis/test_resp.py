"""The RESP2 codec: commands and replies, split anywhere; limits and hostile input."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from mini_redis import resp
from mini_redis.resp import NULL, CommandCodec, RespCodec, RespError, SimpleString

from runtime.io import FrameError, FrameTooLarge, ReadBuffer, TruncatedFrame


def feed(codec: Any, chunks: list[bytes]) -> list[Any]:
    """Feed chunks one by one into a ReadBuffer, decoding all frames after each; then EOF."""
    buffer = ReadBuffer()
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


PIPELINE = (
    b"*1\r\n$4\r\nPING\r\n"
    b"PING\r\n"
    b"\r\n"  # a blank line: skipped
    b"*0\r\n"  # an empty array: skipped
    b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\na\r\nb\x00\r\n"  # a value with CRLF and NUL in it
    b"  get   k \r\n"
    b"*2\r\n$4\r\nECHO\r\n$0\r\n\r\n"
)
COMMANDS = [[b"PING"], [b"PING"], [b"SET", b"k", b"a\r\nb\x00"], [b"get", b"k"], [b"ECHO", b""]]


def test_commands_multibulk_and_inline() -> None:
    assert feed(CommandCodec(), [PIPELINE]) == COMMANDS


@pytest.mark.parametrize("chunks", every_split(PIPELINE))
def test_commands_split_anywhere(chunks: list[bytes]) -> None:
    assert feed(CommandCodec(), chunks) == COMMANDS


def test_commands_byte_by_byte() -> None:
    assert feed(CommandCodec(), [bytes([b]) for b in PIPELINE]) == COMMANDS


def test_an_incomplete_command_leaves_the_buffer_alone() -> None:
    buffer = ReadBuffer(b"*2\r\n$3\r\nGET\r\n$1\r\n")
    assert CommandCodec().decode(buffer) is None
    assert buffer == b"*2\r\n$3\r\nGET\r\n$1\r\n"


def test_a_short_decode_remembers_what_the_frame_needs() -> None:
    codec = CommandCodec()
    header = b"*2\r\n$3\r\nSET\r\n$1000000\r\n"
    buffer = ReadBuffer(header + b"x" * 10)
    assert codec.decode(buffer) is None
    assert buffer.scanned == len(header) + 1_000_000 + 2  # the whole bulk and its CRLF
    buffer += b"x" * (1_000_000 - 10) + b"\r\n"
    assert codec.decode(buffer) == [b"SET", b"x" * 1_000_000]
    assert buffer == b"" and buffer.scanned == 0


def test_oversize_bulk_is_refused_from_its_header() -> None:
    codec = CommandCodec(max_bulk=1024)
    buffer = ReadBuffer(b"*2\r\n$3\r\nSET\r\n$2147483648\r\n")
    with pytest.raises(FrameTooLarge, match=r"bulk string of 2147483648 bytes exceeds 1024") as e:
        codec.decode(buffer)
    assert (e.value.length, e.value.limit) == (2147483648, 1024)
    assert str(e.value).startswith("Protocol error:")


def test_bulk_at_the_limit_is_accepted() -> None:
    codec = CommandCodec(max_bulk=4)
    assert feed(codec, [b"*1\r\n$4\r\nabcd\r\n"]) == [[b"abcd"]]
    with pytest.raises(FrameTooLarge):
        feed(codec, [b"*1\r\n$5\r\nabcde\r\n"])


def test_the_fast_path_keeps_every_limit() -> None:
    """Short commands take a fast path; it must refuse what the general path refuses."""
    command = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nvalue\r\n"
    assert feed(CommandCodec(), [command]) == [[b"SET", b"k", b"value"]]
    with pytest.raises(FrameTooLarge, match="max_array"):
        feed(CommandCodec(max_array=2), [command])
    with pytest.raises(FrameTooLarge, match="max_bulk"):
        feed(CommandCodec(max_bulk=4), [command])
    with pytest.raises(FrameTooLarge, match="max_frame"):
        feed(CommandCodec(max_frame=20), [command])
    with pytest.raises(FrameError, match="invalid bulk length"):
        feed(CommandCodec(), [b"*1\r\n$ 3\r\nGET\r\n"])


def test_too_many_arguments_are_refused_from_the_header() -> None:
    with pytest.raises(FrameTooLarge, match=r"array of 1000000000 elements exceeds 1048576"):
        CommandCodec().decode(ReadBuffer(b"*1000000000\r\n"))


def test_a_frame_over_max_frame_is_refused() -> None:
    codec = CommandCodec(max_bulk=100, max_frame=150)
    data = b"*2\r\n$100\r\n" + b"x" * 100 + b"\r\n$100\r\n"
    with pytest.raises(FrameTooLarge, match="max_frame"):
        codec.decode(ReadBuffer(data))


def test_overlong_inline_line_is_refused_before_its_newline() -> None:
    codec = CommandCodec(max_line=100)
    with pytest.raises(FrameTooLarge, match=r"inline command exceeds 100 bytes"):
        codec.decode(ReadBuffer(b"x" * 102))
    assert codec.decode(ReadBuffer(b"x" * 101)) is None  # 100 bytes and a "\r": may still end
    assert feed(codec, [b"y" * 100 + b"\r\n"]) == [[b"y" * 100]]


def test_overlong_header_line_is_refused() -> None:
    codec = CommandCodec(max_line=16)
    with pytest.raises(FrameTooLarge, match=r"line exceeds 16 bytes"):
        codec.decode(ReadBuffer(b"*1" + b"1" * 40))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"*x\r\n", "invalid multibulk length b'x'"),
        (b"*1\r\n$abc\r\n", "invalid bulk length b'abc'"),
        (b"*1\r\n$-5\r\n", "invalid bulk length -5"),
        (b"*1\r\n$+5\r\nhello\r\n", "invalid bulk length b'+5'"),
        (b"*1\r\n:1\r\n", "expected '$', got ':'"),
        (b"*1\r\n$1\r\nab\r\n", "not followed by"),
        (b"*1\r\n$" + b"9" * 21 + b"\r\n", "invalid bulk length"),
    ],
)
def test_malformed_commands(data: bytes, message: str) -> None:
    with pytest.raises(FrameError, match=r"^Protocol error: ") as e:
        CommandCodec().decode(ReadBuffer(data))
    assert message in str(e.value)
    assert not isinstance(e.value, TruncatedFrame)


@pytest.mark.parametrize("partial", [b"*2\r\n$3\r\nGET\r\n", b"*1\r\n$4\r\nPI", b"PIN", b"*"])
def test_input_ending_inside_a_command_is_truncated(partial: bytes) -> None:
    with pytest.raises(TruncatedFrame, match="input ended inside a frame"):
        feed(CommandCodec(), [partial])


def test_blank_leftovers_at_eof_are_fine() -> None:
    assert feed(CommandCodec(), [b"PING\r\n \r\n"]) == [[b"PING"]]


# -- replies -----------------------------------------------------------------------------------

REPLIES = (
    b"+OK\r\n-ERR unknown command 'FOO'\r\n:-42\r\n$5\r\nhello\r\n$-1\r\n*-1\r\n*0\r\n"
    b"*3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n*2\r\n:1\r\n$0\r\n\r\n"
)
VALUES = [
    "OK",
    "ERR unknown command 'FOO'",
    -42,
    b"hello",
    NULL,
    NULL,
    [],
    [b"message", b"news", [1, b""]],
]


@pytest.mark.parametrize("chunks", every_split(REPLIES))
def test_replies_split_anywhere(chunks: list[bytes]) -> None:
    values = feed(RespCodec(), chunks)
    assert values == VALUES
    assert type(values[0]) is SimpleString and type(values[1]) is RespError
    assert values[1].kind == "ERR"


def test_nesting_up_to_max_depth_and_no_deeper() -> None:
    codec = RespCodec(max_depth=3)
    assert feed(codec, [b"*1\r\n" * 3 + b":1\r\n"]) == [[[[1]]]]
    with pytest.raises(FrameTooLarge, match=r"nested deeper than 3 \(max_depth\)"):
        codec.decode(ReadBuffer(b"*1\r\n" * 4))  # refused before the innermost arrives


def test_hostile_replies() -> None:
    with pytest.raises(FrameTooLarge, match="max_line"):
        RespCodec(max_line=8).decode(ReadBuffer(b"+" + b"x" * 20))
    with pytest.raises(FrameTooLarge, match="max_bulk"):
        RespCodec(max_bulk=8).decode(ReadBuffer(b"$9\r\n"))
    with pytest.raises(FrameTooLarge, match="max_array"):
        RespCodec(max_array=8).decode(ReadBuffer(b"*9\r\n"))
    with pytest.raises(FrameError, match="unknown type byte '!'"):
        RespCodec().decode(ReadBuffer(b"!3\r\n"))
    with pytest.raises(FrameError, match="invalid integer length"):
        RespCodec().decode(ReadBuffer(b":1.5\r\n"))
    with pytest.raises(TruncatedFrame):
        feed(RespCodec(), [b"*2\r\n:1\r\n"])


def test_limits_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_bulk must be >= 1"):
        CommandCodec(max_bulk=0)
    with pytest.raises(ValueError, match="max_depth must be >= 1"):
        RespCodec(max_depth=0)


# -- encoding ----------------------------------------------------------------------------------


def test_encode_every_kind() -> None:
    frame = [SimpleString("OK"), RespError("ERR no"), 7, b"b", "é", None, NULL, (1, [])]
    assert resp.encode(frame) == (
        b"*8\r\n+OK\r\n-ERR no\r\n:7\r\n$1\r\nb\r\n$2\r\n\xc3\xa9\r\n$-1\r\n$-1\r\n"
        b"*2\r\n:1\r\n*0\r\n"
    )
    assert resp.bulk(b"xy") == b"$2\r\nxy\r\n"
    assert resp.error("ERR a\r\nb") == b"-ERR a  b\r\n"


def test_encode_refuses_what_resp2_cannot_say() -> None:
    with pytest.raises(ValueError, match=r"must not contain \\r or \\n"):
        resp.encode(SimpleString("O\r\nK"))
    with pytest.raises(FrameTooLarge):
        CommandCodec(max_bulk=2).encode(b"abc")
    with pytest.raises(TypeError, match="RESP2 has no form for float"):
        resp.encode(1.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="bool"):
        resp.encode(True)


# -- round trips -------------------------------------------------------------------------------

line_text = st.text(
    st.characters(blacklist_categories=["Cs"], blacklist_characters="\r\n"), max_size=20
)
values: st.SearchStrategy[Any] = st.recursive(
    st.one_of(
        st.binary(max_size=40),
        st.integers(min_value=-(2**63), max_value=2**63 - 1),
        st.just(NULL),
        line_text.map(SimpleString),
        line_text.map(RespError),
    ),
    lambda inner: st.lists(inner, max_size=5),
    max_leaves=20,
)


@given(st.lists(values, max_size=5), st.data())
def test_values_round_trip_split_anywhere(frames: list[Any], data: st.DataObject) -> None:
    wire = b"".join(resp.encode(frame) for frame in frames)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(wire)), max_size=4)))
    chunks = [wire[a:b] for a, b in zip([0, *cuts], [*cuts, len(wire)], strict=True)]
    assert feed(RespCodec(), chunks) == frames


@given(
    st.lists(st.lists(st.binary(max_size=30), min_size=1, max_size=6), max_size=6),
    st.integers(1, 7),
)
def test_commands_round_trip_in_any_chunking(commands: list[list[bytes]], step: int) -> None:
    wire = b"".join(resp.encode(command) for command in commands)
    chunks = [wire[i : i + step] for i in range(0, len(wire), step)]
    assert feed(CommandCodec(), chunks) == commands


@given(st.binary(max_size=200))
def test_garbage_never_crashes_the_command_codec(data: bytes) -> None:
    try:
        feed(CommandCodec(max_bulk=64, max_array=8, max_line=32), [data])
    except FrameError:
        pass
