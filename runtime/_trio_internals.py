"""Every use of Trio's private API in this package, in one place, each with a self-test.

Two fast paths and the simulator need more than Trio's public API:

* **Splicing a cancel scope** into a running task (``rt._scope``, behind
  ``JoinHandle.abort()``): a new scope is linked into the cancel-status tree between the
  task's nursery and the outermost scope the task has open, as if the task had entered it
  first. Leaving it takes the same shortcut back.
* **Seeding the scheduler** (``testing.sim``): Trio draws the order of each batch of ready
  tasks from a module-level generator; :func:`seed_scheduler` seeds it, after checking
  once that one seed gives one interleaving.
* **Reading a task's checkpoint counters** (``rt._coop``, the cooperative budget): the
  schedule-point counter tells one turn from the next, the cancel status says whether the
  task is cancelled, and the cancel-point counter keeps ``trio.testing.assert_checkpoints``
  honest when an operation completes without yielding. The budget's fast path runs on every
  socket read and write, so it is built here whole (:func:`build_try_consume_budget`), with
  the reads inline: ``rt._coop.try_consume_budget`` *is* that function, one call per
  operation, not a wrapper around accessors.

Nothing else in ``runtime`` may touch ``trio._core`` or an underscore attribute of a Trio
object; it calls the functions here. At import, each path is *exercised*, not just looked
up: :func:`_self_test_splice` runs a small Trio program in a helper thread that splices a
scope into one of two sleeping tasks, cancels it, and checks that exactly that task was
cancelled and that leaving the scope swallowed its own cancel; :func:`_self_test_counters`
checks that the counters move the way the budget assumes and that the fast budget function
built from them keeps the budget's contract. A path whose self-test fails (a
Trio release changed its internals) is switched off, :data:`SPLICE_OK` or
:data:`COUNTERS_OK` is False, and the callers use Trio's public API instead: slower, same
behaviour. ``tests/test_trio_internals.py`` runs the same checks, so a Trio upgrade that
breaks one fails loudly there instead of quietly slowing the runtime down.
"""

from __future__ import annotations

import operator
import random
import threading
from collections.abc import Callable
from typing import Any

import trio
import trio.testing

__all__ = [
    "COUNTERS_OK",
    "SPLICE_OK",
    "BudgetTurn",
    "build_try_consume_budget",
    "exit_spliced",
    "fast_try_consume_budget",
    "schedule_points",
    "seed_scheduler",
    "splice",
    "try_cancel_point",
]

_INF = float("inf")
_Cancelled = trio.Cancelled
_current_task = trio.lowlevel.current_task


def _find_cancel_status() -> Any:
    """Trio's ``CancelStatus`` class if its internals have the shape splicing needs."""
    try:
        from trio._core import _run

        status_cls = _run.CancelStatus
        scope = trio.CancelScope()
        for name in ("_cancel_status", "_has_been_entered", "_registered_deadline"):
            if not hasattr(scope, name):
                return None
        task_fields = {field.name for field in _run.Task.__attrs_attrs__}
        if "_cancel_status" not in task_fields or not hasattr(_run.Task, "parent_nursery"):
            return None
        if not hasattr(_run.Task, "_activate_cancel_status"):
            return None
        for name in ("close", "recalculate", "parent", "parent_cancellation_is_visible_to_us"):
            if not hasattr(status_cls, name):
                return None
        if not isinstance(status_cls.__dict__.get("parent"), property):
            return None
        fields = {field.name for field in status_cls.__attrs_attrs__}
        if not {"_scope", "_parent", "_children", "_tasks", "effectively_cancelled"} <= fields:
            return None
        return status_cls
    except Exception:  # any surprise: the public protocol
        return None


_CancelStatus: Any = _find_cancel_status()


# -- splicing a cancel scope ------------------------------------------------------------------


