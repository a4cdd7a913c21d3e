"""The Try this of docs/tutorial/ws-chat.md: each stated result, and the page still says it.

The script the page shows runs as it is, against examples/ws_chat.py as a process; a client
of the test's own stands in for the browser tab.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import trio
from _tryit import Examples, try_this

from runtime.http import WebSocket, ws_connect

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "ws_chat.py"
PAGE = ROOT / "docs" / "tutorial" / "ws-chat.md"
HANG_GUARD = 30.0  # seconds; a hang guard for slow machines, not a performance claim


def page() -> str:
    """The page's Try this section, its lines joined (a stated result may wrap)."""
    return try_this(PAGE)


def script(port: int, message: str | None = None) -> str:
    """The page's ``python -c`` script, for ``port``, sending ``message`` (a Python
    expression) instead of its greeting."""
    match = re.search(r'^\$ python -c "\n(.*?)^"$', PAGE.read_text(encoding="utf-8"), re.M | re.S)
    assert match, "the page shows a python -c script"
    code = match[1]
    assert "127.0.0.1:8000" in code and "'hello from Python'" in code
    code = code.replace("127.0.0.1:8000", f"127.0.0.1:{port}")
    return code if message is None else code.replace("'hello from Python'", message)


@pytest.fixture
def start(examples: Examples) -> Callable[..., int]:
    """Start examples/ws_chat.py with some arguments; its port, from its listening line."""
    return lambda *args: examples.start(EXAMPLE, *args)[1]


async def run_script(code: str) -> subprocess.CompletedProcess[bytes]:
    return await trio.run_process(
        [sys.executable, "-c", code], capture_stdout=True, capture_stderr=True, check=False
    )


async def event(ws: WebSocket) -> dict[str, Any]:
    message = await ws.receive()
    assert isinstance(message, str), message
    value = json.loads(message)
    assert isinstance(value, dict)
    return value


def shown(value: dict[str, Any]) -> str:
    """A message as the page's JavaScript shows it in the tab."""
    return f"<{value['from']}> {value['text']}" if value["type"] == "message" else value["text"]


async def test_the_tab_sees_the_script_join_speak_and_leave(start: Callable[..., int]) -> None:
    port = start()
    with trio.fail_after(HANG_GUARD):
        async with ws_connect(f"ws://127.0.0.1:{port}/chat/ws") as tab:
            assert shown(await event(tab)) == "guest1 joined"
            result = await run_script(script(port))
            assert result.returncode == 0, result.stderr.decode()
            printed = [json.loads(line) for line in result.stdout.decode().splitlines()]
            said = {"type": "message", "from": "guest2", "text": "hello from Python"}
            assert printed == [{"type": "notice", "text": "guest2 joined"}, said]
            seen = [shown(await event(tab)) for _ in range(3)]
    assert seen == ["guest2 joined", "<guest2> hello from Python", "guest2 left"]
    page_js = EXAMPLE.read_text(encoding="utf-8")
    assert '"<" + m.from + "> " + m.text' in page_js  # how the tab shows a message
    section = page()
    assert "The tab shows `guest2 joined`, `<guest2> hello from Python` and `guest2 left`" in (
        section
    )


async def test_a_message_over_4096_bytes_closes_with_1009(start: Callable[..., int]) -> None:
    port = start()
    with trio.fail_after(HANG_GUARD):
        result = await run_script(script(port, "'x' * 5000"))
    assert result.returncode == 1
    error = "ConnectionClosed: WebSocket closed: 1009 message over 4096 bytes"
    assert error in result.stderr.decode()
    assert f"raises `{error}`" in page()
    assert "Send `'x' * 5000` instead of `'hello from Python'`" in page()


async def test_with_max_message_8192_the_message_comes_back(start: Callable[..., int]) -> None:
    port = start("--max-message", "8192")
    with trio.fail_after(HANG_GUARD):
        result = await run_script(script(port, "'x' * 5000"))
    assert result.returncode == 0, result.stderr.decode()
    last = json.loads(result.stdout.decode().splitlines()[-1])
    assert last == {"type": "message", "from": "guest1", "text": "x" * 5000}
    assert "Restart the server with `--max-message 8192` and the same message comes back" in (
        page()
    )


async def test_a_bad_nick_is_an_error_to_its_client_only(start: Callable[..., int]) -> None:
    port = start()
    with trio.fail_after(HANG_GUARD):
        async with ws_connect(f"ws://127.0.0.1:{port}/chat/ws") as tab:
            assert shown(await event(tab)) == "guest1 joined"
            result = await run_script(script(port, "'/nick a b'"))
            assert result.returncode == 0, result.stderr.decode()
            error = result.stdout.decode().splitlines()[-1]
            assert error == (
                '{"type":"error","text":"nicks are 1-32 letters, digits, \'_\' or \'-\'"}'
            )
            # the tab hears the join and the leave, and nothing between them
            seen = [shown(await event(tab)) for _ in range(2)]
            assert seen == ["guest2 joined", "guest2 left"]
    assert f"The script prints `{error}`, and the tab shows nothing of it" in page()
