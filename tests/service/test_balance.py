"""Balance: p2c over PeakEwma or pending requests, skipping endpoints that aren't ready, fed by
discovery without dropping requests in flight."""

from __future__ import annotations

import itertools
import random
from collections.abc import Mapping
from typing import Any

import pytest
import trio
import trio.testing

from runtime.service import (
    Balance,
    PeakEwma,
    PendingRequests,
    Service,
    ServiceBuilder,
    WatchDiscover,
    open_balance,
    service_fn,
)
from runtime.service.balance import Endpoint
from runtime.sync import watch
from runtime.testing import mock_service

FAST, SLOW = 0.010, 0.100


class RoundRobin(Service[Any, Any]):
    """The baseline: each endpoint in turn, whatever its latency."""

    def __init__(self, services: list[Service[Any, Any]]) -> None:
        self._next = itertools.cycle(services)

    async def __call__(self, request: Any) -> Any:
        return await next(self._next)(request)


def sleeper(latency: float, calls: dict[int, int], key: int) -> Service[int, int]:
    async def call(request: int) -> int:
        calls[key] += 1
        await trio.sleep(latency)
        return request

    return service_fn(call)


async def drive(svc: Service[int, int], requests: int, concurrency: int) -> list[float]:
    """Send ``requests`` requests from ``concurrency`` tasks; return each one's latency."""
    latencies: list[float] = []
    numbers = iter(range(requests))

    async def worker() -> None:
        for n in numbers:
            start = trio.current_time()
            assert await svc(n) == n
            latencies.append(trio.current_time() - start)

    async with trio.open_nursery() as nursery:
        for _ in range(concurrency):
            nursery.start_soon(worker)
    assert len(latencies) == requests
    return latencies


def p99(latencies: list[float]) -> float:
    ranked = sorted(latencies)
    return ranked[int(0.99 * len(ranked)) - 1]


@pytest.mark.parametrize("seed", [1, 2])
async def test_peak_ewma_p99_is_at_least_3x_better_than_round_robin(
    autojump_clock: trio.abc.Clock, seed: int
) -> None:
    latencies = [FAST, FAST, SLOW]
    rr_calls = dict.fromkeys(range(3), 0)
    round_robin = RoundRobin([sleeper(lat, rr_calls, k) for k, lat in enumerate(latencies)])
    rr_p99 = p99(await drive(round_robin, 5000, concurrency=20))

    calls = dict.fromkeys(range(3), 0)
    balance: Balance[int, int, int] = Balance(load=PeakEwma(), rng=random.Random(seed))
    for key, latency in enumerate(latencies):
        balance.insert(key, sleeper(latency, calls, key))
    ewma_p99 = p99(await drive(balance, 5000, concurrency=20))

    assert rr_p99 == pytest.approx(SLOW)
    assert ewma_p99 * 3 <= rr_p99
    assert calls[2] < 50  # under 1% of the traffic found the slow endpoint
    assert sum(calls.values()) == 5000


async def test_removing_an_endpoint_through_discover_mid_run_fails_no_request(
    autojump_clock: trio.abc.Clock,
) -> None:
    calls = dict.fromkeys(range(3), 0)
    late_calls = 0
    in_flight_at_removal = 0
    balance_box: list[Balance[int, int, int]] = []

    def endpoint(key: int, latency: float) -> Service[int, int]:
        async def call(request: int) -> int:
            nonlocal late_calls
            if key not in balance_box[0]:
                late_calls += 1  # a new call to an endpoint already removed
            calls[key] += 1
            await trio.sleep(latency)
            return request

        return service_fn(call)

    endpoints = {0: endpoint(0, FAST), 1: endpoint(1, FAST), 2: endpoint(2, SLOW)}
    sender, receiver = watch.channel[Mapping[int, Service[int, int]]](dict(endpoints))
    done = 0

    async def remove_midway() -> None:
        nonlocal in_flight_at_removal
        while done < 2500:
            await trio.sleep(0.001)
        in_flight_at_removal = _pending(balance_box[0], 0)
        sender.send({1: endpoints[1], 2: endpoints[2]})

    async with open_balance(WatchDiscover(receiver), rng=random.Random(5)) as balance:
        balance_box.append(balance)
        numbers = iter(range(5000))
        results: list[int] = []

        async def worker() -> None:
            nonlocal done
            for n in numbers:
                results.append(await balance(n))
                done += 1

        async with trio.open_nursery() as nursery:
            nursery.start_soon(remove_midway)
            for _ in range(20):
                nursery.start_soon(worker)
        assert sorted(balance.keys()) == [1, 2]
    assert sorted(results) == list(range(5000))  # every request answered, none failed
    assert in_flight_at_removal > 0  # there were calls on it to keep alive
    assert late_calls == 0
    assert calls[0] > 0


def _pending(balance: Balance[int, int, int], key: int) -> int:
    for endpoint in balance.statistics().endpoints:
        if endpoint.key == key:
            return endpoint.pending
    raise AssertionError(f"no endpoint {key}")


