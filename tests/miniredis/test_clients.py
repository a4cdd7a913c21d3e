"""Clients we did not write against mini-redis as a subprocess: redis-py and redis-cli.

TTLs here are real and short (a few hundred ms), since MockClock cannot drive another
process; each test polls until the key is gone, within a bounded loop, and checks it lived
at least its TTL. The mock-clock expiry tests are in test_server.py.
"""

from __future__ import annotations

import signal
import socket
import struct
import subprocess
import time
from collections.abc import Iterator

import pytest
import redis

from .conftest import LineReader, ServerProcess, need_tool

POLL = 0.01  # seconds between polls of a key that should expire
POLL_LIMIT = 10.0  # the most a poll may take before it is a failure


@pytest.fixture
def r(mini_redis_server: ServerProcess) -> Iterator[redis.Redis]:
    # RESP2: redis-py 8 asks for RESP3 (HELLO 3) by default, which mini-redis refuses.
    client = redis.Redis(port=mini_redis_server.port, protocol=2, socket_timeout=10)
    yield client
    client.close()


def wait_gone(exists: object, ttl: float) -> float:
    """Poll ``exists()`` until False; how long the key lived after the call began."""
    start = time.monotonic()
    while exists():  # type: ignore[operator]
        if time.monotonic() - start > POLL_LIMIT:
            raise AssertionError(f"a key with a {ttl} s TTL still exists after {POLL_LIMIT} s")
        time.sleep(POLL)  # a bounded poll of another process's clock, not a settle
    return time.monotonic() - start


# -- redis-py ----------------------------------------------------------------------------------


def test_redis_py_commands(r: redis.Redis) -> None:
    assert r.ping() is True
    assert r.echo("hello") == b"hello"
    assert r.get("k") is None
    assert r.set("k", "v") is True
    assert r.get("k") == b"v"
    assert r.set("k", "w", nx=True) is None
    assert r.set("k", "w", xx=True) is True
    assert r.set("missing", "w", xx=True) is None
    assert r.exists("k", "k", "missing") == 2
    assert r.incr("n") == 1
    assert r.incr("n", 9) == 10
    assert r.delete("k", "n", "missing") == 2
    assert r.set("t", "v", ex=100) is True
    assert r.ttl("t") == 100
    assert r.expire("t", 50) is True
    assert r.ttl("t") == 50
    assert r.expire("missing", 50) is False
    assert r.ttl("missing") == -2
    assert r.config_get("save") == {"save": ""}
    assert r.config_get("appendonly") == {"appendonly": "no"}


def test_redis_py_errors_leave_the_connection_usable(r: redis.Redis) -> None:
    with pytest.raises(redis.ResponseError, match="unknown command 'FLY', with args"):
        r.execute_command("FLY", "away")
    r.rpush("list", "a")
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        r.get("list")
    r.set("text", "abc")
    with pytest.raises(redis.ResponseError, match="not an integer"):
        r.incr("text")
    with pytest.raises(redis.ResponseError, match="wrong number of arguments for 'get'"):
        r.execute_command("GET")
    assert r.ping() is True
    assert r.connection_pool._created_connections == 1  # type: ignore[attr-defined]


def test_redis_py_pipeline(r: redis.Redis) -> None:
    pipe = r.pipeline(transaction=False)  # no MULTI/EXEC in mini-redis
    for i in range(100):
        pipe.set(f"key{i}", i)
    for i in range(100):
        pipe.incr(f"key{i}")
    pipe.get("key99")
    replies = pipe.execute()
    assert replies == [True] * 100 + list(range(1, 101)) + [b"100"]


def test_redis_py_real_expiry(r: redis.Redis) -> None:
    assert r.set("short", "v", px=300) is True
    assert 0 < r.pttl("short") <= 300
    lived = wait_gone(lambda: r.exists("short"), 0.3)
    assert lived >= 0.3 - 0.05  # not before its TTL (less what passed before the poll began)
    assert r.get("short") is None
    r.set("later", "v")
    assert r.pexpire("later", 200) is True
    assert wait_gone(lambda: r.exists("later"), 0.2) >= 0.2 - 0.05


def test_redis_py_pubsub_two_subscribers(r: redis.Redis) -> None:
    subscribers = [r.pubsub(), r.pubsub()]
    try:
        subscribers[0].subscribe("news", "sport")
        subscribers[1].subscribe("news")
        for sub, channels in zip(subscribers, [[b"news", b"sport"], [b"news"]], strict=True):
            for count, channel in enumerate(channels, 1):
                message = sub.get_message(timeout=10)
                assert message == {
                    "type": "subscribe",
                    "pattern": None,
                    "channel": channel,
                    "data": count,
                }
        assert r.publish("news", "one") == 2
        assert r.publish("sport", "two") == 1
        assert r.publish("nobody", "three") == 0
        got = [[], []]  # type: list[list[tuple[bytes, bytes]]]
        for sub, into, count in zip(subscribers, got, [2, 1], strict=True):
            for _ in range(count):
                message = sub.get_message(timeout=10)
                assert message is not None and message["type"] == "message"
                into.append((message["channel"], message["data"]))
        assert got == [[(b"news", b"one"), (b"sport", b"two")], [(b"news", b"one")]]
        subscribers[1].unsubscribe("news")
        assert subscribers[1].get_message(timeout=10)["type"] == "unsubscribe"  # type: ignore[index]
        assert r.publish("news", "four") == 1
    finally:
        for sub in subscribers:
            sub.close()


