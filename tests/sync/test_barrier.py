"""runtime.sync.Barrier: rounds, one leader per round, cancellation."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import trio
import trio.testing

from runtime.sync import Barrier

wait_idle = trio.testing.wait_all_tasks_blocked


def test_needs_at_least_one_party() -> None:
    with pytest.raises(ValueError, match="parties >= 1"):
        Barrier(0)


async def test_releases_a_round_with_exactly_one_leader() -> None:
    barrier = Barrier(3)
    leaders: list[bool] = []

    async def arrive() -> None:
        leaders.append(await barrier.wait())

    async with trio.open_nursery() as nursery:
        for _ in range(2):
            nursery.start_soon(arrive)
        await wait_idle()
        assert leaders == []
        assert barrier.statistics().waiting == 2
        nursery.start_soon(arrive)
    assert sorted(leaders) == [False, False, True]
    assert barrier.statistics().rounds == 1


async def test_the_barrier_is_reusable() -> None:
    barrier = Barrier(2)
    rounds: list[int] = []

    async def worker(name: int) -> None:
        for round_number in range(3):
            await barrier.wait()
            rounds.append(round_number)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(worker, 1)
        nursery.start_soon(worker, 2)
    assert rounds == [0, 0, 1, 1, 2, 2]
    assert barrier.statistics().rounds == 3


async def test_a_cancelled_waiter_leaves_the_round() -> None:
    barrier = Barrier(2)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(barrier.wait)
        await wait_idle()
        nursery.cancel_scope.cancel()
    assert barrier.statistics().waiting == 0
    results: list[bool] = []

    async def arrive() -> None:
        results.append(await barrier.wait())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(arrive)
        await wait_idle()
        assert results == []  # the cancelled arrival did not count
        nursery.start_soon(arrive)
    assert sorted(results) == [False, True]


async def test_wait_is_a_checkpoint(set_budget: Callable[[int], object]) -> None:
    set_budget(1)
    barrier = Barrier(1)
    with trio.testing.assert_checkpoints():
        assert await barrier.wait()
    assert barrier.parties == 1
    assert "0/1" in repr(barrier)
