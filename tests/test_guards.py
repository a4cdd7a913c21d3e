"""The suite's guard against a trio.Cancelled leaking out of a test (pytest-trio's own
nursery would swallow it, and the test would pass)."""

from __future__ import annotations

import pytest
import trio
from _guards import failing_on_leaked_cancel


async def _leaks() -> None:
    with trio.CancelScope() as scope:
        scope.cancel()
        try:
            await trio.sleep_forever()
        except trio.Cancelled as exc:
            leaked = exc
    raise leaked


async def _leaks_in_a_group() -> None:
    try:
        await _leaks()
    except trio.Cancelled as exc:
        raise BaseExceptionGroup("only cancels", [exc]) from None


async def test_a_cancel_leaking_out_of_a_test_fails_it() -> None:
    with pytest.raises(AssertionError, match="escaped the test"):
        await failing_on_leaked_cancel(_leaks)()


async def test_a_group_of_leaked_cancels_fails_it_too() -> None:
    with pytest.raises(AssertionError, match="escaped the test"):
        await failing_on_leaked_cancel(_leaks_in_a_group)()


async def test_a_cancel_from_outside_goes_on() -> None:
    guarded = failing_on_leaked_cancel(trio.sleep_forever)
    with trio.CancelScope() as outer:
        outer.cancel()
        await guarded()
    assert outer.cancelled_caught


async def test_other_errors_and_results_pass_through() -> None:
    async def fails() -> None:
        raise KeyError("its own")

    async def answers(x: int) -> int:
        await trio.sleep(0)
        return x + 1

    with pytest.raises(KeyError):
        await failing_on_leaked_cancel(fails)()
    assert await failing_on_leaked_cancel(answers)(x=1) == 2
