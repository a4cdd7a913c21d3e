"""CircuitBreaker: opens after N failures, rejects fast, one probe after the penalty, the
penalty doubles up to the max, a successful probe closes it."""

from __future__ import annotations

import random
from typing import Any

import outcome
import pytest
import trio
import trio.testing

from runtime.service import (
    CircuitBreaker,
    CircuitBreakerLayer,
    CircuitOpen,
    CircuitState,
    ConsecutiveFailures,
    FailureRate,
    service_fn,
)
from runtime.service.circuit_breaker import TRANSITIONS, Event
from runtime.testing import mock_service


class Down(Exception):
    pass


class Switch:
    """An inner service whose health the test flips; counts the calls that reach it."""

    def __init__(self) -> None:
        self.healthy = False
        self.calls = 0

    async def __call__(self, request: Any) -> Any:
        self.calls += 1
        await trio.lowlevel.checkpoint()
        if not self.healthy:
            raise Down("still down")
        return "ok"


def breaker(switch: Switch, **kwargs: Any) -> CircuitBreaker[Any, Any]:
    settings: dict[str, Any] = {
        "accrual": ConsecutiveFailures(3),
        "min_penalty": 1.0,
        "max_penalty": 8.0,
        "jitter": 0.0,
    }
    settings.update(kwargs)
    return CircuitBreaker(service_fn(switch), **settings)


async def fail_times(svc: CircuitBreaker[Any, Any], n: int) -> None:
    for _ in range(n):
        with pytest.raises(Down):
            await svc("x")


async def test_opens_after_n_consecutive_failures() -> None:
    switch = Switch()
    svc = breaker(switch)
    await fail_times(svc, 2)
    assert svc.state is CircuitState.CLOSED
    await fail_times(svc, 1)
    assert svc.state is CircuitState.OPEN
    assert not svc.is_ready()


async def test_a_success_resets_the_count() -> None:
    switch = Switch()
    svc = breaker(switch)
    await fail_times(svc, 2)
    switch.healthy = True
    assert await svc("x") == "ok"
    switch.healthy = False
    await fail_times(svc, 2)
    assert svc.state is CircuitState.CLOSED


async def test_rejects_fast_while_open_without_calling_the_inner_service(
    autojump_clock: trio.abc.Clock,
) -> None:
    switch = Switch()
    svc = breaker(switch)
    await fail_times(svc, 3)
    calls = switch.calls
    await trio.sleep(0.25)
    start = trio.current_time()
    for _ in range(100):
        with pytest.raises(CircuitOpen) as info:
            await svc("x")
    assert trio.current_time() == start  # no waiting at all
    assert switch.calls == calls
    assert info.value.retry_after == pytest.approx(0.75)
    with pytest.raises(CircuitOpen):
        async with svc.ready():
            pass  # pragma: no cover
    with pytest.raises(trio.WouldBlock), svc.ready_nowait():
        pass  # pragma: no cover


async def test_exactly_one_probe_after_the_penalty(autojump_clock: trio.abc.Clock) -> None:
    inner, handle = mock_service()
    svc = CircuitBreaker(inner, accrual=ConsecutiveFailures(1), min_penalty=1.0, jitter=0.0)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_expect, svc, Down)
        (await handle.next_request()).fail(Down())
    assert svc.state is CircuitState.OPEN
    await trio.sleep(1.0)
    assert svc.state is CircuitState.HALF_OPEN
    assert svc.is_ready()
    rejected: list[CircuitOpen] = []

    async def caller() -> None:
        try:
            await svc("x")
        except CircuitOpen as exc:
            rejected.append(exc)

    async with trio.open_nursery() as nursery:
        for _ in range(5):
            nursery.start_soon(caller)
        probe = await handle.next_request()
        await trio.testing.wait_all_tasks_blocked()
        assert svc.state is CircuitState.PROBING
        assert len(rejected) == 4
        assert handle.statistics().queued == 0  # only the probe got through
        probe.respond("recovered")
    assert svc.state is CircuitState.CLOSED
    assert rejected[0].retry_after == 0.0


