"""The WebSocket examples: ``examples/ws_chat.py`` and ``examples/ws_echo.py`` as real
processes (real sockets, real signals), and the chat room in process for the slow client."""

from __future__ import annotations

import http.client
import json
import re
import select
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing
import trio_websocket

from runtime._demo import load_example
from runtime.http import ConnectionClosed, WebSocket, ws_connect

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
HANG_GUARD = 30.0  # seconds; a hang guard for slow machines, not a performance claim
HTTP_LISTENING = re.compile(r"^listening on http://127\.0\.0\.1:(\d+)$")
WS_LISTENING = re.compile(r"^listening on ws://127\.0\.0\.1:(\d+)$")

ws_chat = load_example("ws_chat")


class ServerProcess:
    """An example started with ``--port 0``; ``port`` once it printed its listening line."""

    def __init__(self, script: str, listening: re.Pattern[str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(EXAMPLES / script), "--port", "0"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], HANG_GUARD)
        assert ready, f"{script} printed no listening line within {HANG_GUARD} s"
        line = self.proc.stdout.readline().rstrip("\n")
        match = listening.match(line)
        assert match, f"{script}: unexpected first line {line!r}"
        self.port = int(match[1])

    def stop(self, sig: int = signal.SIGTERM) -> tuple[int, str]:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        _, err = self.proc.communicate(timeout=HANG_GUARD)
        return self.proc.returncode, err

    def wait(self) -> tuple[int, str]:
        """Wait for the exit after a signal already sent (a second SIGTERM would force it)."""
        _, err = self.proc.communicate(timeout=HANG_GUARD)
        return self.proc.returncode, err

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()


@pytest.fixture
def chat() -> Iterator[ServerProcess]:
    server = ServerProcess("ws_chat.py", HTTP_LISTENING)
    yield server
    server.kill()


@pytest.fixture
def echo() -> Iterator[ServerProcess]:
    server = ServerProcess("ws_echo.py", WS_LISTENING)
    yield server
    server.kill()


async def next_event(ws: WebSocket) -> dict[str, Any]:
    message = await ws.receive()
    assert isinstance(message, str), message
    event = json.loads(message)
    assert isinstance(event, dict)
    return event


def notice(text: str) -> dict[str, Any]:
    return {"type": "notice", "text": text}


# -- ws_chat as a process -----------------------------------------------------------------


async def test_chat_two_clients_exchange_messages(chat: ServerProcess) -> None:
    url = f"ws://127.0.0.1:{chat.port}/chat/ws"
    with trio.fail_after(HANG_GUARD):
        async with ws_connect(url) as a:
            assert await next_event(a) == notice("guest1 joined")
            async with ws_connect(url) as b:
                assert await next_event(a) == notice("guest2 joined")
                assert await next_event(b) == notice("guest2 joined")
                await a.send("/nick ann")
                assert await next_event(a) == notice("guest1 is now known as ann")
                assert await next_event(b) == notice("guest1 is now known as ann")
                await a.send("hi bob")
                said = {"type": "message", "from": "ann", "text": "hi bob"}
                assert await next_event(a) == said
                assert await next_event(b) == said
                await b.send("/nick ann")  # taken: only b hears why
                assert await next_event(b) == {"type": "error", "text": "ann is taken"}
                await b.send("héllo ✓")
                said = {"type": "message", "from": "guest2", "text": "héllo ✓"}
                assert await next_event(a) == said
                assert await next_event(b) == said
            assert await next_event(a) == notice("guest2 left")
    code, err = chat.stop()
    assert code == 0, err
    assert "Traceback" not in err


def test_chat_page_is_html_that_opens_a_websocket(chat: ServerProcess) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", chat.port, timeout=HANG_GUARD)
    try:
        conn.request("GET", "/chat")
        response = conn.getresponse()
        body = response.read().decode()
        assert response.status == 200
        assert response.getheader("content-type") == "text/html; charset=utf-8"
        assert body.startswith("<!doctype html>")
        assert "new WebSocket(" in body
        assert '"/ws"' in body  # the page finds the WebSocket next to itself
        conn.request("GET", "/chat/ws")  # a plain request to the WebSocket route
        response = conn.getresponse()
        response.read()
        assert response.status == 426
        assert response.getheader("upgrade") == "websocket"
    finally:
        conn.close()
    assert chat.stop()[0] == 0


async def test_chat_sigterm_closes_clients_with_1001_and_exits_zero(chat: ServerProcess) -> None:
    url = f"ws://127.0.0.1:{chat.port}/chat/ws"
    with trio.fail_after(HANG_GUARD):
        async with ws_connect(url) as a, ws_connect(url) as b:
            assert await next_event(a) == notice("guest1 joined")
            assert await next_event(a) == notice("guest2 joined")
            assert await next_event(b) == notice("guest2 joined")
            chat.proc.send_signal(signal.SIGTERM)
            for ws in (a, b):
                with pytest.raises(ConnectionClosed) as info:
                    while True:  # a "left" notice may come before the close
                        await ws.receive()
                assert info.value.code == 1001
    code, err = chat.wait()
    assert code == 0, err
    assert "Traceback" not in err


