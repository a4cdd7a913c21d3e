"""Retry: policy, backoff with full jitter, and a budget that stops retry storms."""

from __future__ import annotations

import itertools
import random
from typing import Any

import attrs
import outcome
import pytest
import trio

from runtime.service import (
    TRANSIENT_ERRORS,
    Backoff,
    Budget,
    BudgetExhausted,
    ConcurrencyLimit,
    Elapsed,
    LoadShed,
    Overloaded,
    Retry,
    RetryLayer,
    RetryOn,
    ServiceBuilder,
    service_fn,
)
from runtime.testing import mock_service

TICK = 0.001  # the timer wheel's resolution: a sleep ends at most this late


class Flaky(Exception):
    pass


class Fatal(Exception):
    pass


def failing_then(answers: list[Any]) -> tuple[Any, list[Any]]:
    """A service that raises or returns the scripted answers in turn; records each request."""
    seen: list[Any] = []

    async def call(request: Any) -> Any:
        seen.append(request)
        await trio.lowlevel.checkpoint()
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    return service_fn(call), seen


async def test_retries_until_success() -> None:
    inner, seen = failing_then([Flaky(), Flaky(), "ok"])
    svc = Retry(inner, RetryOn(Flaky, attempts=3), backoff=None)
    assert await svc("req") == "ok"
    assert seen == ["req", "req", "req"]


async def test_gives_up_after_the_policy_says_so() -> None:
    inner, seen = failing_then([Flaky("1"), Flaky("2"), Flaky("3"), "never"])
    svc = Retry(inner, RetryOn(Flaky, attempts=3), backoff=None)
    with pytest.raises(Flaky, match="3"):
        await svc("req")
    assert len(seen) == 3


async def test_exceptions_the_policy_does_not_name_are_not_retried() -> None:
    inner, seen = failing_then([Fatal(), "never"])
    svc = Retry(inner, RetryOn((Flaky,), attempts=5), backoff=None)
    with pytest.raises(Fatal):
        await svc("req")
    assert len(seen) == 1


@attrs.frozen
class RetryUnavailable:
    """Retries responses equal to 503, and copies list requests so attempts can't share one."""

    clones: list[Any] = attrs.field(factory=list)

    def retry(self, request: Any, result: outcome.Outcome[Any], attempt: int) -> bool:
        return isinstance(result, outcome.Value) and result.value == 503 and attempt < 4

    def clone_request(self, request: list[int]) -> list[int] | None:
        copy = list(request)
        self.clones.append(copy)
        return copy


async def test_policy_can_retry_responses_and_clones_each_attempt() -> None:
    policy = RetryUnavailable()
    inner, seen = failing_then([503, 503, 200])
    svc = Retry(inner, policy, backoff=None)
    request = [1, 2]
    assert await svc(request) == 200
    assert seen[0] is request
    assert seen[1] is policy.clones[0]
    assert seen[2] is policy.clones[1]
    assert seen[1] is not seen[2]


async def test_retryable_response_is_returned_when_the_policy_stops() -> None:
    inner, seen = failing_then([503, 503, 503, 503, 200])
    svc = Retry(inner, RetryUnavailable(), backoff=None)
    assert await svc([0]) == 503
    assert len(seen) == 4


class NoClone(RetryOn[Any, Any]):
    def clone_request(self, request: Any) -> Any:
        return None


async def test_request_that_cannot_be_cloned_is_tried_once() -> None:
    inner, seen = failing_then([Flaky(), "ok"])
    svc = Retry(inner, NoClone(Flaky, attempts=5), backoff=None)
    with pytest.raises(Flaky):
        await svc("stream")
    assert len(seen) == 1


async def test_backoff_sleeps_with_full_jitter(autojump_clock: trio.abc.Clock) -> None:
    backoff = Backoff(initial=1.0, maximum=4.0)
    times: list[float] = []

    async def always_fails(request: Any) -> Any:
        times.append(trio.current_time())
        raise Flaky

    svc = Retry(
        service_fn(always_fails),
        RetryOn(Flaky, attempts=5),
        backoff=backoff,
        budget=None,
        rng=random.Random(7),
    )
    with pytest.raises(Flaky):
        await svc("x")
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    ceilings = [1.0, 2.0, 4.0, 4.0]
    assert len(gaps) == 4
    for gap, ceiling in zip(gaps, ceilings, strict=True):
        assert 0.0 <= gap <= ceiling
    expected_rng = random.Random(7)
    # The backoff sleeps on the timer wheel: never early, at most one 1 ms tick late.
    assert gaps == pytest.approx([expected_rng.uniform(0, c) for c in ceilings], abs=TICK)


