"""mini-redis in process, over the in-memory transport, under trio's MockClock (autojump).

Expiry is tested here: the clock jumps hours without a real sleep, so every TTL is checked
to the millisecond. The external clients (redis-py, redis-cli) are in test_clients.py.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest
import trio
import trio.testing
from mini_redis.client import Client, ReplyError
from mini_redis.db import Db
from mini_redis.resp import NULL, RespError
from mini_redis.server import MiniRedis

import runtime
from runtime.net import Server, ServerConfig
from runtime.testing import MemoryConnection, MemoryListener

Connect = Callable[[], Awaitable[Client]]


class SendCounter(trio.abc.Stream):
    """A server-side connection that counts its sends (the rest goes to the real one)."""

    def __init__(self, inner: MemoryConnection) -> None:
        self.inner = inner
        self.peer_address = inner.peer_address
        self.count = 0

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        self.count += 1
        await self.inner.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self.inner.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        return await self.inner.receive_some(max_bytes)

    async def aclose(self) -> None:
        await self.inner.aclose()


SENDS: list[SendCounter] = []  # the server side of each connection, newest last


@asynccontextmanager
async def serving(
    db: Db | None = None, max_connections: int = 100
) -> AsyncIterator[tuple[MiniRedis, Server[object], Connect]]:
    """A MiniRedis on a MemoryListener, its expiry task, and a way to connect clients."""
    quiet = runtime.RuntimeConfig(handle_signals=False, shutdown_grace=1.0)
    app = MiniRedis(db)
    listener = MemoryListener()
    config = ServerConfig(max_connections=max_connections, idle_timeout=None, name="mini-redis")
    clients: list[Client] = []

    async def handle(stream: MemoryConnection) -> None:
        sends = SendCounter(stream)
        SENDS.append(sends)
        await app.handle(sends)  # type: ignore[arg-type]

    async def connect() -> Client:
        client = Client(await listener.connect())
        clients.append(client)
        return client

    async with runtime.open_runtime(quiet), trio.open_nursery() as nursery:
        nursery.start_soon(app.db.serve_expiry)
        server = await nursery.start(Server(handle, [listener], config).serve)  # type: ignore[arg-type]
        yield app, server, connect
        for client in clients:
            await client.aclose()
        nursery.cancel_scope.cancel()


async def test_strings_and_keys(autojump_clock: trio.abc.Clock) -> None:
    async with serving() as (_, _, connect):
        redis = await connect()
        assert await redis.execute("PING") == "PONG"
        assert await redis.execute("ping", "hi") == b"hi"
        assert await redis.execute("ECHO", "hello") == b"hello"
        assert await redis.execute("GET", "k") is NULL
        assert await redis.execute("SET", "k", "v") == "OK"
        assert await redis.execute("GET", "k") == b"v"
        assert await redis.execute("SET", "k", "w", "NX") is NULL
        assert await redis.execute("SET", "other", "w", "XX") is NULL
        assert await redis.execute("SET", "k", "w", "XX") == "OK"
        assert await redis.execute("EXISTS", "k", "k", "nope") == 2
        assert await redis.execute("INCR", "n") == 1
        assert await redis.execute("INCR", "n") == 2
        assert await redis.execute("DECR", "n") == 1
        assert await redis.execute("INCRBY", "n", "41") == 42
        assert await redis.execute("DEL", "k", "n", "nope") == 2
        assert await redis.execute("DBSIZE") == 0
        assert await redis.execute("CONFIG", "GET", "save") == [b"save", b""]
        assert await redis.execute("CONFIG", "GET", "appendonly") == [b"appendonly", b"no"]
        assert await redis.execute("CONFIG", "GET", "nothing*") == []


@pytest.mark.parametrize(
    ("command", "error"),
    [
        (["FOO", "a", "b"], "ERR unknown command 'FOO', with args beginning with: 'a' 'b'"),
        (["GET"], "ERR wrong number of arguments for 'get' command"),
        (["SET", "k"], "ERR wrong number of arguments for 'set' command"),
        (["PING", "a", "b"], "ERR wrong number of arguments for 'ping' command"),
        (["SET", "k", "v", "EX"], "ERR syntax error"),
        (["SET", "k", "v", "NX", "XX"], "ERR syntax error"),
        (["SET", "k", "v", "EX", "0"], "ERR invalid expire time in 'set' command"),
        (["SET", "k", "v", "EX", "ten"], "ERR value is not an integer or out of range"),
        (["SET", "k", "v", "EX", "1", "PX", "1"], "ERR syntax error"),
        (["INCR", "text"], "ERR value is not an integer or out of range"),
        (["INCR", "big"], "ERR increment or decrement would overflow"),
        (["GET", "list"], "WRONGTYPE Operation against a key holding the wrong kind of value"),
        (["INCR", "list"], "WRONGTYPE Operation against a key holding the wrong kind of value"),
        (
            ["LPUSH", "text", "x"],
            "WRONGTYPE Operation against a key holding the wrong kind of value",
        ),
        (["HELLO", "3"], "NOPROTO this server speaks RESP2 only (HELLO 2, or no HELLO)"),
    ],
)
async def test_errors_keep_the_connection_open(
    autojump_clock: trio.abc.Clock, command: list[str], error: str
) -> None:
    async with serving() as (_, _, connect):
        redis = await connect()
        await redis.pipeline(
            [["SET", "text", "abc"], ["SET", "big", str(2**63 - 1)], ["RPUSH", "list", "a"]]
        )
        with pytest.raises(ReplyError) as caught:
            await redis.execute(*command)
        assert str(caught.value) == error
        assert RespError(str(caught.value)).kind == error.split()[0]
        assert await redis.execute("PING") == "PONG"  # still served


async def test_lists(autojump_clock: trio.abc.Clock) -> None:
    async with serving() as (_, _, connect):
        redis = await connect()
        assert await redis.execute("RPUSH", "l", "b", "c") == 2
        assert await redis.execute("LPUSH", "l", "a", "z") == 4
        assert await redis.execute("LRANGE", "l", "0", "-1") == [b"z", b"a", b"b", b"c"]
        assert await redis.execute("LRANGE", "l", "1", "2") == [b"a", b"b"]
        assert await redis.execute("LRANGE", "l", "-2", "100") == [b"b", b"c"]
        assert await redis.execute("LLEN", "l") == 4
        assert await redis.execute("TYPE", "l") == "list"
        assert await redis.execute("TYPE", "nope") == "none"


# -- expiry ------------------------------------------------------------------------------------


async def test_expiry_to_the_millisecond(autojump_clock: trio.abc.Clock) -> None:
    async with serving() as (app, _, connect):
        redis = await connect()
        start = trio.current_time()
        await redis.execute("SET", "session", "abc", "EX", "10")
        await redis.execute("SET", "flash", "x", "PX", "1500")
        assert await redis.execute("TTL", "session") == 10
        assert await redis.execute("PTTL", "flash") == 1500
        assert await redis.execute("TTL", "nope") == -2
        await redis.execute("SET", "forever", "1")
        assert await redis.execute("TTL", "forever") == -1
        await trio.sleep_until(start + 1.499)
        assert await redis.execute("GET", "flash") == b"x"
        await trio.sleep_until(start + 1.5)
        assert await redis.execute("GET", "flash") is NULL  # due now: never seen after it
        await trio.sleep_until(start + 9.999)
        assert await redis.execute("EXISTS", "session") == 1
        assert await redis.execute("TTL", "session") == 0  # rounded, as Redis does
        await trio.sleep_until(start + 10.1)
        # the DelayQueue deleted it, without anybody reading the key
        assert b"session" not in app.db.data and not app.db.deadlines
        assert len(app.db.expiring) == 0
        assert await redis.execute("GET", "session") is NULL
        assert await redis.execute("DBSIZE") == 1  # forever


async def test_expire_persist_and_overwrite(autojump_clock: trio.abc.Clock) -> None:
    async with serving() as (app, _, connect):
        redis = await connect()
        assert await redis.execute("EXPIRE", "nope", "10") == 0
        await redis.execute("SET", "k", "v")
        assert await redis.execute("EXPIRE", "k", "100") == 1
        assert await redis.execute("EXPIRE", "k", "5") == 1  # a new TTL replaces the old
        assert await redis.execute("TTL", "k") == 5
        await redis.execute("SET", "k", "v2", "KEEPTTL")
        assert await redis.execute("TTL", "k") == 5
        await redis.execute("SET", "k", "v3")  # a plain SET ends the TTL
        assert await redis.execute("TTL", "k") == -1
        assert len(app.db.expiring) == 0
        await redis.execute("PEXPIRE", "k", "2000")
        assert await redis.execute("PERSIST", "k") == 1
        assert await redis.execute("PERSIST", "k") == 0
        await redis.execute("SET", "n", "1", "EX", "60")
        assert await redis.execute("INCR", "n") == 2  # INCR keeps the TTL
        assert await redis.execute("TTL", "n") == 60
        await trio.sleep(3600)
        assert await redis.execute("GET", "k") == b"v3"
        assert await redis.execute("GET", "n") is NULL
        assert await redis.execute("EXPIRE", "k", "-1") == 1  # a TTL <= 0 deletes at once
        assert await redis.execute("EXISTS", "k") == 0


async def test_many_keys_expire_in_deadline_order(autojump_clock: trio.abc.Clock) -> None:
    async with serving() as (app, _, connect):
        redis = await connect()
        await redis.pipeline([["SET", f"k{i}", "v", "PX", str(1000 + 10 * i)] for i in range(200)])
        gone: list[int] = []
        start = trio.current_time()
        while app.db.data:
            await trio.sleep(0.005)
            for i in range(200):
                if i not in gone and f"k{i}".encode() not in app.db.data:
                    gone.append(i)
                    elapsed = trio.current_time() - start
                    assert elapsed <= 1.0 + 0.01 * i + 0.01
        assert gone == list(range(200))


# -- pipelining, isolation, limits -------------------------------------------------------------


async def test_a_pipelined_burst_is_answered_in_one_send(autojump_clock: trio.abc.Clock) -> None:
    async with serving() as (_, _, connect):
        redis = await connect()
        assert await redis.execute("PING") == "PONG"  # the server side exists now
        sends = SENDS[-1]
        assert sends.count == 1
        burst = [["INCR", "n"]] * 100 + [["GET", "n"]]
        replies = await redis.pipeline(burst)  # one write of 101 commands
        assert replies == [*range(1, 101), b"100"]
        assert sends.count == 2


async def test_a_protocol_error_closes_only_that_connection(
    autojump_clock: trio.abc.Clock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="mini_redis")
    async with serving() as (_, server, connect):
        good, bad = await connect(), await connect()
        await good.execute("SET", "k", "v")
        stream = bad.framed.stream
        await stream.send_all(b"PING\r\n*1\r\n$99999999999\r\n")
        data = b""
        while chunk := await stream.receive_some():
            data += chunk
        assert data == (
            b"+PONG\r\n-ERR Protocol error: bulk string of 99999999999 bytes exceeds 8388608 "
            b"(max_bulk); raise the limit or fix the client\r\n"
        )
        assert await good.execute("GET", "k") == b"v"
        assert server.statistics().errored == 0
        assert any("closing" in r.getMessage() for r in caplog.records)


async def test_quit_answers_and_closes(autojump_clock: trio.abc.Clock) -> None:
    async with serving() as (_, _, connect):
        redis = await connect()
        stream = redis.framed.stream
        await stream.send_all(b"PING\r\nQUIT\r\nPING\r\n")
        data = b""
        while chunk := await stream.receive_some():
            data += chunk
        assert data == b"+PONG\r\n+OK\r\n"


async def test_drain_answers_what_was_sent(autojump_clock: trio.abc.Clock) -> None:
    async with serving() as (_, server, connect):
        redis = await connect()
        stream = redis.framed.stream
        await stream.send_all(b"SET a 1\r\nGET a\r\n")
        await trio.testing.wait_all_tasks_blocked()
        server.drain()
        data = b""
        while chunk := await stream.receive_some():
            data += chunk
        assert data == b"+OK\r\n$1\r\n1\r\n"


# -- pub/sub -----------------------------------------------------------------------------------


async def subscribed(connect: Connect, *channels: str) -> Client:
    client = await connect()
    client.framed.feed([b"SUBSCRIBE", *(c.encode() for c in channels)])
    await client.framed.flush()
    for i, channel in enumerate(channels, 1):
        assert await client._reply() == [b"subscribe", channel.encode(), i]
    return client


async def test_two_subscribers_get_every_message(autojump_clock: trio.abc.Clock) -> None:
    async with serving() as (_, _, connect):
        alice = await subscribed(connect, "news", "sport")
        bob = await subscribed(connect, "news")
        publisher = await connect()
        assert await publisher.execute("PUBLISH", "news", "one") == 2
        assert await publisher.execute("PUBLISH", "sport", "two") == 1
        assert await publisher.execute("PUBLISH", "weather", "three") == 0
        assert await publisher.execute("PUBLISH", "news", "four") == 2
        got_alice = [m async for m in take(alice, 3)]
        got_bob = [m async for m in take(bob, 2)]
        assert got_alice == [(b"news", b"one"), (b"sport", b"two"), (b"news", b"four")]
        assert got_bob == [(b"news", b"one"), (b"news", b"four")]
        # subscribed: only (UN)SUBSCRIBE, PING and QUIT
        with pytest.raises(ReplyError, match="Can't execute 'get'"):
            await bob.execute("GET", "k")
        assert await bob.execute("PING") == [b"pong", b""]
        assert await bob.execute("UNSUBSCRIBE") == [b"unsubscribe", b"news", 0]
        assert await bob.execute("GET", "k") is NULL  # a normal connection again
        assert await publisher.execute("PUBLISH", "news", "five") == 1
        assert [m async for m in take(alice, 1)] == [(b"news", b"five")]


async def take(client: Client, count: int) -> AsyncIterator[tuple[bytes, bytes]]:
    if count == 0:
        return
    async for message in client.messages():
        yield message
        count -= 1
        if count == 0:
            return


async def test_a_subscriber_that_does_not_read_is_dropped(
    autojump_clock: trio.abc.Clock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="mini_redis")
    async with serving(Db(backlog=64)) as (app, server, connect):
        reader = await subscribed(connect, "room")
        stuck = await subscribed(connect, "room")
        publisher = await connect()
        payload = "x" * 1000
        got: list[bytes] = []
        counts: list[int] = []

        async def read_all() -> None:
            async for _, message in take(reader, 300):
                got.append(message)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(read_all)
            for i in range(300):
                counts.append(await publisher.execute("PUBLISH", "room", f"{i} {payload}"))
        assert got == [f"{i} {payload}".encode() for i in range(300)]
        assert counts[0] == 2 and counts[-1] == 1  # the stuck one stopped counting
        await trio.testing.wait_all_tasks_blocked()
        assert len(app.db.channels[b"room"].subscribers) == 1
        assert any("dropping subscriber" in r.getMessage() for r in caplog.records)
        # the stuck connection was closed: after what was buffered, its input ends
        stream = stuck.framed.stream
        while await stream.receive_some():
            pass
        assert server.statistics().errored == 0


async def test_a_subscriber_over_its_byte_limit_is_dropped(autojump_clock: trio.abc.Clock) -> None:
    async with serving(Db(backlog=10_000, max_pending=100_000)) as (app, _, connect):
        stuck = await subscribed(connect, "big")
        publisher = await connect()
        counts = [await publisher.execute("PUBLISH", "big", "y" * 10_000) for _ in range(40)]
        assert 1 in counts and counts[-1] == 0
        await trio.testing.wait_all_tasks_blocked()
        assert b"big" not in app.db.channels  # its only subscriber is gone
        await stuck.aclose()
