"""The client against scripted answers: what each codec (h11, httptools) reads, refuses, and
whether the connection may carry the next request.

Every test runs once per parser (tests/http/conftest.py makes each Client use it), so the two
codecs are held to the same behaviour. The server end is an in-memory connection that reads one
request head and sends the bytes the test gives, byte for byte.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest
import trio
import trio.testing

from runtime.http import Client
from runtime.http._client import RemoteProtocolError
from runtime.net.abc import Connection
from runtime.testing import MemoryConnection, memory_connection_pair

GUARD = 5  # seconds of the mock clock: every test is over long before


class _Scripted:
    """A Connector whose every connection answers each request head with the next answer."""

    def __init__(
        self, nursery: trio.Nursery, answers: list[bytes], close: bool, until: bytes
    ) -> None:
        self.nursery = nursery
        self.until = until  # answer once these bytes came (default: the end of the head)
        self.answers = list(answers)
        self.close = close  # close the connection after each answer
        self.opened = 0
        self.requests: list[bytes] = []
        self.raw = b""  # every byte the connections received

    async def connect(self, host: str, port: int) -> Connection:
        client_end, server_end = memory_connection_pair(buffer=64 * 1024)
        self.opened += 1
        self.nursery.start_soon(self._serve, server_end)
        await trio.lowlevel.checkpoint()
        return client_end

    async def _serve(self, conn: MemoryConnection) -> None:
        received = b""
        while self.answers:
            while b"\r\n\r\n" not in received or self.until not in received:
                data = await conn.receive_some(65536)
                if not data:
                    return
                self.raw += data
                received += data
            head, _, received = received.partition(b"\r\n\r\n")
            self.requests.append(head)
            await conn.send_all(self.answers.pop(0))
            if self.close:
                await conn.aclose()
                return
        await trio.sleep_forever()


@pytest.fixture
async def scripted(autojump_clock: trio.testing.MockClock) -> AsyncIterator[Callable[..., _Use]]:
    async with trio.open_nursery() as nursery:
        yield lambda answers, close=False, until=b"\r\n\r\n": _Use(nursery, answers, close, until)
        nursery.cancel_scope.cancel()


class _Use:
    def __init__(
        self, nursery: trio.Nursery, answers: list[bytes], close: bool, until: bytes
    ) -> None:
        self.script = _Scripted(nursery, answers, close, until)
        self.client = Client(connector=self.script)

    async def __aenter__(self) -> tuple[Client, _Scripted]:
        await self.client.__aenter__()
        return self.client, self.script

    async def __aexit__(self, *exc: object) -> None:
        await self.client.__aexit__(None, None, None)


OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


async def test_a_head_answer_ends_at_its_head_and_the_connection_is_reused(
    scripted: Callable[..., _Use],
) -> None:
    # Content-Length describes the body a GET would get: a HEAD answer has none (RFC 9110 9.3.2)
    answers = [b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n", OK]
    with trio.fail_after(GUARD):
        async with scripted(answers) as (client, script):
            head = await client.request("HEAD", "http://h/")
            assert (head.status, head.headers["content-length"], head.body) == (200, "100", b"")
            assert (await client.get("http://h/")).body == b"ok"
    assert script.opened == 1


async def test_bytes_after_a_complete_answer_are_never_read_as_the_next_one(
    scripted: Callable[..., _Use],
) -> None:
    smuggled = OK + b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nforged"
    with trio.fail_after(GUARD):
        async with scripted([smuggled, OK]) as (client, script):
            assert (await client.get("http://h/")).body == b"ok"
            assert client.idle_connections() == 0  # the connection was not put back
            assert (await client.get("http://h/")).body == b"ok"  # a fresh one: not "forged"
    assert script.opened == 2


async def test_a_body_after_a_head_answer_makes_the_connection_unfit(
    scripted: Callable[..., _Use],
) -> None:
    answers = [b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nno", OK]
    with trio.fail_after(GUARD):
        async with scripted(answers) as (client, script):
            assert (await client.request("HEAD", "http://h/")).body == b""
            assert (await client.get("http://h/")).body == b"ok"
    assert script.opened == 2


async def test_informational_answers_are_skipped(scripted: Callable[..., _Use]) -> None:
    early = b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n"
    with trio.fail_after(GUARD):
        async with scripted([early + b"HTTP/1.1 100 Continue\r\n\r\n" + OK, OK]) as (client, s):
            response = await client.get("http://h/")
            assert (response.status, response.body) == (200, b"ok")
            assert "link" not in response.headers
            assert (await client.get("http://h/")).status == 200
    assert s.opened == 1


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok",
        b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n",
        b"HTTP/1.1 2000 OK\r\n\r\n",
        b"SSH-2.0-OpenSSH_9.2\r\n\r\n",
    ],
    ids=[
        "unasked-101",
        "gzip-chunked",
        "cl-and-te",
        "two-lengths",
        "negative-length",
        "space-in-name",
        "bad-status",
        "not-http",
    ],
)
async def test_a_malformed_answer_is_a_protocol_error(
    scripted: Callable[..., _Use], answer: bytes
) -> None:
    with trio.fail_after(GUARD):
        async with scripted([answer]) as (client, _):
            with pytest.raises(RemoteProtocolError, match=r"bad response|switched protocols|101"):
                await client.get("http://h/")
            assert client.idle_connections() == 0


async def test_a_body_framed_by_the_close_is_read_to_the_close(
    scripted: Callable[..., _Use],
) -> None:
    answer = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end"
    with trio.fail_after(GUARD):
        async with scripted([answer], close=True) as (client, _):
            assert (await client.get("http://h/")).body == b"until the end"
            assert client.idle_connections() == 0


async def test_a_body_cut_short_by_the_close_is_an_error(scripted: Callable[..., _Use]) -> None:
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this"
    with trio.fail_after(GUARD):
        async with scripted([answer], close=True) as (client, _):
            with pytest.raises(RemoteProtocolError):
                await client.get("http://h/")


async def test_a_chunked_body_cut_short_is_an_error(scripted: Callable[..., _Use]) -> None:
    answer = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel"
    with trio.fail_after(GUARD):
        async with scripted([answer], close=True) as (client, _):
            with pytest.raises(RemoteProtocolError):
                await client.get("http://h/")


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok",
        b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok",
    ],
    ids=["connection-close", "http-1.0"],
)
async def test_an_answer_that_ends_the_connection_is_not_pooled(
    scripted: Callable[..., _Use], answer: bytes
) -> None:
    with trio.fail_after(GUARD):
        async with scripted([answer, OK]) as (client, script):
            assert (await client.get("http://h/")).body == b"ok"
            assert client.idle_connections() == 0
            assert (await client.get("http://h/")).body == b"ok"
    assert script.opened == 2


async def test_a_chunked_answer_with_trailers_is_read_and_pooled(
    scripted: Callable[..., _Use],
) -> None:
    answer = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3\r\none\r\n4;ext=1\r\n two\r\n0\r\nX-Checksum: 1\r\n\r\n"
    )
    with trio.fail_after(GUARD):
        async with scripted([answer, OK]) as (client, script):
            assert (await client.get("http://h/")).body == b"one two"
            assert (await client.get("http://h/")).body == b"ok"
    assert script.opened == 1


@pytest.mark.parametrize(
    "headers",
    [{"bad name": "x"}, {"x-a": "one\r\nx-injected: two"}, {"x-a": "nul\x00"}],
    ids=["space-in-name", "crlf-in-value", "nul-in-value"],
)
async def test_a_request_that_cannot_be_framed_is_refused_before_a_byte_is_sent(
    scripted: Callable[..., _Use], headers: dict[str, str]
) -> None:
    with trio.fail_after(GUARD):
        async with scripted([OK]) as (client, script):
            with pytest.raises(ValueError, match="cannot send this request"):
                await client.get("http://h/", headers=headers)
            await trio.testing.wait_all_tasks_blocked()
    assert script.requests == []


async def test_a_streamed_body_longer_than_its_content_length_is_refused(
    scripted: Callable[..., _Use],
) -> None:
    async def body() -> AsyncIterator[bytes]:
        yield b"12345"
        yield b"67890"

    with trio.fail_after(GUARD):
        async with scripted([OK], until=b"never sent") as (client, _):
            with pytest.raises(ValueError, match="cannot send this request"):
                await client.post("http://h/", body=body(), headers={"content-length": "5"})


async def test_a_streamed_body_goes_chunked(scripted: Callable[..., _Use]) -> None:
    async def body() -> AsyncIterator[bytes]:
        yield b"12345"
        yield b"67"

    with trio.fail_after(GUARD):
        async with scripted([OK], until=b"0\r\n\r\n") as (client, script):
            assert (await client.post("http://h/", body=body())).body == b"ok"
    assert b"transfer-encoding: chunked" in script.requests[0].lower()
    assert script.raw.endswith(b"\r\n\r\n5\r\n12345\r\n2\r\n67\r\n0\r\n\r\n")