async def _expect(svc: CircuitBreaker[Any, Any], error: type[BaseException]) -> None:
    with pytest.raises(error):
        await svc("x")


async def test_penalty_doubles_up_to_the_max(autojump_clock: trio.abc.Clock) -> None:
    switch = Switch()
    svc = breaker(switch)
    await fail_times(svc, 3)
    penalties = [svc.penalty]
    for _ in range(5):
        opened_at = trio.current_time()
        while svc.state is CircuitState.OPEN:
            await trio.sleep(0.125)
        assert trio.current_time() - opened_at == pytest.approx(penalties[-1])
        await fail_times(svc, 1)  # the probe fails
        assert svc.state is CircuitState.OPEN
        penalties.append(svc.penalty)
    assert penalties == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]


async def test_closes_on_a_successful_probe_and_resets_the_penalty(
    autojump_clock: trio.abc.Clock,
) -> None:
    switch = Switch()
    svc = breaker(switch)
    await fail_times(svc, 3)
    await trio.sleep(1.0)
    await fail_times(svc, 1)  # probe fails: 2 s penalty
    assert svc.penalty == 2.0
    await trio.sleep(2.0)
    switch.healthy = True
    assert await svc("probe") == "ok"
    assert svc.state is CircuitState.CLOSED
    switch.healthy = False
    await fail_times(svc, 3)
    assert svc.penalty == 1.0  # back to the minimum


async def test_jitter_stays_between_base_and_max(autojump_clock: trio.abc.Clock) -> None:
    switch = Switch()
    svc = breaker(switch, jitter=0.5, rng=random.Random(11), max_penalty=5.0)
    await fail_times(svc, 3)
    bases = [1.0, 2.0, 4.0, 5.0, 5.0]
    for base in bases:
        assert base <= svc.penalty <= min(5.0, base * 1.5)
        await trio.sleep(svc.penalty)
        await fail_times(svc, 1)


async def test_cancelled_probe_lets_the_next_call_probe(autojump_clock: trio.abc.Clock) -> None:
    inner, handle = mock_service()
    svc = CircuitBreaker(inner, accrual=ConsecutiveFailures(1), min_penalty=1.0, jitter=0.0)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_expect, svc, Down)
        (await handle.next_request()).fail(Down())
    await trio.sleep(1.0)
    with trio.move_on_after(0.5):
        await svc("probe that gives up")
    assert svc.state is CircuitState.HALF_OPEN
    with trio.move_on_after(0.5):
        async with svc.ready():
            assert svc.state is CircuitState.PROBING
            await trio.sleep_forever()
    assert svc.state is CircuitState.HALF_OPEN
    with svc.ready_nowait():
        assert svc.state is CircuitState.PROBING
    assert svc.state is CircuitState.HALF_OPEN  # unused probe reservation given back
    async with trio.open_nursery() as nursery:
        nursery.start_soon(svc, "real probe")
        (await handle.next_request()).respond("ok")
    assert svc.state is CircuitState.CLOSED
    assert handle.statistics().reserved == 0


async def test_a_nowait_probe_whose_block_fails_is_given_back(
    autojump_clock: trio.abc.Clock,
) -> None:
    inner, handle = mock_service()
    svc = CircuitBreaker(inner, accrual=ConsecutiveFailures(1), min_penalty=1.0, jitter=0.0)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_expect, svc, Down)
        (await handle.next_request()).fail(Down())
    await trio.sleep(1.0)
    assert svc.state is CircuitState.HALF_OPEN
    handle.hold()  # the inner service is not ready: no admission is spent on it
    with pytest.raises(trio.WouldBlock), svc.ready_nowait():
        pass  # pragma: no cover
    assert svc.state is CircuitState.HALF_OPEN
    handle.allow(None)
    with pytest.raises(KeyError), svc.ready_nowait():
        assert svc.state is CircuitState.PROBING
        assert handle.statistics().reserved == 1
        raise KeyError("the caller's own failure, before any call")
    assert svc.state is CircuitState.HALF_OPEN  # the probe is back, the reservation too
    assert handle.statistics().reserved == 0


