"""The HTTP server against clients we did not write: curl over TCP, and a stdlib TLS client.

Skipped when curl is missing (install it: ``apt-get install -y curl``), except under CI=true,
where a missing curl fails the test instead of hiding it.
"""

from __future__ import annotations

import os
import shutil
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio
import trustme

from runtime.http import Request, Response
from runtime.http._server import HttpServer
from runtime.net import TcpListener, client_ssl_context, server_ssl_context, tls_connect

CURL = shutil.which("curl")


def need_curl() -> str:
    if CURL is None:
        if os.environ.get("CI") == "true":
            pytest.fail("curl is missing; the CI image must have it (apt-get install -y curl)")
        pytest.skip("curl is missing: apt-get install -y curl")
    return CURL


async def app(request: Request) -> Response:
    if request.target == "/stream":

        async def chunks() -> AsyncIterator[bytes]:
            for i in range(3):
                yield b"part%d;" % i

        return Response(200, body=chunks())
    body = await request.body.read()
    return Response.text(f"{request.method} {request.target} {len(body)} {body[:8].decode()}")


async def curl(*args: str) -> str:
    result = await trio.run_process(
        [need_curl(), "-sS", "--max-time", "20", *args], capture_stdout=True, capture_stderr=True
    )
    return result.stdout.decode()


async def serve_on_tcp(nursery: trio.Nursery, **kwargs: object) -> int:
    listener = TcpListener.bind()
    await nursery.start(HttpServer(app, [listener], **kwargs).serve)  # type: ignore[arg-type]
    return listener.port


async def test_curl_keep_alive_reuses_one_connection() -> None:
    need_curl()
    async with trio.open_nursery() as nursery:
        port = await serve_on_tcp(nursery)
        base = f"http://127.0.0.1:{port}"
        out = await curl("-v", f"{base}/a", f"{base}/b")
        nursery.cancel_scope.cancel()
    assert "GET /a 0" in out and "GET /b 0" in out


async def test_curl_reports_reuse_in_its_verbose_log() -> None:
    exe = need_curl()
    async with trio.open_nursery() as nursery:
        port = await serve_on_tcp(nursery)
        base = f"http://127.0.0.1:{port}"
        result = await trio.run_process(
            [exe, "-sS", "-v", "-o", "/dev/null", "-o", "/dev/null", f"{base}/a", f"{base}/b"],
            capture_stdout=True,
            capture_stderr=True,
        )
        nursery.cancel_scope.cancel()
    log = result.stderr.decode().lower()
    assert "re-using existing connection" in log or "reusing existing connection" in log


async def test_curl_chunked_upload_and_chunked_download() -> None:
    need_curl()
    async with trio.open_nursery() as nursery:
        port = await serve_on_tcp(nursery)
        base = f"http://127.0.0.1:{port}"
        up = await curl(
            "-H", "Transfer-Encoding: chunked", "--data-binary", "hello-chunks", f"{base}/up"
        )
        down = await curl("--raw", f"{base}/stream")
        nursery.cancel_scope.cancel()
    assert up == "POST /up 12 hello-ch"
    assert "part0;" in down and down.rstrip().endswith("0")  # raw chunked framing


async def test_curl_expect_100_continue_gets_its_body_answered() -> None:
    need_curl()
    async with trio.open_nursery() as nursery:
        port = await serve_on_tcp(nursery)
        out = await curl(
            "-H",
            "Expect: 100-continue",
            "--data-binary",
            "x" * 5000,
            f"http://127.0.0.1:{port}/big",
        )
        nursery.cancel_scope.cancel()
    assert out == "POST /big 5000 xxxxxxxx"


async def test_curl_head_gets_no_body() -> None:
    exe = need_curl()
    async with trio.open_nursery() as nursery:
        port = await serve_on_tcp(nursery)
        result = await trio.run_process(
            [exe, "-sS", "-I", f"http://127.0.0.1:{port}/"], capture_stdout=True
        )
        nursery.cancel_scope.cancel()
    head = result.stdout.decode().lower()
    assert head.startswith("http/1.1 200 ok") and "content-length: " in head


@pytest.fixture
def tls_pair(tmp_path: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    ca = trustme.CA()
    cert = ca.issue_cert("localhost")
    cert.private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "server.pem"))
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    return (
        server_ssl_context(str(tmp_path / "server.pem")),
        client_ssl_context(str(tmp_path / "ca.pem")),
    )


async def test_the_server_runs_unchanged_over_tls(
    tls_pair: tuple[ssl.SSLContext, ssl.SSLContext],
) -> None:
    server_ctx, client_ctx = tls_pair
    seen: list[str] = []

    async def scheme(request: Request) -> Response:
        seen.append(request.scheme)
        return Response.text("secure")

    listener = TcpListener.bind()
    async with trio.open_nursery() as nursery:
        await nursery.start(HttpServer(scheme, [listener], tls=server_ctx).serve)
        stream = await tls_connect(
            "127.0.0.1", listener.port, client_ctx, server_hostname="localhost"
        )
        await stream.send_all(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        received = b""
        while True:
            try:
                chunk = await stream.receive_some()
            except trio.BrokenResourceError:
                break
            if not chunk:
                break
            received += chunk
        await stream.aclose()
        nursery.cancel_scope.cancel()
    assert received.startswith(b"HTTP/1.1 200 OK\r\n") and received.endswith(b"secure")
    assert seen == ["https"]
