"""The WebSocket chat in a real browser: Debian's chromium, driven by playwright.

Two tabs open ``examples/ws_chat.py``'s page; what one sends, the other shows. Playwright
drives the system's chromium (``executable_path``), so no browser is downloaded; as root,
chromium needs ``--no-sandbox``. A screenshot of the page is saved as a test artefact in
``$TEST_ARTIFACTS`` (default: the pytest temporary directory); the docs show one taken so.

Skipped when chromium or playwright is missing (``apt-get install -y chromium``,
``pip install playwright``), except under CI=true, where that fails.
"""

from __future__ import annotations

import asyncio
import os
import re
import select
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "ws_chat.py"
LISTENING = re.compile(r"^listening on http://127\.0\.0\.1:(\d+)$")
GUARD = 30.0  # seconds; a hang guard, not a performance claim
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _need(what: str, why: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{what} is missing; the CI run must have it ({why})")
    pytest.skip(f"{what} is missing: {why}")


def test_two_browser_tabs_chat_over_the_websocket(tmp_path: Path) -> None:
    if CHROMIUM is None:
        _need("chromium", "apt-get install -y chromium")
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        _need("playwright", "pip install playwright")
    artifacts = Path(os.environ.get("TEST_ARTIFACTS", tmp_path))
    artifacts.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        [sys.executable, str(EXAMPLE), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], GUARD)
        assert ready, "ws_chat printed no listening line"
        match = LISTENING.match(proc.stdout.readline().rstrip("\n"))
        assert match
        url = f"http://127.0.0.1:{match[1]}/chat"

        async def chat() -> None:
            async with async_playwright() as p:
                browser = await p.chromium.launch(
                    executable_path=CHROMIUM, args=["--no-sandbox", "--headless=new"]
                )
                try:
                    alice, bob = await browser.new_page(), await browser.new_page()
                    for page in (alice, bob):
                        await page.goto(url, timeout=GUARD * 1000)
                        await page.wait_for_function(
                            "document.getElementById('status').textContent === 'connected'",
                            timeout=GUARD * 1000,
                        )
                    await alice.fill("#text", "/nick alice")
                    await alice.press("#text", "Enter")
                    await alice.fill("#text", "hello from the first tab")
                    await alice.press("#text", "Enter")
                    await bob.wait_for_function(
                        "document.getElementById('log').textContent"
                        ".includes('<alice> hello from the first tab')",
                        timeout=GUARD * 1000,
                    )
                    await bob.fill("#text", "and back from the second")
                    await bob.press("#text", "Enter")
                    await alice.wait_for_function(
                        "document.getElementById('log').textContent"
                        ".includes('and back from the second')",
                        timeout=GUARD * 1000,
                    )
                    await alice.screenshot(path=str(artifacts / "ws-chat.png"))
                finally:
                    await browser.close()

        asyncio.run(asyncio.wait_for(chat(), 2 * GUARD))
        assert (artifacts / "ws-chat.png").stat().st_size > 0
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=GUARD)
    assert proc.returncode == 0, err
