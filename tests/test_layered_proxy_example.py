"""examples/layered_proxy.py: the stack in-process against our own upstreams, and the script."""

from __future__ import annotations

import importlib.util
import re
import select
import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from types import ModuleType

import trio

from runtime.http import Body, Client, HttpServer, Request, Response, Router
from runtime.net import TcpListener
from runtime.rt import open_runtime

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "layered_proxy.py"
GUARD = 20.0


def load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("example_layered_proxy", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def dead_port() -> int:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port: int = sock.getsockname()[1]
    sock.close()
    return port


@asynccontextmanager
async def hello_upstream() -> AsyncIterator[int]:
    router = Router()

    @router.route(["GET", "POST"], "/{rest:path}")
    async def hello(request: Request) -> Response:
        return Response.text(f"{request.method} {request.path}\n")

    listener = TcpListener.bind("127.0.0.1", 0)
    async with trio.open_nursery() as nursery:
        await nursery.start(HttpServer(router, [listener]).serve)
        yield listener.port
        nursery.cancel_scope.cancel()


async def test_gets_are_retried_past_a_dead_upstream_and_posts_are_not() -> None:
    example = load()
    with trio.fail_after(GUARD):
        async with hello_upstream() as live, open_runtime(), Client() as client:
            stack = example.build(client, [f"127.0.0.1:{dead_port()}", f"127.0.0.1:{live}"])
            for n in range(10):
                response = await example.proxy(stack, Request("GET", f"/item/{n}"))
                assert (response.status, response.body) == (200, f"GET /item/{n}\n".encode())
            only_dead = example.build(client, [f"127.0.0.1:{dead_port()}"])
            post = await example.proxy(only_dead, Request("POST", "/x", body=Body(b"{}")))
            assert post.status == 502
            assert post.body == b"bad gateway: ConnectError\n"


def test_the_script_proxies_and_drains() -> None:
    upstream = subprocess.Popen(
        [sys.executable, str(EXAMPLE.parent / "http_hello.py"), "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    proxy = None
    try:
        assert upstream.stdout is not None
        assert select.select([upstream.stdout], [], [], GUARD)[0]
        port = re.search(r":(\d+)$", upstream.stdout.readline().strip())
        assert port
        proxy = subprocess.Popen(
            [sys.executable, str(EXAMPLE), "--port", "0", "--upstream", f"127.0.0.1:{port[1]}"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert proxy.stdout is not None
        assert select.select([proxy.stdout], [], [], GUARD)[0]
        line = proxy.stdout.readline().strip()
        match = re.fullmatch(r"listening on http://127\.0\.0\.1:(\d+)", line)
        assert match, line
        with urllib.request.urlopen(f"http://127.0.0.1:{match[1]}/", timeout=GUARD) as reply:
            assert reply.read() == b"Hello, world!"
        proxy.send_signal(signal.SIGTERM)
        _, err = proxy.communicate(timeout=GUARD)
        assert proxy.returncode == 0, err
    finally:
        for proc in (proxy, upstream):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=GUARD)