@trio.lowlevel.enable_ki_protection
def splice(scope: trio.CancelScope, task: trio.lowlevel.Task) -> bool:
    """Link a fresh ``scope`` around everything ``task`` has open, as if entered first.

    ``task`` must have been started by ``nursery.start_soon`` and not have ended.

    Args:
        scope: A new, never entered scope.
        task: The task to put it around.

    Returns:
        False (and nothing changed) when splicing is off or the cancel tree does not look
        as expected; the caller then has no scope to cancel and must say so.
    """
    if _CancelStatus is None:
        return False
    t: Any = task
    s: Any = scope
    nursery: Any = task.parent_nursery
    if nursery is None or s._has_been_entered:
        return False
    base = getattr(nursery, "_cancel_status", None)
    current = t._cancel_status
    outermost = None
    if current is not base:
        # Walk up from the innermost scope the task has open to the one just under its owner.
        outermost = current
        while outermost is not None and outermost._parent is not base:
            outermost = outermost._parent
        if outermost is None:
            return False  # the task is not where its nursery says: leave it alone
    s._has_been_entered = True
    status = _CancelStatus(scope=scope, parent=base)
    s._cancel_status = status
    if outermost is None:
        t._activate_cancel_status(status)
    else:
        outermost.parent = status  # Trio's setter relinks the child sets and recalculates
    return True


def _exit_public(scope: trio.CancelScope, exc: BaseException | None) -> bool:
    if exc is None:
        scope.__exit__(None, None, None)  # returns True here, but there was nothing to swallow
        return False
    return bool(scope.__exit__(type(exc), exc, exc.__traceback__))


@trio.lowlevel.enable_ki_protection
def exit_spliced(scope: trio.CancelScope, exc: BaseException | None) -> bool:
    """Leave ``scope`` (spliced or entered) in the current task, as ``with scope:`` would.

    Anything unusual (misnesting, a deadline someone set, a group to split) goes to Trio's
    own ``__exit__``, which handles and reports it.

    Args:
        scope: The task's outermost scope.
        exc: What the task's body raised, or None.

    Returns:
        True if the scope swallowed ``exc`` (a cancel it caused).
    """
    task: Any = _current_task()
    s: Any = scope
    status = s._cancel_status
    if (
        status is None
        or task._cancel_status is not status
        or s._registered_deadline != _INF
        or (exc is not None and isinstance(exc, BaseExceptionGroup))
    ):
        return _exit_public(scope, exc)
    task._activate_cancel_status(status._parent)
    swallow = (
        isinstance(exc, _Cancelled)
        and status.effectively_cancelled
        and not status.parent_cancellation_is_visible_to_us
    )
    if swallow:
        scope.cancelled_caught = True
    status.close()
    s._cancel_status = None
    return swallow


# -- a task's checkpoint counters ---------------------------------------------------------------

schedule_points: Callable[[trio.lowlevel.Task], int] = operator.attrgetter("_schedule_points")
"""How many times ``task`` has been through the scheduler (``trio.testing``'s counter)."""


def try_cancel_point(task: Any) -> bool:
    """Count a cancellation point for ``task`` unless it is cancelled.

    Returns:
        False if the task's cancel scope is cancelled (the caller must take a real
        checkpoint, which raises); True after counting the point.
    """
    if task._cancel_status.effectively_cancelled:
        return False
    task._cancel_points += 1
    return True


# -- the cooperative budget's fast path ---------------------------------------------------------


class BudgetTurn:
    """The cooperative budget's state, shared by ``rt._coop`` and the fast path built here.

    Attributes:
        size: Operations a task may complete per turn (``rt._coop.set_budget``).
        task: The task whose turn it is, or None (the next spender starts a turn).
        mark: That task's schedule-point count when its turn started.
        remaining: Operations it may still complete in this turn.
    """

    __slots__ = ("mark", "remaining", "size", "task")

    def __init__(self, size: int) -> None:
        self.size = size
        self.task: object = None
        self.mark = -1
        self.remaining = 0


