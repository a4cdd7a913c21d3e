"""The Try this of docs/tutorial/build-a-proxy.md: each stated result, and the page still says
it. examples/http_hello.py is the upstream and examples/layered_proxy.py the proxy, both as
processes, each found by its ``listening on`` line."""

from __future__ import annotations

import http.client
import importlib.util
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import trio
from _tryit import Examples, try_this

from runtime.http import Client, HttpServer, Request, Response
from runtime.net import TcpListener
from runtime.rt import open_runtime

ROOT = Path(__file__).resolve().parent.parent
HELLO = ROOT / "examples" / "http_hello.py"
PROXY = ROOT / "examples" / "layered_proxy.py"
PAGE = ROOT / "docs" / "tutorial" / "build-a-proxy.md"
HANG_GUARD = 30.0  # seconds; a hang guard for slow machines, not a performance claim


def page() -> str:
    """The page's Try this section, its lines joined (a stated result may wrap)."""
    return try_this(PAGE)


@pytest.fixture
def start(examples: Examples) -> Callable[..., tuple[subprocess.Popen[str], int]]:
    """Start an example with some arguments: the process, and the port of its line."""
    return examples.start


def call(port: int, method: str, path: str = "/") -> tuple[int, bytes, http.client.HTTPResponse]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=HANG_GUARD)
    try:
        conn.request(method, path)
        response = conn.getresponse()
        return response.status, response.read(), response
    finally:
        conn.close()


def test_a_dead_upstream_trips_the_breaker_on_the_third_get(
    start: Callable[..., tuple[subprocess.Popen[str], int]],
) -> None:
    upstream, upstream_port = start(HELLO)
    _, proxy = start(PROXY, "--upstream", f"127.0.0.1:{upstream_port}")
    assert call(proxy, "GET")[:2] == (200, b"Hello, world!")
    upstream.kill()
    upstream.wait(timeout=HANG_GUARD)  # its port is closed now: a connect is refused
    answers = [call(proxy, "GET")[:2] for _ in range(5)]
    assert [status for status, _ in answers] == [502] * 5
    bodies = [body.decode().strip() for _, body in answers]
    assert bodies == ["bad gateway: ConnectError"] * 2 + ["bad gateway: CircuitOpen"] * 3
    section = page()
    assert "for i in 1 2 3 4 5; do curl -s http://127.0.0.1:8080/; done" in section
    assert "The first two answers are `bad gateway: ConnectError`" in section
    assert "The last three are `bad gateway: CircuitOpen`" in section
    assert "All five are `502`." in section


def test_an_upstreams_405_is_passed_back_and_opens_no_breaker(
    start: Callable[..., tuple[subprocess.Popen[str], int]],
) -> None:
    _, upstream_port = start(HELLO)
    _, proxy = start(PROXY, "--upstream", f"127.0.0.1:{upstream_port}")
    for _ in range(10):
        status, body, response = call(proxy, "POST")
        assert (status, response.reason, body) == (
            405,
            "Method Not Allowed",
            b"Method Not Allowed\n",
        )
        assert response.getheader("allow") == "GET, HEAD"
    assert call(proxy, "GET")[:2] == (200, b"Hello, world!")
    section = page()
    assert "send `curl -i -X POST http://127.0.0.1:8080/`" in section
    assert "The answer is `405 Method Not Allowed` with `allow: GET, HEAD`" in section
    assert "after ten of them" in section
    assert "`curl http://127.0.0.1:8080/` still prints `Hello, world!`" in section


async def test_an_upstreams_405_is_not_retried() -> None:
    """The upstream counts what reaches it: ten POSTs through the stack, ten calls."""
    spec = importlib.util.spec_from_file_location("tryit_layered_proxy", PROXY)
    assert spec is not None and spec.loader is not None
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    hello = importlib.util.spec_from_file_location("tryit_proxy_hello", HELLO)
    assert hello is not None and hello.loader is not None
    upstream = importlib.util.module_from_spec(hello)
    hello.loader.exec_module(upstream)
    calls = []

    async def counted(request: Request) -> Response:
        calls.append(request.method)
        response: Response = await upstream.router(request)
        return response

    listener = TcpListener.bind("127.0.0.1", 0)
    with trio.fail_after(HANG_GUARD):
        async with open_runtime(), Client() as client, trio.open_nursery() as nursery:
            server = await nursery.start(HttpServer(counted, [listener]).serve)
            stack = example.build(client, [f"127.0.0.1:{listener.port}"])
            for _ in range(10):
                response = await example.proxy(stack, Request("POST", "/"))
                assert response.status == 405
            assert calls == ["POST"] * 10
            server.drain()
            nursery.cancel_scope.cancel()
    assert "Retry does not retry it" in page()
