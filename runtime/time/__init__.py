"""runtime.time: the timer wheel and the time API on top of it.

Every timer here lives on one hierarchical timing wheel per runtime (:class:`TimerWheel`),
created with the first timer: its driver task starts then and costs nothing until then.
Everything reads time from ``trio.current_time()``, so ``trio.testing.MockClock`` drives it.
"""

from __future__ import annotations

from ._deadline import Deadline as Deadline
from ._delay_queue import DelayQueue as DelayQueue
from ._delay_queue import Key as Key
from ._driver import TimerWheel as TimerWheel
from ._error import Elapsed as Elapsed
from ._idle import IdleDeadline as IdleDeadline
from ._idle import IdleGuard as IdleGuard
from ._interval import Interval as Interval
from ._interval import MissedTickBehavior as MissedTickBehavior
from ._sleep import sleep as sleep
from ._sleep import sleep_until as sleep_until
from ._timeout import TimeoutScope as TimeoutScope
from ._timeout import move_on_after as move_on_after
from ._timeout import move_on_at as move_on_at
from ._timeout import timeout as timeout
from ._timeout import timeout_at as timeout_at
from ._wheel import Timer as Timer
from ._wheel import WheelStatistics as WheelStatistics

__all__ = [
    "Deadline",
    "DelayQueue",
    "Elapsed",
    "IdleDeadline",
    "IdleGuard",
    "Interval",
    "Key",
    "MissedTickBehavior",
    "TimeoutScope",
    "Timer",
    "TimerWheel",
    "WheelStatistics",
    "move_on_after",
    "move_on_at",
    "sleep",
    "sleep_until",
    "timeout",
    "timeout_at",
]
