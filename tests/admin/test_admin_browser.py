"""The admin page in a real browser: Debian's chromium, driven by playwright.

Two tests. One serves the page with canned ``/tasks`` and ``/tasks/<id>/stack`` answers from
a stdlib ``http.server`` the test controls, for what a live process can't be made to do on
cue: a task named like markup, a poll that fails and then succeeds again. The other opens
the page of a real ``python -m runtime demo`` with one echo connection open, and checks the
tree, a stack, the filter, a 404 for an ended task and the notice once the demo has exited.

Playwright drives the system's chromium (``executable_path``, ``--no-sandbox`` as root), so
no browser is downloaded. Waits are playwright's own, with timeouts. A screenshot goes to
``$TEST_ARTIFACTS`` (default: the pytest temporary directory); with ``UPDATE_DOCS_ASSETS=1``
the demo's also replaces ``docs/assets/admin-tasks.png``.

Skipped when chromium or playwright is missing (``apt-get install -y chromium``,
``pip install playwright``), except under CI=true, where that fails.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from runtime.admin._page import render_page

ROOT = Path(__file__).resolve().parents[2]
DOCS_ASSET = ROOT / "docs" / "assets" / "admin-tasks.png"
GUARD = 30.0  # seconds; a hang guard, not a performance claim
WAIT = {"timeout": GUARD * 1000}
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DEMO = [sys.executable, "-m", "runtime", "demo", "--port", "0", "--chat-port", "0"]
DEMO += ["--http-port", "0", "--admin-port", "0"]
ECHO_LINE = re.compile(r"^listening on tcp://127\.0\.0\.1:(\d+)$")
ADMIN_LINE = re.compile(r"^admin on (http://127\.0\.0\.1:\d+)$")

# A node of the page's tree by the name it shows (JS, for wait_for_function and evaluate).
FIND = """(name) => [...document.querySelectorAll('#tree details.node')]
    .find((d) => d.querySelector(':scope > summary > .name').textContent === name)"""


def _need(what: str, why: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{what} is missing; the CI run must have it ({why})")
    pytest.skip(f"{what} is missing: {why}")


def _artifacts(tmp_path: Path) -> Path:
    artifacts = Path(os.environ.get("TEST_ARTIFACTS", tmp_path))
    artifacts.mkdir(parents=True, exist_ok=True)
    return artifacts


def _require_browser() -> None:
    if CHROMIUM is None:
        _need("chromium", "apt-get install -y chromium")
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        _need("playwright", "pip install playwright")


@asynccontextmanager
async def _page(errors: list[str]) -> AsyncIterator[Any]:
    """A chromium page; JS exceptions and console errors are appended to ``errors``."""
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        browser = await p.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--headless=new"]
        )
        try:
            page = await browser.new_page(viewport={"width": 1360, "height": 820})
            page.on("pageerror", lambda exc: errors.append(f"pageerror: {exc}"))
            page.on(
                "console",
                lambda msg: errors.append(f"console: {msg.text}") if msg.type == "error" else None,
            )
            yield page
        finally:
            await browser.close()


# -- against canned answers --------------------------------------------------------------

MARKUP = '<img src=x onerror="window.pwned = 1">'
CANNED: dict[str, Any] = {
    "pid": 4242,
    "now": 100.0,
    "runtime": {
        "alive": 3,
        "spawned": 7,
        "completed": 2,
        "failed": 1,
        "cancelled": 1,
        "shutting_down": False,
    },
    "tasks": [
        {"id": 1, "parent": None, "name": "runtime", "kind": "root", "age": 100.0},
        {"id": 2, "parent": 1, "name": "runtime.time.driver", "kind": "system", "age": None},
        {"id": 3, "parent": 1, "name": "serve_echo", "kind": "task", "age": 99.5},
        {"id": 4, "parent": 3, "name": "Server._accept_loop", "kind": "trio", "age": None},
        {"id": 5, "parent": 3, "name": "connection", "kind": "connection", "age": 3725.0},
        {"id": 6, "parent": 1, "name": MARKUP, "kind": "task", "age": 0.25},
        {"id": 7, "parent": 6, "name": "worker", "kind": "joinset", "age": 0.2},
    ],
}
for _task in CANNED["tasks"]:
    _task.update(state="running", waiting_in=f"wait_{_task['id']}", detail=None)
CANNED["tasks"][4]["detail"] = "echo: peer 127.0.0.1:50312 <b>bold</b>"
STACK_5 = {
    "id": 5,
    "name": "connection",
    "frames": [
        {"file": "/app/echo.py", "line": 12, "function": "handle", "code": "await s.recv()"},
        {"file": "/lib/stream.py", "line": 80, "function": "receive_some", "code": "x < y"},
    ],
}


class _Canned(BaseHTTPRequestHandler):
    down = False  # set by the test: the "process" answers nothing
    answer: dict[str, Any] = CANNED  # what /tasks says; the test may swap in another

    def do_GET(self) -> None:
        if _Canned.down:
            self.close_connection = True  # no response at all, as from a dead process
            return
        path = urlsplit(self.path).path
        if path == "/":
            self._send(200, "text/html; charset=utf-8", render_page(MARKUP).encode())
        elif path == "/tasks":
            self._send(200, "application/json", json.dumps(_Canned.answer).encode())
        elif path == "/tasks/5/stack":
            self._send(200, "application/json", json.dumps(STACK_5).encode())
        else:
            task = path.split("/")[2] if path.startswith("/tasks/") else "?"
            body = json.dumps({"error": f"no live task {task}"}).encode()
            self._send(404, "application/json", body)

    def _send(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def _canned_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Canned)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        _Canned.down = False
        _Canned.answer = CANNED
        server.shutdown()
        server.server_close()
        thread.join(GUARD)


async def _polls(page: Any) -> int:
    return int(await page.evaluate("Number(document.body.dataset.polls || 0)"))


async def _wait_polls(page: Any, more: int) -> None:
    """Wait until the page has finished ``more`` further polls."""
    target = await _polls(page) + more
    await page.wait_for_function(
        "(n) => Number(document.body.dataset.polls || 0) >= n", arg=target, **WAIT
    )


def test_page_draws_canned_tasks_as_text_and_survives_a_failing_poll(
    tmp_path: Path,
) -> None:
    _require_browser()
    errors: list[str] = []
    with _canned_server() as url:

        async def drive() -> None:
            async with _page(errors) as page:
                await page.goto(f"{url}/?interval=0.2", **WAIT)
                await page.wait_for_function(f"({FIND})('worker')", **WAIT)
                # The title and every name are text, markup included.
                assert await page.text_content("h1") == MARKUP
                assert await page.title() == MARKUP
                assert await page.evaluate(f"({FIND})({json.dumps(MARKUP)}) !== undefined")
                assert await page.evaluate("window.pwned === undefined")
                assert await page.locator("#tree img, #tree b").count() == 0
                # The header.
                assert await page.text_content("#pid") == "4242"
                stats = await page.text_content("#stats")
                assert stats is not None
                assert re.search(r"alive\s*3.*spawned\s*7.*failed\s*1", stats, re.S)
                assert "no" in (await page.text_content(".stat[data-key=shutting_down]") or "")
                # Nesting, kinds and ages.
                nesting = await page.evaluate(
                    f"""() => {{
                    const conn = ({FIND})('connection');
                    const up = conn.parentElement.closest('details.node');
                    const row = conn.querySelector(':scope > summary');
                    return [up.querySelector(':scope > summary > .name').textContent,
                            up.parentElement.closest('details.node').dataset.kind,
                            row.querySelector('.badge').textContent,
                            row.querySelector('.age').textContent,
                            row.querySelector('.detail').textContent,
                            ({FIND})('runtime.time.driver')
                                .querySelector(':scope > summary > .age').textContent];
                    }}"""
                )
                assert nesting == [
                    "serve_echo",
                    "root",
                    "connection",
                    "1h02m",
                    "echo: peer 127.0.0.1:50312 <b>bold</b>",
                    "-",
                ]
                # A node closed by the user stays closed across polls.
                await page.locator("details.node[data-id='3'] > summary > .badge").click()
                await _wait_polls(page, 2)
                assert await page.evaluate("!document.querySelector(\"[data-id='3']\").open")
                assert await page.evaluate("document.querySelector(\"[data-id='6']\").open")
                await page.locator("details.node[data-id='3'] > summary > .badge").click()
                await _wait_polls(page, 1)
                assert await page.evaluate("document.querySelector(\"[data-id='3']\").open")
                # The stack of a live task, then of one that has ended.
                await page.locator("details.node[data-id='5'] .stack-btn").click()
                await page.wait_for_selector("#frames .frame >> nth=1", **WAIT)
                frames = await page.text_content("#frames")
                assert frames is not None
                assert "/app/echo.py:12" in frames and "receive_some" in frames
                assert "x < y" in frames
                await page.locator("details.node[data-id='2'] > summary > .name").click()
                await page.wait_for_function(
                    "() => document.getElementById('stack-status').textContent.includes('ended')",
                    **WAIT,
                )
                assert await page.locator("#frames .frame").count() == 0
                # The filter keeps the matches and their ancestors.
                await page.fill("#filter", "WORK")
                shown = await page.evaluate(
                    """[...document.querySelectorAll('#tree details.node:not(.hidden)')]
                       .filter((d) => d.offsetParent !== null).map((d) => d.dataset.id)"""
                )
                assert shown == ["1", "6", "7"]
                await page.fill("#filter", "")
                await page.wait_for_selector("details.node[data-id='2']", **WAIT)
                # A poll that fails shows the notice; one that succeeds clears it.
                _Canned.down = True
                await page.wait_for_selector("#notice", state="visible", **WAIT)
                assert "failed" in (await page.text_content("#notice") or "")
                _Canned.down = False
                await page.wait_for_selector("#notice", state="hidden", **WAIT)
                # The next answer: a task gone, the runtime draining.
                _Canned.answer = {
                    **CANNED,
                    "runtime": {**CANNED["runtime"], "shutting_down": True},
                    "tasks": [t for t in CANNED["tasks"] if t["id"] != 7],
                }
                await page.wait_for_selector(".stat.draining", **WAIT)
                await page.wait_for_selector("details.node[data-id='7']", state="detached", **WAIT)
                assert await page.evaluate(
                    "document.querySelector(\"[data-id='6']\").classList.contains('leaf')"
                )
                assert await page.text_content("#count") == "6 tasks in the tree"
                await page.screenshot(path=str(_artifacts(tmp_path) / "admin-canned.png"))

        asyncio.run(asyncio.wait_for(drive(), 3 * GUARD))
    failures = [e for e in errors if "Failed to load resource" not in e]
    assert failures == []


# -- against the real demo ----------------------------------------------------------------


def _read_lines_until(proc: subprocess.Popen[bytes], pattern: re.Pattern[str]) -> list[str]:
    """The demo's stdout lines up to the first that matches ``pattern``.

    Reads the pipe's bytes as they come (no file buffering that select could not see).
    """
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    deadline = time.monotonic() + GUARD
    buffer = b""
    lines: list[str] = []
    while not (lines and pattern.match(lines[-1])):
        if b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            lines.append(line.decode())
            continue
        left = deadline - time.monotonic()
        ready, _, _ = select.select([fd], [], [], max(left, 0))
        assert ready, f"no line matching {pattern.pattern} in {GUARD}s; got {lines}"
        chunk = os.read(fd, 4096)
        assert chunk, f"the demo exited before printing {pattern.pattern}; got {lines}"
        buffer += chunk
    return lines


def test_page_shows_the_live_demo_tree_and_stacks(tmp_path: Path) -> None:
    _require_browser()
    artifacts = _artifacts(tmp_path)
    stderr = (tmp_path / "demo.stderr").open("w")
    proc = subprocess.Popen(
        DEMO,
        stdout=subprocess.PIPE,
        stderr=stderr,
        cwd=ROOT,
    )
    errors: list[str] = []
    try:
        lines = _read_lines_until(proc, ADMIN_LINE)
        echo_port = int(next(m[1] for m in map(ECHO_LINE.match, lines) if m))
        admin = next(m[1] for m in map(ADMIN_LINE.match, lines) if m)
        echo = socket.create_connection(("127.0.0.1", echo_port), timeout=GUARD)
        echo.sendall(b"ping\n")
        assert echo.recv(100) == b"ping\n"  # served: its connection task exists
        peer = f"echo: peer 127.0.0.1:{echo.getsockname()[1]}"

        async def drive() -> None:
            async with _page(errors) as page:
                await page.goto(f"{admin}/", **WAIT)
                # The echo connection, inside its server's subtree, under the root.
                conn = await page.wait_for_function(
                    """(peer) => [...document.querySelectorAll(
                            '#tree details.node[data-kind=connection]')]
                        .find((d) => d.querySelector(':scope > summary > .detail')
                            .textContent === peer
                          && d.parentElement.closest('details.node')
                            .querySelector(':scope > summary > .name').textContent
                            .includes('serve')
                          && d.closest('#tree > details.node').dataset.kind === 'root')""",
                    arg=peer,
                    **WAIT,
                )
                conn_id = await conn.evaluate("(d) => d.dataset.id")
                waiting_in = await conn.evaluate(
                    "(d) => d.querySelector(':scope > summary > .wait').textContent"
                )
                assert await page.text_content("#pid") == str(proc.pid)
                assert (await page.text_content("#updated") or "").startswith("updated ")
                # Its stack: frames, the innermost function it waits in among them.
                await page.locator(f"details.node[data-id='{conn_id}'] .stack-btn").click()
                await page.wait_for_selector("#frames .frame", **WAIT)
                functions = await page.eval_on_selector_all(
                    "#frames .fn", "(fs) => fs.map((f) => f.textContent)"
                )
                assert waiting_in in functions, (waiting_in, functions)
                assert "connection" in (await page.text_content("#stack-title") or "")
                bottom = await page.evaluate(
                    "Math.max(...['tree', 'stack'].map("
                    "(id) => document.getElementById(id).getBoundingClientRect().bottom))"
                )
                clip = {"x": 0, "y": 0, "width": 1360, "height": min(820, bottom + 16)}
                await page.screenshot(path=str(artifacts / "admin-tasks.png"), clip=clip)
                if os.environ.get("UPDATE_DOCS_ASSETS") == "1":
                    await page.screenshot(path=str(DOCS_ASSET), clip=clip)
                # The filter: the accept loops and their ancestors, nothing else.
                await page.fill("#filter", "accept_loop")
                shown = await page.evaluate(
                    """[...document.querySelectorAll('#tree details.node')]
                       .filter((d) => d.offsetParent !== null)
                       .map((d) => [d.dataset.kind,
                            d.querySelector(':scope > summary > .name').textContent,
                            d.querySelector(
                                ':scope > .kids > details.node:not(.hidden)') !== null])"""
                )
                assert any("accept_loop" in name for _, name, _ in shown), shown
                for _kind, name, has_shown_child in shown:
                    assert "accept_loop" in name or has_shown_child, shown
                assert not any(kind == "connection" for kind, _, _ in shown), shown
                await page.fill("#filter", "")
                # Once the connection ends, its stack is a 404: "has ended".
                echo.close()
                await page.wait_for_function(
                    "() => document.getElementById('stack-title').textContent.endsWith('(ended)')",
                    **WAIT,
                )
                await page.click("#stack-refresh")
                await page.wait_for_function(
                    "() => document.getElementById('stack-status')"
                    ".textContent.includes('has ended')",
                    **WAIT,
                )
                assert [e for e in errors if "404 (Not Found)" not in e] == []
                # The demo stops on SIGINT; the page says its polls fail.
                proc.send_signal(signal.SIGINT)
                await asyncio.to_thread(proc.wait, GUARD)
                await page.wait_for_selector("#notice", state="visible", **WAIT)

        asyncio.run(asyncio.wait_for(drive(), 3 * GUARD))
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            proc.wait(GUARD)
        stderr.close()
    assert proc.returncode == 0, (tmp_path / "demo.stderr").read_text()
    assert (artifacts / "admin-tasks.png").stat().st_size > 0
