"""The few Trio low-level names every primitive in runtime.sync parks and wakes with.

Kept in one place so each primitive reads the same way:

* fast path: ``if not try_consume_budget(): await checkpoint()``, then complete at once;
* slow path: register the task in the primitive's own wait queue and
  ``await wait_task_rescheduled(abort)``; whoever completes the operation for it removes it from
  the queue and calls ``reschedule(task, Value(...))``; the ``abort`` callback removes it on
  cancellation, so a cancelled operation leaves the queue as if it had never waited.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import trio
from outcome import Error as Error
from outcome import Value as Value

from runtime.rt._coop import try_consume_budget as try_consume_budget

Abort = trio.lowlevel.Abort
Task = trio.lowlevel.Task
current_task = trio.lowlevel.current_task
reschedule = trio.lowlevel.reschedule
wait_task_rescheduled = trio.lowlevel.wait_task_rescheduled
checkpoint = trio.lowlevel.checkpoint
enable_ki_protection = trio.lowlevel.enable_ki_protection

AbortFn = Callable[[Any], trio.lowlevel.Abort]

NO_VALUE: Any = object()
"""Marks "nothing here" where None is a legitimate value."""