async def test_endpoints_that_are_not_ready_are_skipped(autojump_clock: trio.abc.Clock) -> None:
    held, held_handle = mock_service()
    held_handle.hold()
    calls = dict.fromkeys(range(3), 0)
    balance: Balance[int, int, int] = Balance(rng=random.Random(0))
    balance.insert(0, held)
    balance.insert(1, sleeper(FAST, calls, 1))
    balance.insert(2, sleeper(FAST, calls, 2))
    for n in range(200):
        assert await balance(n) == n
    assert held_handle.statistics().calls == 0
    assert calls[1] + calls[2] == 200
    assert calls[1] > 0
    assert calls[2] > 0


async def test_pending_requests_load_prefers_the_idler_endpoint(
    autojump_clock: trio.abc.Clock,
) -> None:
    busy, busy_handle = mock_service()
    idle, idle_handle = mock_service()
    balance: Balance[str, Any, Any] = Balance(load=PendingRequests(), rng=random.Random(0))
    balance.insert("busy", busy)
    async with trio.open_nursery() as nursery:
        for n in range(3):
            nursery.start_soon(balance, n)  # only one endpoint yet: all three go to "busy"
        await trio.testing.wait_all_tasks_blocked()
        balance.insert("idle", idle)
        nursery.start_soon(balance, "next")
        await trio.testing.wait_all_tasks_blocked()
        assert idle_handle.statistics().calls == 1
        loads = {e.key: e.load for e in balance.statistics().endpoints}
        assert loads == {"busy": 3.0, "idle": 1.0}
        nursery.cancel_scope.cancel()
    assert busy_handle.statistics().calls == 3


async def test_calls_wait_for_the_first_endpoint(autojump_clock: trio.abc.Clock) -> None:
    balance: Balance[str, Any, Any] = Balance()
    assert not balance.is_ready()
    with pytest.raises(trio.WouldBlock), balance.ready_nowait():
        pass  # pragma: no cover
    results: list[Any] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(lambda: _append(results, balance("x")))
        await trio.sleep(1.0)
        assert results == []
        balance.insert("a", service_fn(_echo))
    assert results == ["x"]


async def _echo(request: Any) -> Any:
    await trio.lowlevel.checkpoint()
    return request


async def _append(results: list[Any], call: Any) -> None:
    results.append(await call)


async def test_waiting_for_readiness_is_woken_by_a_change(autojump_clock: trio.abc.Clock) -> None:
    held, held_handle = mock_service()
    held_handle.hold()
    balance: Balance[str, Any, Any] = Balance()
    balance.insert("held", held)
    results: list[Any] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(lambda: _append(results, balance("x")))
        await trio.sleep(1.0)
        assert results == []
        balance.insert("ready", service_fn(_echo))
    assert results == ["x"]
    assert held_handle.statistics().reserved == 0


async def test_cancelled_while_waiting_reserves_nothing(autojump_clock: trio.abc.Clock) -> None:
    held, held_handle = mock_service()
    held_handle.hold()
    balance: Balance[str, Any, Any] = Balance()
    balance.insert("held", held)
    with trio.move_on_after(1.0):
        await balance("x")
    with trio.move_on_after(1.0):
        async with balance.ready():
            pass  # pragma: no cover
    stats = held_handle.statistics()
    assert (stats.reserved, stats.calls, stats.allowance) == (0, 0, 0)


async def test_reservations_pick_and_hold_an_endpoint(autojump_clock: trio.abc.Clock) -> None:
    inner, handle = mock_service()
    handle.allow(1)
    balance: Balance[str, Any, Any] = Balance()
    balance.insert("only", inner)
    async with balance.ready():
        assert handle.statistics().reserved == 1
        assert not balance.is_ready()
    assert handle.statistics().reserved == 0
    with balance.ready_nowait() as call:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(call, "y")
            (await handle.next_request()).respond("z")
    assert handle.statistics().allowance == 0


async def test_insert_replaces_and_remove_is_idempotent(autojump_clock: trio.abc.Clock) -> None:
    calls = dict.fromkeys(range(2), 0)
    balance: Balance[str, int, int] = Balance()
    balance.insert("a", sleeper(FAST, calls, 0))
    balance.insert("a", sleeper(FAST, calls, 1))
    assert len(balance) == 1
    await balance(1)
    assert calls == {0: 0, 1: 1}
    assert "a" in balance
    balance.remove("a")
    balance.remove("a")
    assert len(balance) == 0
    assert "a" not in balance


async def test_a_failure_is_a_peak_of_failure_rtt_not_a_fast_sample(
    autojump_clock: trio.abc.Clock,
) -> None:
    async def fails(request: Any) -> Any:
        raise ConnectionRefusedError

    balance: Balance[str, Any, Any] = Balance(load=PeakEwma(default_rtt=0.5, failure_rtt=2.0))
    balance.insert("broken", service_fn(fails))
    with pytest.raises(ConnectionRefusedError):
        await balance("x")
    (stats,) = balance.statistics().endpoints
    assert stats.pending == 0
    assert stats.load == pytest.approx(2.0)  # not the near-zero time the failure took


