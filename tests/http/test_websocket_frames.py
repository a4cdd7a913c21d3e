"""The WebSocket's own framing shortcut: whole plain data frames are cut out of the stream and
unmasked by us, every other frame goes to wsproto. These tests send frames byte by byte,
pipelined, mixed with fragments and control frames, and malformed, and check that the two
paths never disagree about where a frame starts."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio
import trio.testing
from wsproto.connection import Connection as WsConnection
from wsproto.connection import ConnectionType
from wsproto.events import BytesMessage, CloseConnection, Event, Message, Pong, TextMessage
from wsproto.frame_protocol import Opcode

from runtime.http import (
    ConnectionClosed,
    HttpServer,
    Router,
    WebSocket,
    WebSocketConfig,
    ws_connect,
)
from runtime.http.websocket import _frame, _mask
from runtime.testing import MemoryConnection, MemoryListener

KEY = base64.b64encode(os.urandom(16)).decode()
HANDSHAKE = (
    "GET /echo HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    f"Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
).encode()


def masked(first: int, payload: bytes, *, length_bytes: int = 0) -> bytes:
    """A client frame built by hand: ``first`` is the FIN/RSV/opcode byte. ``length_bytes``
    forces a 2- or 8-byte length field (non-minimal when the payload is short)."""
    key = os.urandom(4)
    n = len(payload)
    if length_bytes == 2 or (not length_bytes and 126 <= n < 65536):
        head = bytes((first, 0x80 | 126)) + n.to_bytes(2, "big")
    elif length_bytes == 8 or (not length_bytes and n >= 65536):
        head = bytes((first, 0x80 | 127)) + n.to_bytes(8, "big")
    else:
        head = bytes((first, 0x80 | n))
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


async def echo(ws: WebSocket) -> None:
    async for message in ws:
        await ws.send(message)


@asynccontextmanager
async def server(config: WebSocketConfig | None = None) -> AsyncIterator[MemoryConnection]:
    router = Router()
    router.ws("/echo", echo, config)
    listener = MemoryListener()
    async with trio.open_nursery() as nursery:
        await nursery.start(HttpServer(router, [listener]).serve)
        client = await listener.connect()
        await client.send_all(HANDSHAKE)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = await client.receive_some()
            assert chunk, data
            data += chunk
        assert data.startswith(b"HTTP/1.1 101 "), data
        yield client
        nursery.cancel_scope.cancel()


class Reader:
    """wsproto's client reading what the server sends (frames it checks strictly)."""

    def __init__(self, stream: MemoryConnection) -> None:
        self.stream = stream
        self.ws = WsConnection(ConnectionType.CLIENT)
        self.pending: list[Event] = []

    async def next(self) -> Event:
        while not self.pending:
            data = await self.stream.receive_some()
            self.ws.receive_data(data or None)
            self.pending += list(self.ws.events())
        return self.pending.pop(0)

    async def messages(self, count: int) -> list[Any]:
        """The next ``count`` whole messages (pongs kept aside in ``pongs``)."""
        got: list[Any] = []
        self.pongs: list[bytes] = []
        parts: list[Any] = []
        while len(got) < count:
            event = await self.next()
            if isinstance(event, Pong):
                self.pongs.append(event.payload)
            elif isinstance(event, Message):
                parts.append(event.data)
                if event.message_finished:
                    got.append(("" if isinstance(event, TextMessage) else b"").join(parts))
                    parts = []
            else:
                raise AssertionError(f"unexpected {event!r}")
        return got

    async def close_code(self) -> int:
        while True:
            event = await self.next()
            if isinstance(event, CloseConnection):
                return int(event.code)


SIZES = [0, 1, 125, 126, 127, 65535, 65536, 70000]


