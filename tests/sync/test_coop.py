"""The cooperative budget: fast operations skip the scheduler, but only up to the budget."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import trio
import trio.testing

import runtime
from runtime.rt import _coop
from runtime.sync import mpsc

from .conftest import raises_cancelled


async def test_a_turn_allows_budget_minus_one_fast_operations(
    set_budget: Callable[[int], object],
) -> None:
    set_budget(4)
    await trio.lowlevel.checkpoint()  # start a fresh turn
    assert [_coop.try_consume_budget() for _ in range(4)] == [True, True, True, False]
    await trio.lowlevel.checkpoint()
    assert _coop.try_consume_budget()


async def test_budget_of_one_makes_every_operation_a_schedule_point(
    set_budget: Callable[[int], object],
) -> None:
    set_budget(1)
    tx, rx = mpsc.channel[int](10)
    for value in range(3):
        with trio.testing.assert_checkpoints():
            await tx.send(value)
    for _ in range(3):
        with trio.testing.assert_checkpoints():
            await rx.recv()


async def test_any_budget_consecutive_operations_include_a_schedule_point(
    set_budget: Callable[[int], object],
) -> None:
    set_budget(8)
    tx, rx = mpsc.channel[int](100)
    for _ in range(5):
        with trio.testing.assert_checkpoints():
            for value in range(8):
                await tx.send(value)
        with trio.testing.assert_checkpoints():
            for _ in range(8):
                await rx.recv()


async def test_another_task_spending_budget_starts_a_new_turn(
    set_budget: Callable[[int], object],
) -> None:
    set_budget(3)
    await trio.lowlevel.checkpoint()
    assert _coop.try_consume_budget()
    assert _coop.try_consume_budget()
    # Going through the scheduler ends the turn even if no other task spent budget.
    await trio.lowlevel.checkpoint()
    assert _coop.has_budget()
    assert _coop.try_consume_budget()


async def test_consume_budget_checks_cancellation_every_time() -> None:
    await trio.lowlevel.checkpoint()
    assert _coop.has_budget()
    await raises_cancelled(_coop.consume_budget)


async def test_yield_now_is_a_checkpoint_that_refills() -> None:
    with trio.testing.assert_checkpoints():
        await runtime.yield_now()
    assert _coop.has_budget()


def test_set_budget_rejects_zero() -> None:
    with pytest.raises(ValueError, match="coop budget must be >= 1"):
        _coop.set_budget(0)


async def test_runtime_config_budget_reaches_the_channels() -> None:
    config = runtime.RuntimeConfig(handle_signals=False, coop_budget=1)
    async with runtime.open_runtime(config):
        tx, _rx = mpsc.channel[int](10)
        with trio.testing.assert_checkpoints():
            await tx.send(1)


async def _largest_gap(items: int) -> int:
    """Run a producer and consumer on a channel that always has room and data, next to a
    bystander task that only yields; return the most items the consumer took between two
    turns of the bystander."""
    tx, rx = mpsc.channel[int](1024)
    received = 0
    gaps: list[int] = []
    done = False

    async def producer() -> None:
        with tx:
            for value in range(items):
                await tx.send(value)

    async def consumer() -> None:
        nonlocal received, done
        async for _ in rx:
            received += 1
        done = True

    async def bystander() -> None:
        last = 0
        while not done:
            await trio.lowlevel.checkpoint()
            gaps.append(received - last)
            last = received

    async with trio.open_nursery() as nursery:
        nursery.start_soon(producer)
        nursery.start_soon(consumer)
        nursery.start_soon(bystander)
    assert received == items
    return max(gaps)


async def test_a_busy_pair_cannot_starve_a_third_task(
    set_budget: Callable[[int], object],
) -> None:
    """The pair never *has* to wait, so without a budget each would run until the buffer is
    full or empty. With a budget of 32 the bystander runs at least every 32 operations of
    each (the consumer may also take a budget's worth right after being woken)."""
    set_budget(32)
    assert await _largest_gap(20_000) <= 2 * 32


async def test_without_a_budget_the_pair_does_starve_the_bystander(
    set_budget: Callable[[int], object],
) -> None:
    """The control for the test above: with an unlimited budget the gaps grow to the
    buffer's size, so that test does measure the budget."""
    set_budget(10**9)
    assert await _largest_gap(20_000) >= 1024


async def test_the_public_api_fallback_keeps_the_contract(
    set_budget: Callable[[int], object],
) -> None:
    """The fallback for a Trio without the private counters: same budget, same cancellation."""
    fallback = _coop._try_consume_budget_public
    set_budget(3)
    assert [fallback() for _ in range(3)] == [True, True, False]
    await trio.lowlevel.checkpoint()
    assert fallback()
    with trio.CancelScope() as scope:
        scope.cancel()
        assert not fallback()
        await trio.lowlevel.checkpoint()
    assert scope.cancelled_caught
