"""Raw ASGI apps on the adapter: the spec's corners, over a MemoryListener."""

from __future__ import annotations

from typing import Any

from ._support import GET, CLOSE, exchange, parse_responses, served


async def hello(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"x-a", b"1")]})
    await send({"type": "http.response.body", "body": b"hi " + scope["path"].encode()})


async def test_a_raw_app_answers_keep_alive_requests() -> None:
    async with served(hello) as (listener, _):
        data = await exchange(listener, GET + CLOSE)
    responses = parse_responses(data)
    assert [r.status for r in responses] == [200, 200]
    assert [r.body for r in responses] == [b"hi /", b"hi /last"]
    assert responses[0].header("x-a") == "1"