# -- redis-cli ---------------------------------------------------------------------------------


def cli(server: ServerProcess, *args: str, stdin: str | None = None) -> str:
    path = need_tool("redis-cli", "redis-tools")
    proc = subprocess.run(
        [path, "-p", str(server.port), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_redis_cli_commands(mini_redis_server: ServerProcess) -> None:
    s = mini_redis_server
    assert cli(s, "ping") == "PONG\n"
    assert cli(s, "set", "greeting", "hello") == "OK\n"
    assert cli(s, "get", "greeting") == "hello\n"
    assert cli(s, "get", "nope") == "\n"
    assert cli(s, "set", "greeting", "x", "nx") == "\n"
    assert cli(s, "incr", "visits") == "1\n"
    assert cli(s, "exists", "greeting", "visits", "nope") == "2\n"
    assert cli(s, "set", "t", "v", "ex", "100") == "OK\n"
    assert cli(s, "ttl", "t") == "100\n"
    assert cli(s, "del", "greeting", "t") == "2\n"
    assert cli(s, "echo", "hi there") == "hi there\n"
    assert cli(s, "flub", "a").startswith("ERR unknown command 'flub', with args beginning with:")
    assert cli(s, "incr").startswith("ERR wrong number of arguments for 'incr' command")
    assert cli(s, "config", "get", "appendonly") == "appendonly\nno\n"


def test_redis_cli_pipe_mode(mini_redis_server: ServerProcess) -> None:
    commands = "".join(f"SET key{i} {i}\r\nINCR key{i}\r\n" for i in range(1000))
    out = cli(mini_redis_server, "--pipe", stdin=commands)
    assert "errors: 0, replies: 2000" in out
    assert cli(mini_redis_server, "get", "key999") == "1000\n"


def test_redis_cli_real_expiry(mini_redis_server: ServerProcess) -> None:
    s = mini_redis_server
    assert cli(s, "set", "short", "v", "px", "300") == "OK\n"
    lived = wait_gone(lambda: cli(s, "exists", "short") == "1\n", 0.3)
    assert lived >= 0.3 - 0.1  # less the redis-cli start-up before the first poll
    assert cli(s, "ttl", "short") == "-2\n"


def test_redis_cli_pubsub_two_subscribers(mini_redis_server: ServerProcess) -> None:
    path = need_tool("redis-cli", "redis-tools")
    procs = [
        subprocess.Popen(
            [path, "-p", str(mini_redis_server.port), "subscribe", "news"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(2)
    ]
    try:
        readers = [LineReader(proc.stdout) for proc in procs]
        for reader in readers:
            assert [reader.line() for _ in range(3)] == ["subscribe", "news", "1"]
        assert cli(mini_redis_server, "publish", "news", "hello") == "2\n"
        for reader in readers:
            assert [reader.line() for _ in range(3)] == ["message", "news", "hello"]
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=10)
            assert proc.stdout is not None
            proc.stdout.close()


def test_a_client_reset_is_a_normal_end(mini_redis_server: ServerProcess) -> None:
    """A client that resets mid-pipeline (SO_LINGER 0) costs no traceback; others go on."""
    for _ in range(5):
        sock = socket.create_connection(("127.0.0.1", mini_redis_server.port), timeout=10)
        sock.sendall(b"PING\r\n")
        assert sock.recv(64) == b"+PONG\r\n"
        sock.sendall(b"SET k " + b"v" * 1000 + b"\r\n" + b"GET k\r\n" * 2000)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()  # unread replies and linger 0: the kernel sends a reset
    client = redis.Redis(port=mini_redis_server.port, protocol=2, socket_timeout=10)
    assert client.ping() is True
    client.close()
    # the fixture then checks: exit 0 on SIGTERM, and no traceback on stderr


def test_sigint_drains_and_exits_0() -> None:
    server = ServerProcess()
    client = redis.Redis(port=server.port, protocol=2, socket_timeout=10)
    assert client.set("k", "v") is True
    server.proc.send_signal(signal.SIGINT)
    server.proc.wait(timeout=20)  # exits on the SIGINT alone (stop() would send a SIGTERM)
    status, err = server.stop()
    client.close()
    assert status == 0, err
    assert "drained" in err