def build_try_consume_budget(turn: BudgetTurn) -> Callable[[], bool]:
    """The budget's fast path over ``turn``, reading the task's counters directly.

    A turn is recognised exactly: it is the same turn while the same task spends and its
    schedule-point counter has not moved. Use :func:`fast_try_consume_budget`, which gives
    this only if the self-test passed.
    """
    current_task = _current_task

    def try_consume_budget() -> bool:
        """Spend one unit of the current task's budget, if the operation may complete now.

        Synchronous, for the fast path of a primitive. It never yields.

        Returns:
            True: the operation may complete without a schedule point (it has been counted
            as a cancellation point). False: the budget is spent or the task is cancelled;
            the caller must ``await trio.lowlevel.checkpoint()`` before doing anything,
            which yields (refilling the budget) or raises ``trio.Cancelled``.
        """
        task: Any = current_task()
        mark = task._schedule_points
        if task is turn.task and mark == turn.mark:
            remaining = turn.remaining = turn.remaining - 1
        else:
            turn.task = task
            turn.mark = mark
            remaining = turn.remaining = turn.size - 1
        if remaining <= 0 or task._cancel_status.effectively_cancelled:
            return False
        task._cancel_points += 1
        return True

    return try_consume_budget


def fast_try_consume_budget(turn: BudgetTurn) -> Callable[[], bool] | None:
    """The fast budget function over ``turn``, or None if the installed Trio failed its test.

    ``rt._coop`` calls this once, at import, and falls back to its public-API version on None.
    """
    return build_try_consume_budget(turn) if COUNTERS_OK else None


# -- the self-tests ---------------------------------------------------------------------------


async def _probe_splice() -> bool:
    outcome: dict[str, str] = {}

    async def sleeper(name: str) -> None:
        try:
            with trio.CancelScope():  # something of its own open: the splice goes around it
                await trio.sleep_forever()
        except _Cancelled:
            outcome[name] = "cancelled"
            raise

    async def victim(task_box: list[trio.lowlevel.Task], scope: trio.CancelScope) -> None:
        task_box.append(_current_task())
        error: BaseException | None = None
        try:
            await sleeper("victim")
        except BaseException as exc:
            error = exc
        if exit_spliced(scope, error):
            outcome["swallowed"] = "yes"
        elif error is not None:
            raise error

    scope = trio.CancelScope()
    box: list[trio.lowlevel.Task] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(victim, box, scope)
        nursery.start_soon(sleeper, "bystander")
        await trio.testing.wait_all_tasks_blocked()
        if not splice(scope, box[0]):
            nursery.cancel_scope.cancel()
            return False
        scope.cancel()
        await trio.testing.wait_all_tasks_blocked()
        alone = outcome == {"victim": "cancelled", "swallowed": "yes"}
        nursery.cancel_scope.cancel()
    return alone and scope.cancelled_caught and outcome.get("bystander") == "cancelled"


async def _probe_counters() -> bool:
    task = _current_task()
    before = schedule_points(task)
    await trio.lowlevel.checkpoint()
    if schedule_points(task) <= before:
        return False
    t: Any = task
    points = t._cancel_points
    if not try_cancel_point(task) or t._cancel_points != points + 1:
        return False
    with trio.CancelScope() as scope:  # noqa: ASYNC100 - read the status, no checkpoint
        scope.cancel()
        cancelled_seen = not try_cancel_point(task)
    return cancelled_seen and await _probe_budget()


async def _probe_budget() -> bool:
    """The fast budget function keeps the contract: turns, cancellation, cancel points."""
    turn = BudgetTurn(3)
    spend = build_try_consume_budget(turn)
    task: Any = _current_task()
    await trio.lowlevel.checkpoint()
    points = task._cancel_points
    if [spend(), spend(), spend()] != [True, True, False]:
        return False  # a turn allows size - 1 fast operations
    if task._cancel_points != points + 2:
        return False  # each one that completes counts as a cancellation point
    await trio.lowlevel.checkpoint()
    if not spend():
        return False  # going through the scheduler starts a new turn
    await trio.lowlevel.checkpoint()
    with trio.CancelScope() as scope:  # noqa: ASYNC100 - read the status, no checkpoint
        scope.cancel()
        points = task._cancel_points
        refused = not spend() and task._cancel_points == points
        with trio.CancelScope(shield=True):  # noqa: ASYNC100 - the same, shielded
            shielded = spend()
    return refused and shielded


