"""Barrier: wait until a fixed number of tasks have arrived, then release them all."""

from __future__ import annotations

from functools import partial
from typing import final

import attrs
import trio

from ._lowlevel import (
    Abort,
    Handoff,
    Task,
    checkpoint,
    current_task,
    enable_ki_protection,
    reschedule,
    try_consume_budget,
    wait_task_rescheduled,
)

__all__ = ["Barrier", "BarrierStatistics"]

_NOT_LEADER = Handoff(False)


@attrs.frozen
class BarrierStatistics:
    """A snapshot of a barrier.

    Attributes:
        parties: Tasks that must arrive to release a round.
        waiting: Tasks waiting in the current round.
        rounds: Rounds completed.
    """

    parties: int
    waiting: int
    rounds: int


@final
class Barrier:
    """Release tasks in rounds of ``parties``. Reusable: a new round starts after each release.

    Args:
        parties: Tasks per round, at least 1.

    Raises:
        ValueError: ``parties`` is below 1.
    """

    __slots__ = ("_parties", "_rounds", "_waiters")

    def __init__(self, parties: int) -> None:
        if not isinstance(parties, int) or parties < 1:
            raise ValueError(f"a barrier needs parties >= 1, got {parties!r}")
        self._parties = parties
        self._rounds = 0
        self._waiters: dict[Task, None] = {}

    @enable_ki_protection
    async def wait(self) -> bool:
        """Arrive, and wait until ``parties`` tasks have arrived in this round.

        Returns:
            True for exactly one task per round, the leader (the last to arrive); False for
            the others.

        Cancellation: a task cancelled while waiting leaves the round, which then needs
        another arrival.
        """
        if not try_consume_budget():
            await checkpoint()
        if len(self._waiters) + 1 < self._parties:
            task = current_task()
            self._waiters[task] = None
            return await wait_task_rescheduled(  # type: ignore[no-any-return]
                partial(self._abort, task)
            )
        waiters = self._waiters
        self._waiters = {}
        self._rounds += 1
        for task in waiters:
            reschedule(task, _NOT_LEADER)
        return True

    def _abort(self, task: Task, _: object) -> trio.lowlevel.Abort:
        del self._waiters[task]
        return Abort.SUCCEEDED

    @property
    def parties(self) -> int:
        """Tasks per round."""
        return self._parties

    def statistics(self) -> BarrierStatistics:
        """A snapshot."""
        return BarrierStatistics(
            parties=self._parties, waiting=len(self._waiters), rounds=self._rounds
        )

    def __repr__(self) -> str:
        return f"<Barrier {len(self._waiters)}/{self._parties} waiting>"
