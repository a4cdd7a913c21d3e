"""The Try this of docs/tutorial/json-api.md: each stated result, and the page still says it."""

from __future__ import annotations

import http.client
from collections.abc import Callable
from pathlib import Path

import pytest
from _tryit import Examples, try_this

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "json_api.py"
PAGE = ROOT / "docs" / "tutorial" / "json-api.md"
HANG_GUARD = 30.0  # seconds; a hang guard for slow machines, not a performance claim


def page() -> str:
    """The page's Try this section, its lines joined (a stated result may wrap)."""
    return try_this(PAGE)


@pytest.fixture
def start(examples: Examples) -> Callable[..., int]:
    """Start examples/json_api.py with some arguments; its port, from its listening line."""
    return lambda *args: examples.start(EXAMPLE, *args)[1]


def call(port: int, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
    """One request as curl sends it (``-d`` is a form content type; the API does not mind)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=HANG_GUARD)
    try:
        headers = {} if body is None else {"content-type": "application/x-www-form-urlencoded"}
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def test_a_missing_field_is_named_in_the_422(start: Callable[..., int]) -> None:
    port = start()
    status, body = call(port, "POST", "/items", b'{"name": "tea"}')
    assert status == 422
    assert body == b'{"error":"invalid item","fields":{"price":"required"}}'
    assert '-d \'{"name": "tea"}\'` answers `422` with `' + body.decode() + "`" in page()


def test_a_body_over_64_kib_gets_413(start: Callable[..., int]) -> None:
    port = start()
    status, body = call(port, "POST", "/items", bytes(70_000))  # head -c 70000 /dev/zero
    assert (status, body) == (413, b'{"error":"body exceeds 65536 bytes"}')
    assert "head -c 70000 /dev/zero" in page()
    assert "The answer is `413` with `" + body.decode() + "`" in page()


def test_a_full_store_gets_507_and_ids_are_not_reused(start: Callable[..., int]) -> None:
    port = start("--max-items", "2")
    item = b'{"name": "tea", "price": 1}'
    assert call(port, "POST", "/items", item)[0] == 201
    assert call(port, "POST", "/items", item)[0] == 201
    status, body = call(port, "POST", "/items", item)
    assert (status, body) == (507, b'{"error":"the store is full (2 items); delete some"}')
    assert call(port, "DELETE", "/items/1") == (204, b"")
    again = b'{"id":3,"name":"tea","price":1,"tags":[]}'
    assert call(port, "POST", "/items", item) == (201, again)
    section = page()
    assert "Restart the server with `--max-items 2` and create three items" in section
    assert "The third gets `507` with `" + body.decode() + "`" in section
    assert "and create again: `201`, with id `3`" in section