# -- ws_echo as a process, against a client we did not write ------------------------------


async def test_echo_text_and_binary_with_trio_websocket(echo: ServerProcess) -> None:
    with trio.fail_after(HANG_GUARD):
        async with trio_websocket.open_websocket_url(f"ws://127.0.0.1:{echo.port}/any") as ws:
            await ws.send_message("hello ✓")
            assert await ws.get_message() == "hello ✓"
            await ws.send_message(b"\x00\xffbinary")
            assert await ws.get_message() == b"\x00\xffbinary"
            big = "x" * 100_000
            await ws.send_message(big)
            assert await ws.get_message() == big
    code, err = echo.stop()
    assert code == 0, err
    assert "Traceback" not in err


async def test_echo_sigterm_with_a_client_connected_closes_1001_and_exits_zero(
    echo: ServerProcess,
) -> None:
    with trio.fail_after(HANG_GUARD):
        async with trio_websocket.open_websocket_url(f"ws://127.0.0.1:{echo.port}/") as ws:
            await ws.send_message("before")
            assert await ws.get_message() == "before"
            echo.proc.send_signal(signal.SIGTERM)
            with pytest.raises(trio_websocket.ConnectionClosed) as info:
                await ws.get_message()
            reason = info.value.reason
            assert reason is not None and reason.code == 1001
    code, err = echo.wait()
    assert code == 0, err
    assert "Traceback" not in err


# -- the chat room in process: the slow client --------------------------------------------


class GatedStream(trio.abc.Stream):
    """A stream whose sends wait until ``gate`` is set: a peer that stopped reading, with
    every buffer on the way full. A cancelled send sent nothing."""

    def __init__(self, inner: trio.abc.Stream) -> None:
        self.inner = inner
        self.gate = trio.Event()

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self.gate.wait()
        await self.inner.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self.gate.wait()

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        return await self.inner.receive_some(max_bytes)

    async def aclose(self) -> None:
        await self.inner.aclose()


def ws_pair() -> tuple[WebSocket, WebSocket, GatedStream]:
    """A server WebSocket, its client over an in-memory stream, and the server's send side
    (its gate open: set to clear it for a client that stops reading)."""
    server_stream, client_stream = trio.testing.memory_stream_pair()
    gated = GatedStream(server_stream)
    gated.gate.set()
    return WebSocket(gated), WebSocket(client_stream, client=True), gated


async def test_slow_client_is_dropped_with_a_notice(mock_clock: trio.abc.Clock) -> None:
    """The clock stands still (a MockClock that never jumps): no timeout plays a part."""
    room = ws_chat.ChatRoom(backlog=4, send_timeout=5.0)
    fast_server, fast, _ = ws_pair()
    slow_server, slow, slow_sends = ws_pair()
    slow_sends.gate = trio.Event()  # it stopped reading
    async with trio.open_nursery() as nursery:
        nursery.start_soon(room.handle, fast_server)
        assert await next_event(fast) == notice("guest1 joined")
        nursery.start_soon(room.handle, slow_server)
        assert await next_event(fast) == notice("guest2 joined")
        # The slow client reads nothing: its writer is stuck sending "guest2 joined", and
        # every message after that is one more behind. The 4th (the backlog) drops it.
        for i in range(4):
            await fast.send(f"m{i}")
            said = await next_event(fast)
            assert said == {"type": "message", "from": "guest1", "text": f"m{i}"}
            assert ("guest2" in room.clients) == (i < 3)
        assert await next_event(fast) == notice("guest2 was dropped (too slow)")
        # The room goes on without it.
        await fast.send("still here")
        assert (await next_event(fast))["text"] == "still here"
        assert list(room.clients) == ["guest1"]
        # When the slow client reads at last, its connection has ended: the stuck send was
        # cut short, perhaps mid-frame, so no close frame could follow it (1006).
        slow_sends.gate.set()
        with pytest.raises(ConnectionClosed) as info:
            while True:
                await slow.receive()
        assert info.value.code == 1006
        await fast.aclose()
        await trio.testing.wait_all_tasks_blocked()
        assert await room.sender.send(ws_chat.Message("nobody")) == 0  # both have left
        nursery.cancel_scope.cancel()


async def test_chat_binary_message_gets_an_error_to_that_client_only(
    autojump_clock: trio.abc.Clock,
) -> None:
    room = ws_chat.ChatRoom()
    a_server, a, _ = ws_pair()
    b_server, b, _ = ws_pair()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(room.handle, a_server)
        assert await next_event(a) == notice("guest1 joined")
        nursery.start_soon(room.handle, b_server)
        assert await next_event(a) == notice("guest2 joined")
        assert await next_event(b) == notice("guest2 joined")
        await b.send(b"\x01")
        assert await next_event(b) == {"type": "error", "text": "send text messages"}
        await b.send("after")
        assert await next_event(a) == {"type": "message", "from": "guest2", "text": "after"}
        nursery.cancel_scope.cancel()