async def test_late_answers_do_not_decide_while_open(autojump_clock: trio.abc.Clock) -> None:
    inner, handle = mock_service()
    svc = CircuitBreaker(inner, accrual=ConsecutiveFailures(1), min_penalty=1.0, jitter=0.0)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(svc, "slow")
        slow = await handle.next_request()
        nursery.start_soon(_expect, svc, Down)
        (await handle.next_request()).fail(Down())
        await trio.testing.wait_all_tasks_blocked()
        assert svc.state is CircuitState.OPEN
        slow.respond("late success")
    assert svc.state is CircuitState.OPEN


async def test_failure_rate_accrual(autojump_clock: trio.abc.Clock) -> None:
    switch = Switch()
    svc = breaker(switch, accrual=FailureRate(rate=0.5, window=10.0, min_requests=4))
    switch.healthy = True
    for _ in range(3):
        await svc("x")
    switch.healthy = False
    await fail_times(svc, 2)
    assert svc.state is CircuitState.CLOSED  # 2 of 5
    await fail_times(svc, 1)
    assert svc.state is CircuitState.OPEN  # 3 of 6


async def test_responses_can_count_as_failures() -> None:
    async def status(request: Any) -> int:
        return 503

    def is_failure(result: outcome.Outcome[int]) -> bool:
        return isinstance(result, outcome.Error) or result.unwrap() >= 500

    svc = CircuitBreaker(service_fn(status), accrual=ConsecutiveFailures(2), is_failure=is_failure)
    assert await svc("a") == 503
    assert await svc("b") == 503
    assert svc.state is CircuitState.OPEN


async def test_transition_table_is_complete_and_guards_illegal_events() -> None:
    assert set(TRANSITIONS) == set(CircuitState)
    for state, moves in TRANSITIONS.items():
        if state is not CircuitState.CLOSED:
            # Ordinary outcomes are late answers outside CLOSED; only the probe decides.
            assert moves[Event.SUCCESS] is state
            assert moves[Event.FAILURE] is state
        assert all(target in CircuitState for target in moves.values())
    svc = breaker(Switch())
    with pytest.raises(RuntimeError, match="not legal"):
        svc._fire(Event.PROBE_OK)


async def test_layer_and_validation() -> None:
    svc = CircuitBreakerLayer(failures=2, jitter=0.0).layer(service_fn(Switch()))
    assert isinstance(svc.accrual, ConsecutiveFailures)
    assert svc.accrual.failures == 2
    rate = CircuitBreakerLayer(accrual=lambda: FailureRate(0.3)).layer(service_fn(Switch()))
    assert isinstance(rate.accrual, FailureRate)
    with pytest.raises(ValueError, match="min_penalty"):
        CircuitBreaker(service_fn(Switch()), min_penalty=5.0, max_penalty=1.0)
    with pytest.raises(ValueError, match="'rate' must be > 0"):
        FailureRate(rate=0.0)
    with pytest.raises(ValueError, match="'rate' must be <= 1"):
        FailureRate(rate=1.5)
    with pytest.raises(ValueError, match="'jitter' must be >= 0"):
        CircuitBreaker(service_fn(Switch()), jitter=-0.1)
    with pytest.raises(ValueError, match="'max_penalty' must be > 0"):
        CircuitBreakerLayer(max_penalty=0.0)  # at construction, not when it first wraps
    with pytest.raises(ValueError, match="min_penalty"):
        CircuitBreakerLayer(min_penalty=5.0, max_penalty=1.0)


async def test_ready_is_a_checkpoint() -> None:
    svc = breaker(Switch())
    with trio.testing.assert_checkpoints():
        async with svc.ready():
            pass