def mixed_messages() -> list[str | bytes]:
    out: list[str | bytes] = []
    for n in SIZES:
        out.append(os.urandom(n))
        out.append(("é" * n)[: n // 2])  # two bytes each in UTF-8
    return out


def encode(message: str | bytes) -> bytes:
    if isinstance(message, str):
        return masked(0x81, message.encode())
    return masked(0x82, message)


@pytest.mark.parametrize("chunk", [1, 7, 1000, None], ids=["byte", "7", "1000", "all"])
async def test_pipelined_messages_of_every_length_class_come_back_in_order(
    chunk: int | None,
) -> None:
    messages = mixed_messages()
    wire = b"".join(encode(m) for m in messages)
    if chunk == 1:  # byte by byte is slow for the big ones: the small ones are enough
        messages = [m for m in messages if len(m) <= 300]
        wire = b"".join(encode(m) for m in messages)
    with trio.fail_after(30):
        async with server() as client, trio.open_nursery() as nursery:

            async def write() -> None:
                step = chunk or len(wire)
                for i in range(0, len(wire), step):
                    await client.send_all(wire[i : i + step])

            nursery.start_soon(write)
            assert await Reader(client).messages(len(messages)) == messages


async def test_fragments_and_control_frames_between_plain_frames_keep_their_order() -> None:
    wire = b"".join(
        [
            masked(0x81, b"one"),
            masked(0x01, b"tw"),  # a text message in three fragments...
            masked(0x89, b"ping-1"),  # ...with a ping between them
            masked(0x00, b"o-"),
            masked(0x80, b"frag"),
            masked(0x82, b"\x00three"),
            masked(0x89, b"ping-2"),
            masked(0x02, b"fo"),  # binary in two fragments
            masked(0x80, b"ur"),
            masked(0x81, b"five"),
        ]
    )
    with trio.fail_after(10):
        async with server() as client:
            await client.send_all(wire)
            reader = Reader(client)
            assert await reader.messages(5) == ["one", "two-frag", b"\x00three", b"four", "five"]
            assert reader.pongs == [b"ping-1", b"ping-2"]


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        (masked(0x81, b"\xff\xfe"), 1007),  # a whole text frame that is not UTF-8
        (masked(0x01, b"\xce") + masked(0x80, b"\xff"), 1007),  # split across fragments
        (masked(0x81, b"hello", length_bytes=2), 1002),  # 2-byte length for 5 bytes
        (masked(0x82, b"x" * 200, length_bytes=8), 1002),  # 8-byte length for 200 bytes
        (masked(0xC1, b"hello"), 1002),  # RSV1 without an extension
        (masked(0x80, b"hello"), 1002),  # a continuation with nothing to continue
        (masked(0x01, b"he") + masked(0x81, b"llo"), 1002),  # a new message mid-fragments
        (masked(0x83, b"hello"), 1002),  # reserved opcode
        (b"\x82\x05hello", 1002),  # unmasked
    ],
    ids=[
        "utf8",
        "utf8-fragments",
        "non-minimal-16",
        "non-minimal-64",
        "rsv1",
        "lone-continuation",
        "new-message-mid-fragments",
        "reserved-opcode",
        "unmasked",
    ],
)
async def test_a_bad_frame_closes_with_its_code_after_good_ones(frame: bytes, code: int) -> None:
    with trio.fail_after(10):
        async with server() as client:
            await client.send_all(masked(0x81, b"before") + frame + masked(0x81, b"after"))
            reader = Reader(client)
            assert await reader.messages(1) == ["before"]
            assert await reader.close_code() == code


@pytest.mark.parametrize("fragmented", [False, True])
async def test_the_size_limit_is_exact(fragmented: bool) -> None:
    limit = 1000

    def frames(n: int) -> bytes:
        if fragmented:
            return masked(0x02, b"a" * (n - 10)) + masked(0x80, b"b" * 10)
        return masked(0x82, b"a" * (n - 10) + b"b" * 10)

    with trio.fail_after(10):
        async with server(WebSocketConfig(max_message_size=limit)) as client:
            await client.send_all(frames(limit) + frames(limit + 1))
            reader = Reader(client)
            assert await reader.messages(1) == [b"a" * (limit - 10) + b"b" * 10]
            assert await reader.close_code() == 1009


