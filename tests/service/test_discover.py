"""Discover sources: a static set, a watch channel of sets, and DNS re-resolution."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterable, Mapping
from typing import Any

import pytest
import trio
import trio.testing

from runtime.service import (
    Balance,
    DnsDiscover,
    Insert,
    Remove,
    Service,
    StaticDiscover,
    WatchDiscover,
    open_balance,
    service_fn,
)
from runtime.service.discover import Address, diff
from runtime.sync import watch


async def _echo(request: Any) -> Any:
    await trio.lowlevel.checkpoint()
    return request


def named(name: str) -> Service[Any, str]:
    async def call(request: Any) -> str:
        await trio.lowlevel.checkpoint()
        return name

    return service_fn(call)


async def collect(discover: Any, count: int) -> list[Any]:
    changes = []
    async for change in discover:
        changes.append(change)
        if len(changes) == count:
            break
    return changes


async def test_static_discover_inserts_each_endpoint_then_ends() -> None:
    a, b = named("a"), named("b")
    assert [change async for change in StaticDiscover({"a": a, "b": b})] == [
        Insert("a", a),
        Insert("b", b),
    ]
    assert [change async for change in StaticDiscover.of([a, b])] == [Insert(0, a), Insert(1, b)]


async def test_diff_removes_then_inserts_new_and_replaced_keys() -> None:
    a, b, c, b2 = named("a"), named("b"), named("c"), named("b2")
    assert diff({"a": a, "b": b}, {"b": b2, "c": c}) == [
        Remove("a"),
        Insert("b", b2),
        Insert("c", c),
    ]
    assert diff({"a": a}, {"a": a}) == []


async def test_watch_discover_follows_the_channel_and_ends_with_it() -> None:
    a, b, c = named("a"), named("b"), named("c")
    sender, receiver = watch.channel[Mapping[str, Service[Any, str]]]({"a": a})
    seen: list[Any] = []

    async def follow() -> None:
        async for change in WatchDiscover(receiver):
            seen.append(change)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(follow)
        await trio.testing.wait_all_tasks_blocked()
        assert seen == [Insert("a", a)]
        sender.send({"a": a, "b": b})
        await trio.testing.wait_all_tasks_blocked()
        sender.send({"b": b, "c": c})
        await trio.testing.wait_all_tasks_blocked()
        sender.close()
    assert seen == [Insert("a", a), Insert("b", b), Remove("a"), Insert("c", c)]


async def test_balance_follows_a_watch_channel(autojump_clock: trio.abc.Clock) -> None:
    sender, receiver = watch.channel[Mapping[str, Service[Any, str]]]({})
    async with open_balance(WatchDiscover(receiver)) as balance:
        results: list[str] = []

        async def call() -> None:
            results.append(await balance("x"))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(call)  # waits: no endpoints yet
            await trio.sleep(1.0)
            assert results == []
            sender.send({"only": named("only")})
        assert results == ["only"]
        sender.send({"other": named("other")})
        await trio.testing.wait_all_tasks_blocked()
        assert balance.keys() == ["other"]
        assert await balance("y") == "other"


class FakeDns:
    """A resolver the test scripts: each lookup pops the next answer (an address list or an
    exception); the last answer repeats."""

    def __init__(self, *answers: list[Address] | OSError) -> None:
        self.answers = list(answers)
        self.lookups: list[tuple[str, int, float]] = []

    async def __call__(self, host: str, port: int) -> Iterable[Address]:
        self.lookups.append((host, port, trio.current_time()))
        await trio.lowlevel.checkpoint()
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, OSError):
            raise answer
        return answer


async def test_dns_discover_reresolves_on_an_interval(
    autojump_clock: trio.abc.Clock, caplog: pytest.LogCaptureFixture
) -> None:
    dns = FakeDns(
        [("10.0.0.1", 80), ("10.0.0.2", 80)],
        [("10.0.0.2", 80), ("10.0.0.3", 80)],
        socket.gaierror(socket.EAI_AGAIN, "temporary failure"),
        [],
    )
    made: list[Address] = []

    def make_service(address: Address) -> Service[Any, Any]:
        made.append(address)
        return service_fn(_echo)

    discover = DnsDiscover("backend.internal", 80, make_service, interval=5.0, resolve=dns)
    start = trio.current_time()
    with caplog.at_level(logging.WARNING, logger="runtime.service.discover"):
        changes = await collect(discover, 6)
    assert [type(change).__name__ for change in changes] == [
        "Insert",
        "Insert",
        "Remove",
        "Insert",
        "Remove",
        "Remove",
    ]
    assert [change.key for change in changes] == [
        ("10.0.0.1", 80),
        ("10.0.0.2", 80),
        ("10.0.0.1", 80),
        ("10.0.0.3", 80),
        ("10.0.0.2", 80),
        ("10.0.0.3", 80),
    ]
    assert made == [("10.0.0.1", 80), ("10.0.0.2", 80), ("10.0.0.3", 80)]
    assert [round(t - start, 6) for _, _, t in dns.lookups] == [0.0, 5.0, 10.0, 15.0]
    assert {(host, port) for host, port, _ in dns.lookups} == {("backend.internal", 80)}
    assert "keeping the last known endpoints" in caplog.text  # the failure at 10 s changed nothing


async def test_dns_discover_feeds_a_balance(autojump_clock: trio.abc.Clock) -> None:
    dns = FakeDns([("10.0.0.1", 8080)], [("10.0.0.1", 8080), ("10.0.0.2", 8080)])

    def make_service(address: Address) -> Service[Any, str]:
        return named(f"{address[0]}:{address[1]}")

    balance: Balance[Address, Any, str]
    discover = DnsDiscover("svc", 8080, make_service, interval=1.0, resolve=dns)
    async with open_balance(discover) as balance:
        assert await balance("x") == "10.0.0.1:8080"
        await trio.sleep(1.5)
        assert sorted(balance.keys()) == [("10.0.0.1", 8080), ("10.0.0.2", 8080)]


async def test_default_resolver_uses_getaddrinfo_on_loopback() -> None:
    from runtime.service.discover import resolve_tcp

    assert ("127.0.0.1", 9) in await resolve_tcp("127.0.0.1", 9)