async def test_backoff_ceiling_grows_then_caps() -> None:
    backoff = Backoff(initial=0.1, maximum=1.0, multiplier=3.0)
    assert [backoff.ceiling(n) for n in range(1, 5)] == pytest.approx([0.1, 0.3, 0.9, 1.0])
    rng = random.Random(1)
    assert all(0.0 <= backoff.delay(n, rng) <= backoff.ceiling(n) for n in range(1, 50))
    with pytest.raises(ValueError, match="multiplier"):
        Backoff(multiplier=0)


async def _always_fails(request: Any) -> Any:
    await trio.lowlevel.checkpoint()
    raise Flaky("down")


async def test_budget_bounds_attempts_against_a_service_that_always_fails() -> None:
    attempts = 0

    async def counted(request: Any) -> Any:
        nonlocal attempts
        attempts += 1
        return await _always_fails(request)

    budget = Budget(ttl=10.0, min_per_second=10.0, retry_percent=0.2)
    svc = Retry(service_fn(counted), RetryOn(Flaky, attempts=10), backoff=None, budget=budget)
    exhausted = 0
    for n in range(1000):
        try:
            await svc(n)
        except BudgetExhausted as exc:
            assert isinstance(exc.__cause__, Flaky)
            exhausted += 1
        except Flaky:
            pass
    bound = 1.2 * 1000 + 10.0 * 10.0
    assert attempts <= bound
    assert attempts >= bound - 1  # the budget was used, up to rounding
    assert exhausted > 0


async def test_budget_bound_holds_for_concurrent_callers_with_backoff(
    autojump_clock: trio.abc.Clock,
) -> None:
    attempts = 0

    async def counted(request: Any) -> Any:
        nonlocal attempts
        attempts += 1
        return await _always_fails(request)

    budget = Budget(ttl=10.0, min_per_second=10.0, retry_percent=0.2)
    svc = Retry(
        service_fn(counted),
        RetryOn(Flaky, attempts=4),
        backoff=Backoff(initial=0.01, maximum=0.1),
        budget=budget,
        rng=random.Random(3),
    )
    start = trio.current_time()

    async def one(n: int) -> None:
        with pytest.raises((Flaky, BudgetExhausted)):
            await svc(n)

    async with trio.open_nursery() as nursery:
        for n in range(1000):
            nursery.start_soon(one, n)
    assert trio.current_time() - start < budget.ttl  # all inside one window
    assert 1000 < attempts <= 1.2 * 1000 + 10.0 * 10.0


async def test_budget_window_slides(autojump_clock: trio.abc.Clock) -> None:
    budget = Budget(ttl=10.0, min_per_second=1.0, retry_percent=0.5)
    assert budget.balance() == pytest.approx(10.0)
    for _ in range(10):
        budget.deposit()
    assert budget.balance() == pytest.approx(15.0)
    assert budget.try_withdraw()
    stats = budget.statistics()
    assert (stats.deposits, stats.withdrawals) == (10, 1)
    await trio.sleep(10.0)
    stats = budget.statistics()
    assert (stats.deposits, stats.withdrawals) == (0, 0)
    assert stats.balance == pytest.approx(10.0)


async def test_empty_budget_refuses_withdrawals() -> None:
    budget = Budget(ttl=1.0, min_per_second=0.0, retry_percent=0.0)
    assert not budget.can_withdraw()
    assert not budget.try_withdraw()
    assert budget.statistics().withdrawals == 0


class Ceiling(random.Random):
    """Jitter that always picks the largest delay, so a test knows when the retry comes."""

    def uniform(self, a: float, b: float) -> float:
        return b


async def test_cancel_during_backoff_spends_no_budget(autojump_clock: trio.abc.Clock) -> None:
    budget = Budget(ttl=100.0, min_per_second=1.0, retry_percent=0.0)
    inner, handle = mock_service()
    svc = Retry(
        inner,
        RetryOn(Flaky, attempts=3),
        backoff=Backoff(initial=10.0),
        budget=budget,
        rng=Ceiling(),
    )

    async def call_and_get_cancelled() -> None:
        with trio.move_on_after(5.0) as scope:
            await svc("x")
        assert scope.cancelled_caught

    async with trio.open_nursery() as nursery:
        nursery.start_soon(call_and_get_cancelled)
        (await handle.next_request()).fail(Flaky())
    # The retry was due 10 s after the failure; the caller was cancelled at 5 s, asleep.
    assert handle.statistics().calls == 1
    stats = budget.statistics()
    assert (stats.deposits, stats.withdrawals) == (1, 0)
    assert stats.balance == pytest.approx(100.0)


async def test_cancel_during_an_attempt_stops_retrying(autojump_clock: trio.abc.Clock) -> None:
    inner, handle = mock_service()
    svc = Retry(inner, RetryOn(Flaky, attempts=5), backoff=None)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(svc, "x")
        (await handle.next_request()).fail(Flaky())
        second = await handle.next_request()
        nursery.cancel_scope.cancel()
    assert second.cancelled
    assert handle.statistics().calls == 2
    assert handle.statistics().queued == 0


