"""Notify: wake one task, or all, without passing data.

``notify_one`` wakes the longest-waiting task, or, if nobody waits, stores a single permit that
the next ``notified()`` consumes at once (several calls still store only one). This makes the
usual pattern race-free: a producer that changes some state and calls ``notify_one`` cannot be
missed by a consumer that checked the state just before.

``notify_waiters`` wakes every task waiting *now* and stores nothing. To not miss it between
checking a condition and waiting, create the waiter first: ``waiter = notify.notified()``, then
check, then ``await waiter``. A waiter created before a ``notify_waiters`` call completes at
once even if it is awaited after the call.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Generator
from functools import partial
from typing import Any, final

import attrs
import trio

from ._lowlevel import (
    WOKEN,
    Abort,
    Task,
    checkpoint,
    current_task,
    enable_ki_protection,
    reschedule,
    try_consume_budget,
    wait_task_rescheduled,
)

__all__ = ["Notified", "Notify", "NotifyStatistics"]


@attrs.frozen
class NotifyStatistics:
    """A snapshot of a Notify.

    Attributes:
        tasks_waiting: Tasks parked in ``notified()``.
        permit_stored: Whether a ``notify_one`` permit waits to be consumed.
    """

    tasks_waiting: int
    permit_stored: bool


@final
class Notify:
    """Wake tasks without passing data: ``notify_one`` (with a stored permit) and
    ``notify_waiters``."""

    __slots__ = ("__weakref__", "_generation", "_permit", "_waiters")

    def __init__(self) -> None:
        self._permit = False
        self._generation = 0
        self._waiters: OrderedDict[Task, None] = OrderedDict()

    @enable_ki_protection
    def notify_one(self) -> None:
        """Wake the longest-waiting task, or store one permit if nobody waits."""
        if self._waiters:
            task, _ = self._waiters.popitem(last=False)
            reschedule(task, WOKEN)
        else:
            self._permit = True

    @enable_ki_protection
    def notify_waiters(self) -> None:
        """Wake every task waiting now, and every waiter created before this call. Stores
        no permit."""
        self._generation += 1
        waiters = self._waiters
        self._waiters = OrderedDict()
        for task in waiters:
            reschedule(task, WOKEN)

    def notified(self) -> Notified:
        """A waiter to ``await``. It counts ``notify_waiters`` calls from now on.

        Returns:
            An awaitable that completes on ``notify_one`` (or its stored permit) or on a
            ``notify_waiters`` made after it was created.
        """
        return Notified(self, self._generation)

    async def _wait(self, generation: int) -> None:
        if self._permit or self._generation != generation:
            if not try_consume_budget():
                await checkpoint()
            if self._permit:
                self._permit = False
                return
            if self._generation != generation:
                return
        task = current_task()
        self._waiters[task] = None
        await wait_task_rescheduled(partial(self._abort, task))

    def _abort(self, task: Task, _: object) -> trio.lowlevel.Abort:
        del self._waiters[task]
        return Abort.SUCCEEDED

    def statistics(self) -> NotifyStatistics:
        """A snapshot."""
        return NotifyStatistics(tasks_waiting=len(self._waiters), permit_stored=self._permit)

    def __repr__(self) -> str:
        return f"<Notify waiting={len(self._waiters)} permit={self._permit}>"


@final
class Notified:
    """What :meth:`Notify.notified` returns. Await it once.

    Cancellation: a cancelled wait consumed no permit and leaves the queue.
    """

    __slots__ = ("_generation", "_notify")

    def __init__(self, notify: Notify, generation: int) -> None:
        self._notify = notify
        self._generation = generation

    def __await__(self) -> Generator[Any, None, None]:
        return self._notify._wait(self._generation).__await__()
