"""Hedge: a second copy after the latency percentile; the first success wins, the loser is
cancelled; no hedging before enough data points."""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing

from runtime.service import Hedge, HedgeLayer, ServiceBuilder, service_fn
from runtime.testing import MockHandle, mock_service

from .conftest import echo


async def warm_up(svc: Hedge[Any, Any], handle: MockHandle[Any, Any], n: int) -> None:
    """Make ``n`` calls that each take 1 s, so the hedge learns a p90 of 1 s."""
    async with trio.open_nursery() as nursery:
        for _ in range(n):
            nursery.start_soon(svc, "warm-up")
            request = await handle.next_request()
            await trio.sleep(1.0)
            request.respond("warm")
            await trio.testing.wait_all_tasks_blocked()


async def hedged_pair(
    svc: Hedge[Any, Any], handle: MockHandle[Any, Any], nursery: trio.Nursery, out: list[Any]
) -> tuple[Any, Any]:
    """Start a call, let it run past the threshold, and return (primary, hedge) requests."""

    async def caller() -> None:
        try:
            out.append(await svc("req"))
        except Exception as exc:
            out.append(exc)

    nursery.start_soon(caller)
    primary = await handle.next_request()
    hedge = await handle.next_request()
    return primary, hedge


async def test_no_hedging_before_min_data_points(autojump_clock: trio.abc.Clock) -> None:
    inner, handle = mock_service()
    svc = Hedge(inner, min_data_points=5)
    assert svc.threshold() is None
    await warm_up(svc, handle, 4)
    assert svc.threshold() is None
    async with trio.open_nursery() as nursery:
        nursery.start_soon(svc, "slow")
        request = await handle.next_request()
        await trio.sleep(10.0)
        assert handle.statistics().queued == 0  # no copy was sent
        request.respond("late")
    assert svc.statistics().hedged == 0
    assert svc.statistics().samples == 5


async def test_hedge_wins_and_the_primary_is_cancelled(autojump_clock: trio.abc.Clock) -> None:
    inner, handle = mock_service()
    svc = Hedge(inner, min_data_points=5)
    await warm_up(svc, handle, 5)
    assert svc.threshold() == pytest.approx(1.0)
    out: list[Any] = []
    start = trio.current_time()
    async with trio.open_nursery() as nursery:
        primary, hedge = await hedged_pair(svc, handle, nursery, out)
        assert trio.current_time() - start == pytest.approx(1.0)  # sent at the p90
        hedge.respond("from the hedge")
        await primary.wait_cancelled()
    assert out == ["from the hedge"]
    assert svc.statistics().hedged == 1


async def test_primary_wins_after_the_hedge_is_sent(autojump_clock: trio.abc.Clock) -> None:
    inner, handle = mock_service()
    svc = Hedge(inner, min_data_points=5)
    await warm_up(svc, handle, 5)
    out: list[Any] = []
    async with trio.open_nursery() as nursery:
        primary, hedge = await hedged_pair(svc, handle, nursery, out)
        primary.respond("from the primary")
        await hedge.wait_cancelled()
    assert out == ["from the primary"]


async def test_fast_primary_sends_no_hedge(autojump_clock: trio.abc.Clock) -> None:
    inner, handle = mock_service()
    svc = Hedge(inner, min_data_points=5)
    await warm_up(svc, handle, 5)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(svc, "quick")
        (await handle.next_request()).respond("fast")
    await trio.sleep(5.0)
    assert handle.statistics().queued == 0
    assert svc.statistics().hedged == 0


async def test_primary_failing_early_is_raised_without_hedging(
    autojump_clock: trio.abc.Clock,
) -> None:
    inner, handle = mock_service()
    svc = Hedge(inner, min_data_points=5)
    await warm_up(svc, handle, 5)

    async def caller() -> None:
        with pytest.raises(ConnectionError):
            await svc("x")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(caller)
        (await handle.next_request()).fail(ConnectionError("refused"))
    await trio.sleep(5.0)
    assert svc.statistics().hedged == 0
    assert handle.statistics().calls == 6


