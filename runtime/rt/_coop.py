"""The cooperative budget: Tokio's coop, fitted to Trio.

Trio makes every async operation a schedule point. That is simple and fair, but it costs a full
trip through the scheduler even when the operation could finish at once (a channel with room, a
socket with data). Tokio instead gives each task a budget of operations per turn: an operation
that can complete immediately does so without yielding, and only when the budget runs out, or
the task really has to wait, does it go back to the scheduler.

A *turn* is the stretch a task runs between two schedule points. Trio counts the schedule
points of every task (``Task._schedule_points``, the counter behind
``trio.testing.assert_checkpoints``), so a turn is recognised exactly: the budget refills when a
different task spends, or when the same task has been through the scheduler since it last
spent. Within one turn a task completes at most ``budget`` operations; the one that would go
over yields first, and completes in the next turn.

Every budgeted operation is still a cancellation point: :func:`try_consume_budget` refuses when
the task's cancel scope is cancelled, and the caller then takes the checkpoint that raises
``trio.Cancelled`` *before* the operation has any effect. What is given up is only the promise
that *every* operation lets other tasks run (see ``docs/explanation/budget.md``).

Two ways to use it:

* ``await consume_budget()`` before the operation: simple, one extra coroutine.
* The hot path of a primitive inlines it::

      if not try_consume_budget():
          await checkpoint()      # yields; raises Cancelled if cancelled
      ...complete the operation, or park (parking is a schedule point)...

The state is process-wide, like the budget size. Two Trio runs in two threads that both spend
budget can refill each other's turns, so such a task yields less often than the budget says
(it still checks for cancellation on every operation).

The fast path reads three private attributes of ``trio.lowlevel.Task`` (the cancel status and
the two checkpoint counters used by ``trio.testing``). It runs on every socket read and write,
so it is one function built whole in :mod:`runtime._trio_internals` (the module that keeps
Trio's private API in quarantine and tests it at import) over this module's
:class:`~runtime._trio_internals.BudgetTurn`, and :func:`try_consume_budget` here *is* that
function: callers pay one call. If a future Trio changes the internals, the self-test fails
and this module uses its public-API version instead: ``current_effective_deadline()`` for
cancellation, and task identity alone for turns (which only makes tasks yield earlier).
"""

from __future__ import annotations

from collections.abc import Callable
from math import inf

import trio

from .. import _trio_internals

_DEFAULT_BUDGET = 128

# The budget's whole state: the size, and whose turn it is (task, schedule-point mark, what
# is left). The fast path built in _trio_internals reads and writes this same object.
_turn = _trio_internals.BudgetTurn(_DEFAULT_BUDGET)

_current_task = trio.lowlevel.current_task
_checkpoint = trio.lowlevel.checkpoint
_effective_deadline = trio.current_effective_deadline

# Built once, here, at import; None if the installed Trio failed the self-test.
_fast_path = _trio_internals.fast_try_consume_budget(_turn)
_FAST = _fast_path is not None
_schedule_points = _trio_internals.schedule_points


def set_budget(size: int) -> int:
    """Set the budget for this process and return the previous one.

    The runtime calls this from ``RuntimeConfig.coop_budget``. A budget of 1 makes every
    operation a schedule point, which is Trio's own behaviour.

    Args:
        size: Operations a task may complete per turn, at least 1.

    Returns:
        The budget that was in force before.

    Raises:
        ValueError: ``size`` is below 1.
    """
    if size < 1:
        raise ValueError(f"coop budget must be >= 1, got {size}; use 1 for Trio's behaviour")
    previous = _turn.size
    _turn.size = size
    _turn.task = None
    return previous


def budget() -> int:
    """The budget size in force."""
    return _turn.size


def _try_consume_budget_public() -> bool:
    """Spend one unit of the current task's budget, if the operation may complete now.

    The same contract as the fast version, on public Trio API only. Without the
    schedule-point counter a turn ends only when another task spends budget or when this one
    runs out, so a task may yield a little earlier than it has to.

    Returns:
        True: the operation may complete without a schedule point. False: the budget is spent
        or the task is cancelled; the caller must ``await trio.lowlevel.checkpoint()``.
    """
    turn = _turn
    task = _current_task()
    if task is turn.task:
        remaining = turn.remaining = turn.remaining - 1
    else:
        turn.task = task
        remaining = turn.remaining = turn.size - 1
    if remaining <= 0:
        turn.task = None
        return False
    return _effective_deadline() != -inf


try_consume_budget: Callable[[], bool] = (
    _try_consume_budget_public if _fast_path is None else _fast_path
)
"""Spend one unit of the current task's budget, if the operation may complete now.

Synchronous, for the fast path of a primitive; it never yields. True: the operation may
complete without a schedule point (it has been counted as a cancellation point). False: the
budget is spent or the task is cancelled, and the caller must ``await
trio.lowlevel.checkpoint()`` before doing anything, which yields (refilling the budget) or
raises ``trio.Cancelled``. The fast function from ``_trio_internals`` itself, not a wrapper.
"""


async def consume_budget() -> None:
    """Spend one unit of the current task's budget.

    Always a cancellation point. A schedule point only when the budget is spent, in which case
    the task yields and comes back with a full budget.

    Raises:
        trio.Cancelled: The task is cancelled (checked on every call).
    """
    if not try_consume_budget():
        await _checkpoint()


def has_budget() -> bool:
    """Whether the current task could complete an operation now without being forced to yield."""
    turn = _turn
    task = _current_task()
    if task is not turn.task:
        return turn.size > 1
    if _FAST and _schedule_points(task) != turn.mark:
        return turn.size > 1
    return turn.remaining > 1


def reset_budget() -> None:
    """Forget the current turn; the next operation starts with a full budget.

    Rarely needed: a turn already ends at every schedule point.
    """
    _turn.task = None


async def yield_now() -> None:
    """Yield to the scheduler, as Tokio's ``yield_now``: a checkpoint that refills the budget.

    Raises:
        trio.Cancelled: The task is cancelled.
    """
    reset_budget()
    await _checkpoint()
