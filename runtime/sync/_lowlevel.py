"""The few Trio low-level names every primitive in runtime.sync parks and wakes with.

Kept in one place so each primitive reads the same way:

* fast path (the operation can complete now): ``if try_consume_budget():`` complete it and
  return; otherwise ``await checkpoint()`` first (it yields, or raises ``Cancelled``), then look
  again. The check comes before any effect, so a cancelled operation has none;
* slow path (it must wait): register the task in the primitive's own wait queue and
  ``await wait_task_rescheduled(abort)``, which is a checkpoint by itself. Whoever completes
  the operation for the task removes it from the queue and calls
  ``reschedule(task, Handoff(value))`` (or ``WOKEN``, or ``Error(exc)``); the ``abort`` callback
  removes it on cancellation, so a cancelled operation leaves the queue as if it had never
  waited.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Generator
from typing import Any, Generic, TypeVar

import trio
from outcome import Error as Error
from outcome import Outcome

from runtime.rt._coop import try_consume_budget as try_consume_budget

Abort = trio.lowlevel.Abort
Task = trio.lowlevel.Task
current_task = trio.lowlevel.current_task
reschedule = trio.lowlevel.reschedule
wait_task_rescheduled = trio.lowlevel.wait_task_rescheduled
checkpoint = trio.lowlevel.checkpoint
enable_ki_protection = trio.lowlevel.enable_ki_protection

NO_VALUE: Any = object()
"""Marks "nothing here" where None is a legitimate value."""

T = TypeVar("T")
R = TypeVar("R")


class Handoff(Outcome[T], Generic[T]):
    """The outcome a parked task is rescheduled with: a value, handed over as is.

    ``outcome.Value`` guards against being unwrapped twice, which costs an attrs-frozen
    construction on every wake-up (about 0.4 us, as much as the rest of a channel's fast path).
    Trio unwraps the outcome it is given exactly once, so the guard buys nothing here.
    """

    __slots__ = ("value",)

    def __init__(self, value: T) -> None:
        self.value = value

    def unwrap(self) -> T:
        return self.value

    def send(self, gen: Generator[R, T, object]) -> R:
        return gen.send(self.value)

    async def asend(self, agen: AsyncGenerator[R, T]) -> R:
        return await agen.asend(self.value)


WOKEN: Handoff[Any] = Handoff(None)
"""Reschedule with this when there is no value to pass: shared, as it holds no state."""
