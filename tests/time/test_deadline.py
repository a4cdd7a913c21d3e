"""Deadline: moved later with a store, earlier at once; exact; cleared and closed."""

from __future__ import annotations

import math

import pytest
import trio
import trio.testing

from runtime.time import Deadline


async def test_it_expires_at_the_deadline_last_set_even_when_moved_later(
    autojump_clock: trio.testing.MockClock,
) -> None:
    fired: list[float] = []
    deadline = Deadline(lambda: fired.append(trio.current_time()))
    start = trio.current_time()
    for step in range(5):  # moved later four times, 1 s apart: the entry stays at the first
        deadline.set(start + step + 2)
        await trio.sleep(1)
    await trio.sleep(10)
    assert len(fired) == 1
    assert start + 6 <= fired[0] <= start + 6.01
    assert deadline.deadline == math.inf


async def test_an_earlier_deadline_moves_the_entry(autojump_clock: trio.testing.MockClock) -> None:
    fired: list[float] = []
    deadline = Deadline(lambda: fired.append(trio.current_time()))
    start = trio.current_time()
    deadline.set(start + 30)
    deadline.set(start + 2)
    await trio.sleep(5)
    assert len(fired) == 1 and start + 2 <= fired[0] <= start + 2.01


async def test_clear_and_close_stop_it(autojump_clock: trio.testing.MockClock) -> None:
    fired: list[str] = []
    cleared = Deadline(lambda: fired.append("cleared"))
    closed = Deadline(lambda: fired.append("closed"))
    cleared.set(trio.current_time() + 1)
    closed.set(trio.current_time() + 1)
    cleared.clear()
    closed.close()
    await trio.sleep(3)
    assert fired == []
    cleared.set(trio.current_time() + 1)  # usable again after firing or clearing
    await trio.sleep(2)
    assert fired == ["cleared"]


async def test_set_from_its_own_callback_rearms_it(autojump_clock: trio.testing.MockClock) -> None:
    fired: list[float] = []

    def again() -> None:
        fired.append(trio.current_time())
        if len(fired) < 3:
            deadline.set(trio.current_time() + 1)

    deadline = Deadline(again)
    deadline.set(trio.current_time() + 1)
    await trio.sleep(10)
    assert len(fired) == 3


async def test_an_infinite_or_nan_deadline_is_refused() -> None:
    deadline = Deadline(lambda: None)
    for bad in (math.inf, math.nan):
        with pytest.raises(ValueError, match="clear"):
            deadline.set(bad)
