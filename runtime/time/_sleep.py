"""sleep and sleep_until on the timer wheel."""

from __future__ import annotations

import math

import trio

from ..rt import mark_wait_machinery
from ._driver import current_wheel
from ._wheel import WheelCore, _Entry, cancel_entry

mark_wait_machinery(__file__)  # the task tree shows who waits here, not these frames

_current_task = trio.lowlevel.current_task
_reschedule = trio.lowlevel.reschedule
_wait_task_rescheduled = trio.lowlevel.wait_task_rescheduled
_SUCCEEDED = trio.lowlevel.Abort.SUCCEEDED
_checkpoint = trio.lowlevel.checkpoint


class _Sleeper(_Entry):
    """A parked task, as a wheel entry."""

    __slots__ = ("_task",)

    def __init__(self, task: trio.lowlevel.Task) -> None:
        self._slot = None
        self._when = 0
        self._task = task

    def _fire(self, wheel: WheelCore) -> None:
        _reschedule(self._task)

    def _abort(self, _raise_cancel: trio.lowlevel.RaiseCancelT) -> trio.lowlevel.Abort:
        cancel_entry(self)
        return _SUCCEEDED


async def _sleep_on(wheel: WheelCore, deadline: float) -> None:
    if deadline == math.inf:
        await trio.sleep_forever()
    entry = _Sleeper(_current_task())
    wheel.insert(entry, deadline)
    await _wait_task_rescheduled(entry._abort)


async def sleep_until(deadline: float) -> None:
    """Sleep until ``deadline`` on Trio's clock (``trio.current_time()``), using the timer wheel.

    Wakes at the first wheel tick at or after the deadline: never early, at most one tick
    (1 ms by default) late. A deadline that is now or already passed does not touch the wheel:
    the call is a plain checkpoint (``trio.lowlevel.checkpoint()``), as in Trio, and no time
    passes. An infinite deadline sleeps until cancelled.

    Args:
        deadline: An absolute time, as returned by ``trio.current_time()``.

    Raises:
        ValueError: if ``deadline`` is NaN.

    Cancellation: a checkpoint. A cancelled sleep takes its timer out of the wheel at once.
    """
    if deadline != deadline:
        raise ValueError("deadline must be a number, got NaN")
    if deadline <= trio.current_time():
        await _checkpoint()
        return
    await _sleep_on(current_wheel(), deadline)


async def sleep(seconds: float) -> None:
    """Sleep for ``seconds``, using the timer wheel.

    The same as ``sleep_until(trio.current_time() + seconds)``: never early, at most one tick
    late. Zero or negative ``seconds`` are a plain checkpoint, as Trio's ``sleep(0)``: other
    tasks get to run and a pending cancel is delivered, but no time passes and the wheel is
    not touched.

    Args:
        seconds: How long to sleep. ``math.inf`` sleeps until cancelled.

    Raises:
        ValueError: if ``seconds`` is NaN.

    Cancellation: a checkpoint. A cancelled sleep takes its timer out of the wheel at once.
    """
    if seconds != seconds:
        raise ValueError("seconds must be a number, got NaN")
    if seconds <= 0:
        await _checkpoint()
        return
    await _sleep_on(current_wheel(), trio.current_time() + seconds)