def _run_probe(probe: Callable[[], Any]) -> bool:
    """Run ``probe`` in a fresh Trio run on a helper thread (safe inside a running Trio)."""
    result: list[bool] = []

    def target() -> None:
        try:
            result.append(bool(trio.run(probe)))
        except BaseException:  # a broken internal path may fail in any way: switch it off
            result.append(False)

    thread = threading.Thread(target=target, name="trio-internals-self-test", daemon=True)
    thread.start()
    thread.join()
    return result == [True]


def _self_test_splice() -> bool:
    return _CancelStatus is not None and _run_probe(_probe_splice)


def _self_test_counters() -> bool:
    return _run_probe(_probe_counters)


SPLICE_OK: bool = _self_test_splice()
"""Whether splicing a scope into a running task works on the installed Trio."""

if not SPLICE_OK:
    _CancelStatus = None  # splice() refuses from now on

COUNTERS_OK: bool = _self_test_counters()
"""Whether a task's checkpoint counters and cancel status can be read on the installed Trio."""


# -- seeding the scheduler's batch order ------------------------------------------------------
#
# Trio runs each batch of ready tasks in an order it draws from a module-level generator
# (``trio._core._run._r``): half the time reversed, so code cannot come to rely on one order.
# The simulator (runtime.testing.sim) seeds that generator, so one seed gives one order of
# events, one trace, run after run. Nothing else touches it.


def _find_scheduler_rng() -> random.Random | None:
    try:
        from trio._core import _run

        rng = getattr(_run, "_r", None)
        return rng if isinstance(rng, random.Random) else None
    except Exception:  # any surprise: no seeding
        return None


_scheduler_rng = _find_scheduler_rng()
_seed_checked: bool | None = None


def _interleaving(seed: int) -> list[int]:
    """The order in which 6 tasks take 12 turns each, in a fresh run seeded with ``seed``."""
    order: list[int] = []

    async def worker(n: int) -> None:
        for _ in range(12):
            order.append(n)
            await trio.lowlevel.checkpoint()

    async def main() -> None:
        assert _scheduler_rng is not None
        _scheduler_rng.seed(seed)
        async with trio.open_nursery() as nursery:
            for n in range(6):
                nursery.start_soon(worker, n)

    result: list[list[int]] = []

    def target() -> None:
        try:
            trio.run(main)
            result.append(order)
        except BaseException:
            result.append([])

    thread = threading.Thread(target=target, name="trio-internals-self-test", daemon=True)
    thread.start()
    thread.join()
    return result[0]


def _self_test_seed() -> bool:
    """One seed gives one interleaving, and the seed does choose it (another seed, another)."""
    if _scheduler_rng is None:
        return False
    first, again = _interleaving(1), _interleaving(1)
    others = {tuple(_interleaving(seed)) for seed in (2, 3, 4)}
    return bool(first) and first == again and len(others | {tuple(first)}) > 1


def seed_scheduler(seed: int) -> bool:
    """Seed the order in which Trio runs each batch of ready tasks.

    The first call checks, in a fresh Trio run on a helper thread (the calling thread waits,
    so its own run draws nothing meanwhile), that seeding works on the installed Trio.

    Returns:
        False when it does not (a Trio release moved the generator): the order stays random,
        and a simulation's trace may differ between runs of one seed.
    """
    global _seed_checked
    if _seed_checked is None:
        _seed_checked = _self_test_seed()
    if not _seed_checked or _scheduler_rng is None:
        return False
    _scheduler_rng.seed(seed)
    return True