async def test_first_attempt_uses_the_reservation_later_ones_wait(
    autojump_clock: trio.abc.Clock,
) -> None:
    inner, handle = mock_service()
    handle.allow(1)
    svc = Retry(inner, RetryOn(Flaky, attempts=2), backoff=None)
    results: list[Any] = []

    async def caller() -> None:
        async with svc.ready() as call:
            assert handle.statistics().reserved == 1
            results.append(await call("x"))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(caller)
        (await handle.next_request()).fail(Flaky())
        await trio.sleep(1.0)
        assert handle.statistics().calls == 1  # the retry waits: the allowance is used up
        handle.allow(1)
        (await handle.next_request()).respond("second")
    assert results == ["second"]
    assert handle.statistics().reserved == 0


async def test_layer_shares_an_explicit_budget_and_makes_one_otherwise() -> None:
    shared = Budget()
    layer = RetryLayer(RetryOn(Flaky), budget=shared)
    one, two = layer.layer(service_fn(_always_fails)), layer.layer(service_fn(_always_fails))
    assert one.budget is shared
    assert two.budget is shared
    own = RetryLayer(RetryOn(Flaky))
    assert (
        own.layer(service_fn(_always_fails)).budget
        is not own.layer(service_fn(_always_fails)).budget
    )
    assert (
        RetryLayer(RetryOn(Flaky), no_budget=True).layer(service_fn(_always_fails)).budget is None
    )


async def test_policy_validation() -> None:
    with pytest.raises(ValueError, match="attempts"):
        RetryOn(Flaky, attempts=0)


def fails_once_each() -> tuple[Any, list[Any]]:
    """A service that fails the first attempt at each request with Flaky, then echoes it."""
    seen: list[Any] = []

    async def call(request: Any) -> Any:
        await trio.lowlevel.checkpoint()
        first = request not in seen
        seen.append(request)
        if first:
            raise Flaky(request)
        return request

    return service_fn(call), seen


async def test_retry_under_a_reservation_of_a_limit_of_one_does_not_deadlock(
    autojump_clock: trio.abc.Clock,
) -> None:
    inner, seen = fails_once_each()
    svc = (
        ServiceBuilder()
        .load_shed()
        .retry(RetryOn((Flaky,), attempts=2), backoff=Backoff(initial=0.01))
        .concurrency_limit(1)
        .service(inner)
    )
    with trio.fail_after(10):  # a deadlock would hang until the clock jumps here
        assert await svc("x") == "x"
    assert seen == ["x", "x"]


async def test_concurrent_retries_under_reservations_neither_hang_nor_shed(
    autojump_clock: trio.abc.Clock,
) -> None:
    inner, seen = fails_once_each()
    limited = ConcurrencyLimit(inner, 4)
    svc = LoadShed(Retry(limited, RetryOn((Flaky,), attempts=2), backoff=Backoff(initial=0.01)))
    results: list[Any] = []
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            for n in range(4):
                nursery.start_soon(lambda n=n: _append(results, svc(n)))
        assert await svc("after") == "after"  # nothing is left holding a permit
    assert sorted(results) == [0, 1, 2, 3]
    assert svc.shed == 0
    assert limited.statistics().available == 4
    assert len(seen) == 10


async def _append(results: list[Any], call: Any) -> None:
    results.append(await call)


async def test_retry_on_names_what_it_retries() -> None:
    with pytest.raises(TypeError):
        RetryOn()  # type: ignore[call-arg]  # no default "retry everything"
    with pytest.raises(ValueError, match="at least one exception type"):
        RetryOn(())
    with pytest.raises(TypeError, match="Exception subclasses"):
        RetryOn((Flaky, KeyboardInterrupt))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="Exception subclasses"):
        RetryOn("Flaky")  # type: ignore[arg-type]
    assert RetryOn(Flaky).exceptions == (Flaky,)
    assert RetryOn((Flaky, Fatal), attempts=2).exceptions == (Flaky, Fatal)
    assert RetryOn(exceptions=[Flaky]).exceptions == (Flaky,)  # type: ignore[arg-type]


async def test_transient_errors_retry_io_and_timeouts_but_not_bugs() -> None:
    policy: RetryOn[Any, Any] = RetryOn(TRANSIENT_ERRORS)
    for error in (
        ConnectionResetError(),
        OSError(),
        Elapsed("slow"),
        TimeoutError(),
        trio.BrokenResourceError(),
        Overloaded(),
    ):
        assert policy.retry("r", outcome.Error(error), 1), error
    for error in (TypeError(), ValueError(), KeyError(), Fatal()):
        assert not policy.retry("r", outcome.Error(error), 1), error
    inner, seen = failing_then([TypeError("a bug"), "never"])
    with pytest.raises(TypeError):
        await Retry(inner, policy, backoff=None)("req")
    assert seen == ["req"]
