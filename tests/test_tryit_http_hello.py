"""The Try this of docs/tutorial/http-hello.md: each stated result, and the page still says it."""

from __future__ import annotations

import http.client
import importlib.util
import re
from pathlib import Path
from types import ModuleType

import pytest
from _tryit import Examples, try_this

from runtime.http import Request

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "http_hello.py"
PAGE = ROOT / "docs" / "tutorial" / "http-hello.md"
HANG_GUARD = 30.0  # seconds; a hang guard for slow machines, not a performance claim


def page() -> str:
    """The page's Try this section, its lines joined (a stated result may wrap)."""
    return try_this(PAGE)


def fresh_example() -> ModuleType:
    """A copy of examples/http_hello.py of its own, so that a route added here stays here."""
    spec = importlib.util.spec_from_file_location("tryit_http_hello", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def port(examples: Examples) -> int:
    """examples/http_hello.py as a process, by the port of its ``listening on`` line."""
    return examples.start(EXAMPLE)[1]


def request(
    port: int, method: str, path: str, headers: dict[str, str] | None = None
) -> tuple[http.client.HTTPResponse, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=HANG_GUARD)
    try:
        conn.request(method, path, headers=headers or {})
        response = conn.getresponse()
        return response, response.read()
    finally:
        conn.close()


async def test_a_bye_route_answers_get_and_refuses_post_with_allow() -> None:
    example = fresh_example()
    # the route as the page shows it, added to the example's module
    block = re.search(r"\n( +)```python\n(.*?)\n\1```", PAGE.read_text(encoding="utf-8"), re.S)
    assert block, "the page shows the /bye route"
    code = "\n".join(line.removeprefix(block[1]) for line in block[2].splitlines())
    exec(compile(code, str(PAGE), "exec"), vars(example))
    got = await example.router(Request("GET", "/bye"))
    assert (got.status, got.body) == (200, b"Bye!")
    posted = await example.router(Request("POST", "/bye"))
    assert posted.status == 405
    assert posted.headers["allow"] == "GET, HEAD"
    section = page()
    assert "prints `Bye!`" in section
    assert "`405 Method Not Allowed` with `allow: GET, HEAD`" in section


def test_head_gets_the_length_of_the_body_and_no_body(port: int) -> None:
    response, body = request(port, "HEAD", "/")
    assert (response.version, response.status, response.reason) == (11, 200, "OK")
    assert response.getheader("content-length") == "13"
    assert body == b""
    assert "`HTTP/1.1 200 OK` with `content-length: 13`" in page()
    assert "`curl -I http://127.0.0.1:8000/` sends `HEAD /`" in page()


def test_a_20000_byte_header_gets_431_and_10000_bytes_is_fine(port: int) -> None:
    response, body = request(port, "GET", "/", {"X-Big": "a" * 20_000})
    assert (response.status, response.reason) == (431, "Request Header Fields Too Large")
    assert response.getheader("connection") == "close"
    reason = body.decode().strip()
    assert reason == (
        "request head exceeds 16384 bytes (max_header_bytes); raise the limit or fix the client"
    )
    response, body = request(port, "GET", "/", {"X-Big": "a" * 10_000})
    assert (response.status, body) == (200, b"Hello, world!")
    section = page()
    assert "head -c 20000 /dev/zero" in section
    assert "`431 Request Header Fields Too Large` with `connection: close`" in section
    assert f"`{reason}`" in section
    assert "A header of 10,000 bytes still gets `200`" in section
