"""runtime._trio_internals: the private Trio paths behave as the runtime assumes.

If a Trio upgrade breaks one, the runtime falls back to public API (slower, same behaviour);
these tests say so loudly instead of letting it happen quietly.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import trio
import trio.testing

from runtime import _trio_internals as internals


def test_the_installed_trio_passes_both_self_tests() -> None:
    assert internals.SPLICE_OK
    assert internals.COUNTERS_OK


async def test_the_splice_probe_passes_inside_a_running_trio() -> None:
    assert await internals._probe_splice()


async def test_the_counter_probe_passes_inside_a_running_trio() -> None:
    assert await internals._probe_counters()


async def test_the_budget_probe_passes_inside_a_running_trio() -> None:
    assert await internals._probe_budget()


def test_a_fast_budget_that_breaks_the_contract_fails_the_self_test(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Counters that read fine but a fast path that forgets to count its cancel points."""
    real = internals.build_try_consume_budget

    def forgetful(turn: internals.BudgetTurn) -> Callable[[], bool]:
        spend = real(turn)

        def spend_without_counting() -> bool:
            task: Any = trio.lowlevel.current_task()
            points = task._cancel_points
            ok = spend()
            task._cancel_points = points
            return ok

        return spend_without_counting

    monkeypatch.setattr(internals, "build_try_consume_budget", forgetful)
    assert not internals._self_test_counters()


def test_without_the_counters_there_is_no_fast_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    turn = internals.BudgetTurn(8)
    assert internals.fast_try_consume_budget(turn) is not None
    monkeypatch.setattr(internals, "COUNTERS_OK", False)
    assert internals.fast_try_consume_budget(turn) is None


async def test_the_fast_budget_counts_turns_and_cancel_points_in_the_turn_it_is_given() -> None:
    turn = internals.BudgetTurn(4)
    spend = internals.build_try_consume_budget(turn)
    await trio.lowlevel.checkpoint()
    task: Any = trio.lowlevel.current_task()
    points, schedule_points = task._cancel_points, task._schedule_points
    assert spend()  # completed without yielding, but counted as a cancellation point
    assert (task._cancel_points, task._schedule_points) == (points + 1, schedule_points)
    assert turn.task is trio.lowlevel.current_task()
    assert turn.remaining == 3
    assert [spend(), spend(), spend()] == [True, True, False]
    turn.size = 2  # what set_budget does
    await trio.lowlevel.checkpoint()
    assert [spend(), spend()] == [True, False]


async def test_a_spliced_scope_cancels_its_task_and_only_it_and_shields_hold() -> None:
    inside_shield = trio.Event()
    release = trio.Event()
    log: list[str] = []
    tasks: list[trio.lowlevel.Task] = []

    async def target() -> None:
        tasks.append(trio.lowlevel.current_task())
        with trio.CancelScope(shield=True):
            inside_shield.set()
            await release.wait()
            log.append("shield done")
        try:
            await trio.sleep_forever()
        except trio.Cancelled:
            log.append("target cancelled")
            raise

    async def bystander() -> None:
        await release.wait()
        log.append("bystander ran on")

    scope = trio.CancelScope()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(target)
        nursery.start_soon(bystander)
        await inside_shield.wait()
        assert internals.splice(scope, tasks[0])
        scope.cancel()
        await trio.testing.wait_all_tasks_blocked()
        assert log == []  # the shield inside the task holds
        release.set()
    assert sorted(log) == ["bystander ran on", "shield done", "target cancelled"]
    assert log.index("shield done") < log.index("target cancelled")


async def test_splice_refuses_a_scope_that_was_entered() -> None:
    async with trio.open_nursery() as nursery:
        nursery.start_soon(trio.sleep_forever)
        await trio.testing.wait_all_tasks_blocked()
        child = next(iter(nursery.child_tasks))
        with trio.CancelScope() as used:
            pass
        assert not internals.splice(used, child)
        nursery.cancel_scope.cancel()


async def test_try_cancel_point_counts_and_sees_cancellation() -> None:
    task = trio.lowlevel.current_task()
    before = internals.schedule_points(task)
    await trio.lowlevel.checkpoint()
    assert internals.schedule_points(task) == before + 1
    assert internals.try_cancel_point(task)
    with trio.CancelScope() as scope:
        scope.cancel()
        assert not internals.try_cancel_point(task)
    with trio.CancelScope(shield=True), trio.CancelScope() as inner:
        assert internals.try_cancel_point(task)  # not cancelled: only its sibling was
        inner.cancel()
        assert not internals.try_cancel_point(task)


def test_a_broken_private_path_fails_its_self_test(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(task: Any) -> bool:
        return bool(task._no_such_counter)

    monkeypatch.setattr(internals, "try_cancel_point", broken)
    assert not internals._self_test_counters()
    monkeypatch.setattr(internals, "_CancelStatus", None)
    assert not internals._self_test_splice()


async def test_splice_is_off_when_the_cancel_tree_is_not_understood(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(internals, "_CancelStatus", None)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(trio.sleep_forever)
        await trio.testing.wait_all_tasks_blocked()
        assert not internals.splice(trio.CancelScope(), next(iter(nursery.child_tasks)))
        nursery.cancel_scope.cancel()


def test_seeding_the_scheduler_makes_one_interleaving_per_seed() -> None:
    assert internals._self_test_seed()
    first = internals._interleaving(11)
    assert internals._interleaving(11) == first
    assert sorted(first) == sorted(n for n in range(6) for _ in range(12))


async def test_seed_scheduler_works_inside_a_running_trio() -> None:
    assert internals.seed_scheduler(5)