async def test_a_failure_waits_for_the_other_attempt(autojump_clock: trio.abc.Clock) -> None:
    inner, handle = mock_service()
    svc = Hedge(inner, min_data_points=5)
    await warm_up(svc, handle, 5)
    out: list[Any] = []
    async with trio.open_nursery() as nursery:
        primary, hedge = await hedged_pair(svc, handle, nursery, out)
        primary.fail(ConnectionError("primary broke"))
        await trio.testing.wait_all_tasks_blocked()
        assert out == []
        hedge.respond("saved by the hedge")
    assert out == ["saved by the hedge"]


async def test_both_failing_raises_the_primary_error(autojump_clock: trio.abc.Clock) -> None:
    inner, handle = mock_service()
    svc = Hedge(inner, min_data_points=5)
    await warm_up(svc, handle, 5)
    out: list[Any] = []
    async with trio.open_nursery() as nursery:
        primary, hedge = await hedged_pair(svc, handle, nursery, out)
        hedge.fail(ConnectionError("hedge broke"))
        await trio.testing.wait_all_tasks_blocked()
        primary.fail(ConnectionError("primary broke"))
    assert len(out) == 1
    assert isinstance(out[0], ConnectionError)
    assert str(out[0]) == "primary broke"


async def test_cancelling_the_caller_cancels_both_attempts(
    autojump_clock: trio.abc.Clock,
) -> None:
    inner, handle = mock_service()
    svc = Hedge(inner, min_data_points=5)
    await warm_up(svc, handle, 5)
    out: list[Any] = []
    async with trio.open_nursery() as nursery:
        primary, hedge = await hedged_pair(svc, handle, nursery, out)
        nursery.cancel_scope.cancel()
    assert primary.cancelled
    assert hedge.cancelled
    assert out == []
    assert handle.statistics().reserved == 0


async def test_requests_that_cannot_be_cloned_are_not_hedged(
    autojump_clock: trio.abc.Clock,
) -> None:
    inner, handle = mock_service()
    svc = Hedge(inner, min_data_points=5, clone=lambda request: None)
    await warm_up(svc, handle, 5)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(svc, "x")
        request = await handle.next_request()
        await trio.sleep(5.0)
        assert handle.statistics().queued == 0
        request.respond("ok")


async def test_percentile_is_nearest_rank_over_recent_samples(
    autojump_clock: trio.abc.Clock,
) -> None:
    async def takes(latency: float) -> float:
        await trio.sleep(latency)
        return latency

    svc = Hedge(
        service_fn(takes),
        percentile=0.9,
        min_data_points=10,
        max_samples=10,
        clone=lambda request: None,  # measure only, never hedge
    )
    for latency in range(1, 11):
        await svc(float(latency))
    assert svc.threshold() == pytest.approx(9.0)
    for _ in range(10):
        await svc(100.0)  # the old samples roll out of the window
    assert svc.threshold() == pytest.approx(100.0)


async def test_reserved_primary_and_layer(autojump_clock: trio.abc.Clock) -> None:
    svc = HedgeLayer(percentile=0.5, min_data_points=1).layer(service_fn(echo))
    async with svc.ready() as call:
        assert await call(1) == 1
    assert svc.statistics().samples == 1
    with pytest.raises(ValueError, match="percentile"):
        Hedge(service_fn(echo), percentile=1.5)


class Down(Exception):
    pass


async def test_a_failed_first_attempt_does_not_wait_for_a_copy_that_cannot_start(
    autojump_clock: trio.abc.Clock,
) -> None:
    # Under a reservation of a limit of 1 (LoadShed reserves), the copy waits for a permit
    # that the first attempt's own block holds; when the first attempt fails, waiting for
    # that copy would wait forever.
    fail = False

    async def backend(request: Any) -> Any:
        if fail:
            await trio.sleep(0.5)  # past the threshold: the copy is due, and waits
            raise Down
        await trio.sleep(0.1)
        return request

    svc = (
        ServiceBuilder()
        .load_shed()
        .hedge(min_data_points=3)
        .concurrency_limit(1)
        .service_fn(backend)
    )
    for n in range(3):
        assert await svc(n) == n
    fail = True
    with trio.fail_after(100), pytest.raises(Down):
        await svc("fails")
