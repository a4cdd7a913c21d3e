"""The per-task cancel scope behind ``JoinHandle.abort()``, paid for only when it is used.

``abort()`` cancels one task, so every abortable task needs a cancel scope of its own around
its body. Entering and leaving a ``trio.CancelScope`` costs about as much as starting the task
(deadline bookkeeping through two context managers, two clock reads, misnesting checks), and
almost every task is never aborted. So on the fast path a task starts with no scope at all, and
``abort()`` *splices* one in: it links a new scope between the task's owner (the nursery) and
the outermost scope the task has open at that moment, exactly where the scope would be had the
task entered it as its first step. Cancellation then reaches the task and everything it runs,
shields inside the task still hold, and the task's wrapper leaves the scope when the body ends
and swallows the cancellation that scope caused, as ``with scope:`` would.

The splice reads and writes Trio private attributes (the cancel-status tree). :data:`FAST` is
True only when every attribute it needs looks as expected in the installed Trio. Otherwise
every abortable task enters an ordinary scope at its start (:func:`enter`), which behaves the
same, just slower. Leaving (:func:`exit`) hands anything unusual to Trio's own ``__exit__``:
a task that left one of its own scopes open (misnesting, which Trio reports), or an
exception group to split. The runtime's task tests run in both modes.
"""

from __future__ import annotations

from typing import Any

import trio

__all__ = ["FAST", "enter", "exit", "splice", "use_fast_path"]


def _probe() -> Any:
    """Trio's ``CancelStatus`` class if its internals have the shape this module needs."""
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
    except Exception:  # any surprise: use the public protocol
        return None


_CancelStatus: Any = _probe()

FAST: bool = _CancelStatus is not None
"""Whether scopes are spliced in on ``abort()`` (False: every abortable task enters one)."""

_current_task = trio.lowlevel.current_task
_Cancelled = trio.Cancelled
_INF = float("inf")


def _enter_public(scope: trio.CancelScope) -> None:
    scope.__enter__()


def _exit_public(scope: trio.CancelScope, exc: BaseException | None) -> bool:
    if exc is None:
        scope.__exit__(None, None, None)  # returns True here, but there was nothing to swallow
        return False
    return bool(scope.__exit__(type(exc), exc, exc.__traceback__))


@trio.lowlevel.enable_ki_protection
def splice(scope: trio.CancelScope, task: trio.lowlevel.Task) -> bool:
    """Link a fresh ``scope`` around everything ``task`` has open, as if entered first.

    ``task`` must have been started by ``nursery.start_soon`` and not have ended. Returns
    False (and changes nothing) when the cancel tree does not look as expected; the caller
    then has no scope to cancel and must say so.
    """
    if not FAST:
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


@trio.lowlevel.enable_ki_protection
def _exit_fast(scope: trio.CancelScope, exc: BaseException | None) -> bool:
    task: Any = _current_task()
    s: Any = scope
    status = s._cancel_status
    if (
        status is None
        or task._cancel_status is not status
        or s._registered_deadline != _INF
        or (exc is not None and isinstance(exc, BaseExceptionGroup))
    ):
        # Anything unusual (misnesting, a deadline someone set, a group to split): Trio's
        # own exit handles and reports it.
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


def use_fast_path(enabled: bool) -> None:
    """Switch between splicing and the public protocol (the tests run both)."""
    global FAST, exit
    FAST = enabled and _CancelStatus is not None
    exit = _exit_fast if FAST else _exit_public


enter = _enter_public
"""Enter ``scope`` in the current task, as its first step (a task aborted before it ran, or
any abortable task when splicing is not available)."""

exit = _exit_fast if FAST else _exit_public
"""Leave ``scope``; returns True if it swallowed the exception (a cancel it owned)."""
