"""RateLimit: a token bucket of N per period with a burst; cancelled waiters take no token."""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing

from runtime.service import RateLimit, RateLimitLayer, service_fn
from runtime.testing import mock_service

from .conftest import echo

TICK = 0.001  # the timer wheel's resolution: a sleep ends at most this late


def timestamps() -> tuple[Any, list[float]]:
    times: list[float] = []

    async def record(request: Any) -> Any:
        times.append(trio.current_time())
        return request

    return service_fn(record), times


async def test_burst_then_steady_rate(autojump_clock: trio.abc.Clock) -> None:
    inner, times = timestamps()
    svc = RateLimit(inner, 10, 1.0, burst=5)
    start = trio.current_time()
    for n in range(15):
        await svc(n)
    offsets = [t - start for t in times]
    assert offsets[:5] == pytest.approx([0.0] * 5)
    # Waits sleep on the timer wheel: never early, at most one tick late, and never cumulative
    # (a late wake-up finds a fraction of the next token already in the bucket).
    assert offsets[5:] == pytest.approx([0.1 * k for k in range(1, 11)], abs=TICK)


async def test_default_burst_is_one_period(autojump_clock: trio.abc.Clock) -> None:
    inner, times = timestamps()
    svc = RateLimit(inner, 4, 2.0)
    start = trio.current_time()
    for n in range(8):
        await svc(n)
    assert [t - start for t in times] == pytest.approx([0, 0, 0, 0, 0.5, 1.0, 1.5, 2.0])


async def test_concurrent_waiters_are_paced_in_fifo_order(autojump_clock: trio.abc.Clock) -> None:
    served: list[tuple[int, float]] = []

    async def record(request: int) -> None:
        served.append((request, trio.current_time()))

    svc = RateLimit(service_fn(record), 2, 1.0, burst=1)
    start = trio.current_time()
    async with trio.open_nursery() as nursery:
        for n in range(5):
            nursery.start_soon(svc, n)
            await trio.testing.wait_all_tasks_blocked()
    assert [n for n, _ in served] == [0, 1, 2, 3, 4]
    assert [t - start for _, t in served] == pytest.approx([0, 0.5, 1.0, 1.5, 2.0])


async def test_cancelled_waiter_takes_no_token(autojump_clock: trio.abc.Clock) -> None:
    inner, times = timestamps()
    svc = RateLimit(inner, 1, 1.0, burst=1)
    start = trio.current_time()
    await svc("first")  # empties the bucket
    with trio.move_on_after(0.5):
        await svc("gives up")
    assert svc.statistics().waiting is False
    await svc("second")  # the token due at 1.0 is still there for it
    assert [t - start for t in times] == pytest.approx([0.0, 1.0])


async def test_token_taken_by_a_reservation_is_refunded_if_unused(
    autojump_clock: trio.abc.Clock,
) -> None:
    inner, handle = mock_service()
    svc = RateLimit(inner, 1, 10.0, burst=2)
    async with svc.ready():
        assert svc.statistics().tokens == pytest.approx(1.0)
    assert svc.statistics().tokens == pytest.approx(2.0)
    with trio.move_on_after(1.0):
        async with svc.ready():
            await trio.sleep_forever()
    assert svc.statistics().tokens == pytest.approx(2.0, abs=0.2)
    assert handle.statistics().reserved == 0


async def test_token_used_by_a_reservation_is_spent(autojump_clock: trio.abc.Clock) -> None:
    svc = RateLimit(service_fn(echo), 1, 100.0, burst=1)
    with svc.ready_nowait() as call:
        assert await call("x") == "x"
    assert svc.statistics().tokens < 0.01
    assert not svc.is_ready()
    with pytest.raises(trio.WouldBlock), svc.ready_nowait():
        pass  # pragma: no cover


async def test_inner_not_ready_refunds_the_token() -> None:
    inner, handle = mock_service()
    handle.hold()
    svc = RateLimit(inner, 1, 100.0, burst=1)
    assert not svc.is_ready()
    with pytest.raises(trio.WouldBlock), svc.ready_nowait():
        pass  # pragma: no cover
    assert svc.statistics().tokens == pytest.approx(1.0)


async def test_newcomers_do_not_overtake_waiters(autojump_clock: trio.abc.Clock) -> None:
    svc = RateLimit(service_fn(echo), 1, 1.0, burst=1)
    await svc("drain")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(svc, "waiter")
        await trio.testing.wait_all_tasks_blocked()
        assert svc.statistics().waiting
        assert not svc.is_ready()
        with pytest.raises(trio.WouldBlock), svc.ready_nowait():
            pass  # pragma: no cover


@pytest.mark.usefixtures("budget_of_one")
async def test_call_is_a_checkpoint_even_with_tokens() -> None:
    svc = RateLimit(service_fn(_no_checkpoint), 100, 1.0)
    with trio.testing.assert_checkpoints():
        await svc(1)


async def _no_checkpoint(request: Any) -> Any:
    return request


async def test_validation() -> None:
    with pytest.raises(ValueError, match="num"):
        RateLimit(service_fn(echo), 0, 1.0)
    with pytest.raises(ValueError, match="period"):
        RateLimit(service_fn(echo), 1, 0.0)
    with pytest.raises(ValueError, match="'per' must be > 0"):
        RateLimitLayer(1, 0.0)
    with pytest.raises(ValueError, match="'burst' must be >= 1"):
        RateLimitLayer(1, 1.0, burst=0)
    with pytest.raises(TypeError, match="'num'"):
        RateLimitLayer(1.5, 1.0)  # type: ignore[arg-type]
    assert isinstance(RateLimitLayer(5, 1.0).layer(service_fn(echo)), RateLimit)


async def test_each_call_after_the_first_on_a_reservation_takes_its_own_token(
    autojump_clock: trio.abc.Clock,
) -> None:
    # A reserved call may be called again (Retry does, under a reservation): the reservation
    # paid for one call, so every later one waits for a token like any other call.
    inner, times = timestamps()
    svc = RateLimit(inner, 1, 1.0, burst=1)
    start = trio.current_time()
    async with svc.ready() as call:
        await call("a")
        await call("b")
    await trio.sleep(1.0)  # the next token
    with svc.ready_nowait() as call:
        await call("c")
        await call("d")
    assert [t - start for t in times] == pytest.approx([0.0, 1.0, 2.0, 3.0])