async def test_a_close_right_behind_a_message_is_answered_after_it() -> None:
    with trio.fail_after(10):
        async with server() as client:
            client_ws = WsConnection(ConnectionType.CLIENT)
            close = client_ws.send(CloseConnection(code=1000, reason="done"))
            await client.send_all(masked(0x81, b"last") + close)
            reader = Reader(client)
            assert await reader.messages(1) == ["last"]
            assert await reader.close_code() == 1000
            assert await client.receive_some() == b""


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("client", [False, True], ids=["server", "client"])
def test_our_frames_are_what_wsproto_reads(n: int, client: bool) -> None:
    payload = os.urandom(n)
    reader = WsConnection(ConnectionType.SERVER if client else ConnectionType.CLIENT)
    wire = _frame(Opcode.BINARY, payload, client)
    assert bool(wire[1] & 0x80) is client  # only a client masks
    reader.receive_data(wire)
    events = list(reader.events())
    assert b"".join(e.data for e in events if isinstance(e, BytesMessage)) == payload
    assert isinstance(events[-1], BytesMessage)
    assert events[-1].message_finished


def test_masking_twice_gives_the_data_back() -> None:
    key = b"\x12\x34\x56\x78"
    for n in (0, 1, 3, 4, 5, 1001):
        data = os.urandom(n)
        once = _mask(data, key)
        assert once == bytes(b ^ key[i % 4] for i, b in enumerate(data))
        assert _mask(once, key) == data


@asynccontextmanager
async def raw_server(frames: bytes) -> AsyncIterator[Any]:
    """A hand-written WebSocket server: answers the handshake, then sends ``frames``."""
    listener = MemoryListener()

    class Connect:
        async def connect(self, host: str, port: int) -> MemoryConnection:
            return await listener.connect()

    async def serve_one() -> None:
        (stream,) = await listener.accept_batch(1)
        data = b""
        while b"\r\n\r\n" not in data:
            data += await stream.receive_some()
        key = next(
            line.split(b":", 1)[1].strip()
            for line in data.split(b"\r\n")
            if line.lower().startswith(b"sec-websocket-key:")
        )
        accept = base64.b64encode(
            hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest()
        )
        await stream.send_all(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n" + frames
        )
        reader = WsConnection(ConnectionType.SERVER)  # answers the client's close
        while data := await stream.receive_some():
            reader.receive_data(data)
            for event in reader.events():
                if isinstance(event, CloseConnection):
                    with contextlib.suppress(trio.BrokenResourceError):  # it may not wait
                        await stream.send_all(reader.send(event.response()))
                    await stream.aclose()
                    return

    async with trio.open_nursery() as nursery:
        nursery.start_soon(serve_one)
        yield Connect()
        nursery.cancel_scope.cancel()


def unmasked(first: int, payload: bytes) -> bytes:
    n = len(payload)
    if n < 126:
        return bytes((first, n)) + payload
    if n < 65536:
        return bytes((first, 126)) + n.to_bytes(2, "big") + payload
    return bytes((first, 127)) + n.to_bytes(8, "big") + payload


async def test_our_client_reads_plain_and_fragmented_server_frames() -> None:
    big = os.urandom(70000)
    frames = (
        unmasked(0x81, b"hi")
        + unmasked(0x82, big)
        + unmasked(0x01, b"a")
        + unmasked(0x80, b"b")
        + unmasked(0x81, "ü".encode())
    )
    with trio.fail_after(10):
        async with raw_server(frames) as c, ws_connect("ws://x/", connector=c) as ws:
            assert [await ws.receive() for _ in range(4)] == ["hi", big, "ab", "ü"]


async def test_our_client_closes_1002_on_a_masked_server_frame() -> None:
    with trio.fail_after(10):
        async with raw_server(masked(0x81, b"hi")) as c, ws_connect("ws://x/", connector=c) as ws:
            with pytest.raises(ConnectionClosed) as info:
                await ws.receive()
            assert info.value.code == 1002
