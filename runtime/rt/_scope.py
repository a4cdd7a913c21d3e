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

The splice reads and writes Trio private attributes (the cancel-status tree); that code lives
in :mod:`runtime._trio_internals`, which tests it at import. :data:`FAST` is True only when
that self-test passed on the installed Trio. Otherwise every abortable task enters an ordinary
scope at its start (:func:`enter`), which behaves the same, just slower. Leaving (:func:`exit`)
hands anything unusual to Trio's own ``__exit__``: a task that left one of its own scopes
open (misnesting, which Trio reports), or an exception group to split. The runtime's task
tests run in both modes.
"""

from __future__ import annotations

import trio

from .. import _trio_internals

__all__ = ["FAST", "enter", "exit", "splice", "use_fast_path"]


FAST: bool = _trio_internals.SPLICE_OK
"""Whether scopes are spliced in on ``abort()`` (False: every abortable task enters one)."""


def _enter_public(scope: trio.CancelScope) -> None:
    scope.__enter__()


def _exit_public(scope: trio.CancelScope, exc: BaseException | None) -> bool:
    if exc is None:
        scope.__exit__(None, None, None)  # returns True here, but there was nothing to swallow
        return False
    return bool(scope.__exit__(type(exc), exc, exc.__traceback__))


def splice(scope: trio.CancelScope, task: trio.lowlevel.Task) -> bool:
    """Link a fresh ``scope`` around everything ``task`` has open, as if entered first.

    Returns False (and changes nothing) when splicing is off or not possible here; the
    caller then has no scope to cancel and must say so.
    """
    return FAST and _trio_internals.splice(scope, task)


_exit_fast = _trio_internals.exit_spliced


def use_fast_path(enabled: bool) -> None:
    """Switch between splicing and the public protocol (the tests run both)."""
    global FAST, exit
    FAST = enabled and _trio_internals.SPLICE_OK
    exit = _exit_fast if FAST else _exit_public


enter = _enter_public
"""Enter ``scope`` in the current task, as its first step (a task aborted before it ran, or
any abortable task when splicing is not available)."""

exit = _exit_fast if FAST else _exit_public
"""Leave ``scope``; returns True if it swallowed the exception (a cancel it owned)."""
