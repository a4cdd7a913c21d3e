"""runtime.sync: channels and coordination primitives with a cooperative budget.

Channels, each a module with a ``channel(...)`` function returning ``(sender, receiver)``:

* :mod:`~runtime.sync.mpsc`: many producers, one consumer, bounded (or
  ``mpsc.unbounded_channel()``), with ``reserve()`` permits;
* :mod:`~runtime.sync.oneshot`: exactly one value, such as a reply;
* :mod:`~runtime.sync.broadcast`: every subscriber sees every value, or learns it lagged;
* :mod:`~runtime.sync.watch`: the latest value, and a way to wait for it to change.

Coordination: :class:`Semaphore`, :class:`Notify`, :class:`Barrier`, :class:`RwLock`,
:class:`OnceCell` and :class:`CancellationToken`.

Every async operation is a cancellation point. An operation that can complete at once does so
without a schedule point, spending the task's cooperative budget instead (see
``runtime.rt._coop``); the task yields when the budget is spent or when it has to wait.

Errors are Trio's where they mean the same thing: ``EndOfChannel`` is ``trio.EndOfChannel``,
``Closed`` is ``trio.ClosedResourceError`` (your handle was closed), ``WouldBlock`` is
``trio.WouldBlock``; a send whose receiver went away raises ``trio.BrokenResourceError``.
:class:`Lagged` is new.
"""

from __future__ import annotations

from . import broadcast as broadcast
from . import mpsc as mpsc
from . import oneshot as oneshot
from . import watch as watch
from ._barrier import Barrier as Barrier
from ._barrier import BarrierStatistics as BarrierStatistics
from ._cancellation_token import CancellationToken as CancellationToken
from ._errors import Closed as Closed
from ._errors import EndOfChannel as EndOfChannel
from ._errors import Lagged as Lagged
from ._errors import WouldBlock as WouldBlock
from ._named import NamedChannel as NamedChannel
from ._named import named_channels as named_channels
from ._notify import Notified as Notified
from ._notify import Notify as Notify
from ._notify import NotifyStatistics as NotifyStatistics
from ._once_cell import OnceCell as OnceCell
from ._rwlock import ReadGuard as ReadGuard
from ._rwlock import RwLock as RwLock
from ._rwlock import RwLockStatistics as RwLockStatistics
from ._rwlock import WriteGuard as WriteGuard
from ._semaphore import Semaphore as Semaphore
from ._semaphore import SemaphorePermit as SemaphorePermit
from ._semaphore import SemaphoreStatistics as SemaphoreStatistics

__all__ = [
    "Barrier",
    "BarrierStatistics",
    "CancellationToken",
    "Closed",
    "EndOfChannel",
    "Lagged",
    "NamedChannel",
    "Notified",
    "Notify",
    "NotifyStatistics",
    "OnceCell",
    "ReadGuard",
    "RwLock",
    "RwLockStatistics",
    "Semaphore",
    "SemaphorePermit",
    "SemaphoreStatistics",
    "WouldBlock",
    "WriteGuard",
    "broadcast",
    "mpsc",
    "named_channels",
    "oneshot",
    "watch",
]