async def test_retries_after_a_fast_failure_go_to_the_other_endpoint(
    autojump_clock: trio.abc.Clock,
) -> None:
    """An endpoint that refuses at once must not stay the lightest (the oldest, never
    sampled, fades lowest): its failure pushes it away, so the next call goes elsewhere."""

    async def fails(request: Any) -> Any:
        raise ConnectionRefusedError

    balance: Balance[str, Any, Any] = Balance(load=PeakEwma())
    balance.insert("broken", service_fn(fails))  # inserted first: the lowest faded guess
    await trio.sleep(1)
    balance.insert("fine", service_fn(_echo))
    with pytest.raises(ConnectionRefusedError):
        await balance("x")
    assert [await balance(n) for n in range(5)] == list(range(5))


async def test_peak_ewma_reacts_to_peaks_at_once_and_forgets_slowly() -> None:
    load = PeakEwma(default_rtt=0.03, decay=10.0)
    endpoint: Endpoint[str, Any, Any] = Endpoint("e", service_fn(_echo), load.initial_rtt(), 0.0)
    assert load.cost(endpoint, 0.0) == pytest.approx(0.03)
    endpoint.samples = 1
    load.observe(endpoint, 0.010, 1.0)
    assert endpoint.rtt == pytest.approx(0.010)  # the first sample replaces the default
    endpoint.samples = 2
    load.observe(endpoint, 0.200, 1.1)
    assert endpoint.rtt == pytest.approx(0.200)  # a peak is taken at once
    endpoint.samples = 3
    load.observe(endpoint, 0.010, 2.1)
    kept = pytest.approx(0.2 * 0.904837 * 0.904837 + 0.01 * (1 - 0.904837), rel=1e-4)
    assert endpoint.rtt == kept  # an EWMA step with weight exp(-1/10)
    endpoint.pending = 1
    assert load.cost(endpoint, 2.1) == pytest.approx(endpoint.rtt * 2)
    assert load.cost(endpoint, 12.1) == pytest.approx(endpoint.rtt * 2 * 0.367879, rel=1e-4)


@pytest.mark.usefixtures("budget_of_one")
async def test_ready_is_a_checkpoint() -> None:
    balance: Balance[str, Any, Any] = Balance()
    balance.insert("a", service_fn(_echo))
    with trio.testing.assert_checkpoints():
        async with balance.ready() as call:
            assert await call(1) == 1


async def test_concurrent_calls_over_endpoints_with_a_timeout_keep_scopes_nested(
    autojump_clock: trio.abc.Clock,
) -> None:
    # Three calls, two endpoints of one slot each: the third waits on an endpoint's ready(),
    # whose Timeout opens a cancel scope that must not outlive the balancer's wake-up scope.
    stack = ServiceBuilder().timeout(1).concurrency_limit(1)
    endpoints = [stack.service(service_fn(_echo)) for _ in range(2)]
    balance: Balance[int, Any, Any] = Balance(rng=random.Random(0))
    for key, endpoint in enumerate(endpoints):
        balance.insert(key, endpoint)
    results: list[Any] = []
    async with trio.open_nursery() as nursery:
        for n in range(3):
            nursery.start_soon(lambda n=n: _append(results, balance(n)))
    assert sorted(results) == [0, 1, 2]
    assert [e.pending for e in balance.statistics().endpoints] == [0, 0]


async def test_a_change_as_a_reservation_arrives_sends_the_request_once(
    autojump_clock: trio.abc.Clock,
) -> None:
    first, first_handle = mock_service()
    first_handle.hold()
    second, second_handle = mock_service()
    balance: Balance[str, Any, Any] = Balance(rng=random.Random(0))
    balance.insert("first", first)
    results: list[Any] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(lambda: _append(results, balance("x")))
        await trio.testing.wait_all_tasks_blocked()
        first_handle.allow(1)  # the waiter gets its reservation ...
        balance.insert("second", second)  # ... and, before it runs, the set changes
        await trio.testing.wait_all_tasks_blocked()
        handles = (first_handle, second_handle)
        queued = [handle for handle in handles if handle.statistics().queued]
        assert len(queued) == 1
        queued[0].next_request_nowait().respond("y")
        await trio.testing.wait_all_tasks_blocked()
        assert not any(handle.statistics().queued for handle in handles)
    assert results == ["y"]
    assert sum(handle.statistics().calls for handle in handles) == 1
    assert [handle.statistics().reserved for handle in handles] == [0, 0]


async def test_ready_nowait_avoids_the_keys_it_is_given_while_another_is_ready(
    autojump_clock: trio.abc.Clock,
) -> None:
    calls = dict.fromkeys(range(3), 0)
    balance: Balance[int, int, int] = Balance(rng=random.Random(1))
    for key in range(3):
        balance.insert(key, sleeper(FAST, calls, key))
    for n in range(100):
        with balance.ready_nowait(avoid={0, 1}) as call:
            assert await call(n) == n
    assert calls == {0: 0, 1: 0, 2: 100}
    # when only avoided endpoints are left, one of them is still better than none
    balance.remove(2)
    with balance.ready_nowait(avoid={0, 1}) as call:
        assert await call(7) == 7
    assert calls[0] + calls[1] == 1
