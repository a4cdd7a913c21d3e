"""The cooperative budget: fast operations skip the scheduler, but only up to the budget."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from types import FrameType

import pytest
import trio
import trio.testing

import runtime
from runtime import _trio_internals
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


@pytest.mark.skipif(not _trio_internals.COUNTERS_OK, reason="this Trio runs the public fallback")
async def test_try_consume_budget_is_the_fast_function_itself_one_python_call() -> None:
    """Every socket read and write pays for it: no wrapper, no accessor calls inside (the one
    other Python call is Trio's own ``current_task``)."""
    assert _coop.try_consume_budget is _coop._fast_path
    assert runtime.rt.try_consume_budget is _coop.try_consume_budget
    assert _coop.try_consume_budget.__module__ == "runtime._trio_internals"
    calls: list[tuple[str, str]] = []

    def profiler(frame: FrameType, event: str, arg: object) -> None:
        module = frame.f_globals.get("__name__", "")
        if event == "call" and module.startswith("runtime"):
            calls.append((module, frame.f_code.co_qualname))

    await trio.lowlevel.checkpoint()
    sys.setprofile(profiler)
    try:
        spent = _coop.try_consume_budget()
    finally:
        sys.setprofile(None)
    assert spent
    assert calls == [
        ("runtime._trio_internals", "build_try_consume_budget.<locals>.try_consume_budget")
    ]


async def test_the_fast_path_and_the_budget_functions_share_one_turn(
    set_budget: Callable[[int], object],
) -> None:
    set_budget(3)
    await trio.lowlevel.checkpoint()
    assert _coop.try_consume_budget()
    assert _coop.has_budget()  # one left before the one that must yield
    assert _coop.try_consume_budget()
    assert not _coop.has_budget()
    _coop.reset_budget()
    assert _coop.has_budget()
    assert [_coop.try_consume_budget() for _ in range(3)] == [True, True, False]


async def test_when_the_self_test_fails_the_public_fallback_is_the_budget_function(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A fresh copy of the _coop module, imported as if this Trio had failed the self-test."""
    monkeypatch.setattr(_trio_internals, "COUNTERS_OK", False)
    name = "runtime.rt._coop_as_on_a_changed_trio"
    spec = importlib.util.spec_from_file_location(name, _coop.__file__)
    assert spec is not None and spec.loader is not None
    fresh = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, name, fresh)
    spec.loader.exec_module(fresh)
    assert fresh.try_consume_budget is fresh._try_consume_budget_public
    fresh.set_budget(2)
    await trio.lowlevel.checkpoint()
    assert [fresh.try_consume_budget(), fresh.try_consume_budget()] == [True, False]
