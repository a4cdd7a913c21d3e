"""The cooperative budget: Tokio's coop, fitted to Trio.

Trio makes every async operation a schedule point. That is simple and fair, but it costs a full
trip through the scheduler even when the operation could finish at once (a channel with room, a
socket with data). Tokio instead gives each task a budget of operations per turn: an operation
that can complete immediately does so without yielding, and only when the budget runs out, or
the task really has to wait, does it go back to the scheduler.

Here a "turn" is the run of operations one task makes without another task's budgeted operation
in between. We track the last task that spent budget; when a different task spends, the budget
refills. Every budgeted operation still checks for cancellation, so cancellation stays prompt;
what is given up is only the guarantee that *every* operation lets other tasks run.

Primitives call :func:`consume_budget` on their fast path (the operation will complete without
waiting) and simply park on their slow path (parking is a schedule point that refills the
budget, because another task runs in between).
"""

from __future__ import annotations

import trio

_DEFAULT_BUDGET = 128

_budget_size = _DEFAULT_BUDGET
_last_task: object = None
_remaining = 0

_current_task = trio.lowlevel.current_task
_checkpoint = trio.lowlevel.checkpoint
_checkpoint_if_cancelled = trio.lowlevel.checkpoint_if_cancelled


def set_budget(size: int) -> int:
    """Set the budget for this process and return the previous one.

    The runtime calls this from its config; a budget of 1 makes every operation a schedule
    point, which is Trio's own behaviour.
    """
    global _budget_size, _last_task
    if size < 1:
        raise ValueError(f"coop budget must be >= 1, got {size}")
    previous = _budget_size
    _budget_size = size
    _last_task = None
    return previous


def budget() -> int:
    """The budget size in force."""
    return _budget_size


async def consume_budget() -> None:
    """Spend one unit of the current task's budget.

    Always a cancellation point. A schedule point only when the budget is spent, in which case
    the task yields and comes back with a full budget.
    """
    global _last_task, _remaining
    task = _current_task()
    if task is _last_task:
        _remaining -= 1
        if _remaining > 0:
            await _checkpoint_if_cancelled()
            return
    else:
        _last_task = task
        _remaining = _budget_size - 1
        if _remaining > 0:
            await _checkpoint_if_cancelled()
            return
    _remaining = _budget_size
    _last_task = None
    await _checkpoint()


def has_budget() -> bool:
    """Whether the current task could complete an operation now without being forced to yield."""
    return _current_task() is not _last_task or _remaining > 1


def reset_budget() -> None:
    """Forget the current turn; the next operation starts a fresh budget.

    Call after a real schedule point that did not go through :func:`consume_budget`.
    """
    global _last_task
    _last_task = None


async def yield_now() -> None:
    """Yield to the scheduler, as Tokio's ``yield_now``. A checkpoint that refills the budget."""
    reset_budget()
    await _checkpoint()
