"""DelayQueue: items that come out when their delay has passed (Tokio's ``DelayQueue``).

Each item's key is its own wheel entry. When the wheel fires it, the key moves to the ready
queue; a waiting task takes it from there. Taking is synchronous once the task runs, so a
cancelled wait never loses an item: the item stays ready for the next call.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Generic, TypeVar

import trio

from ._driver import current_wheel
from ._wheel import WheelCore, _Entry, cancel_entry

T = TypeVar("T")


class Key(_Entry, Generic[T]):
    """The handle of one item in a :class:`DelayQueue`, from :meth:`DelayQueue.insert`."""

    __slots__ = ("_deadline", "_item", "_queue")

    def __init__(self, queue: DelayQueue[T], item: T, deadline: float) -> None:
        self._slot = None
        self._when = 0
        self._queue: DelayQueue[T] | None = queue
        self._item = item
        self._deadline = deadline

    @property
    def deadline(self) -> float:
        """When the item expires (or expired), on Trio's clock."""
        return self._deadline

    def _fire(self, wheel: WheelCore) -> None:
        queue = self._queue
        assert queue is not None
        queue._waiting -= 1
        queue._ready.append(self)
        if queue._lot:
            queue._lot.unpark()

    def __repr__(self) -> str:
        return f"<DelayQueue.Key {self._item!r} at {self._deadline:.6g}>"


class DelayQueue(Generic[T]):
    """A queue of items that each become available once their own delay has passed.

    Use it for key expiry, retry schedules and anything that must happen "n seconds after
    x": ``insert`` returns a :class:`Key`, ``remove`` and ``reset`` take it, and
    ``async for item in queue`` yields items as they expire, earliest first (items due in the
    same wheel tick come out in insertion order). Insert, remove and reset of a waiting item
    are O(1).

    Iteration ends when the queue is empty (nothing waiting, nothing expired), as Tokio's
    stream does; :meth:`next_expired` instead waits for a future insert.

    The queue finds the timer wheel at its first insert, so it can be created anywhere. It
    belongs to one Trio run (one runtime) while items wait in it: using it in another run
    with items still waiting raises ``RuntimeError``; an empty queue moves to the new run.
    """

    def __init__(self) -> None:
        self._wheel: WheelCore | None = None
        self._waiting = 0
        self._ready: deque[Key[T]] = deque()
        self._lot = trio.lowlevel.ParkingLot()

    def _get_wheel(self) -> WheelCore:
        """The wheel of the running run; rebinds to it if nothing waits on an older one.

        Raises:
            RuntimeError: items still wait on the wheel of another run or runtime.
        """
        wheel = current_wheel()
        if wheel is not self._wheel:
            if self._waiting:
                raise RuntimeError(
                    f"this DelayQueue has {self._waiting} item(s) waiting on the timer wheel "
                    "of another run (or runtime), which will never fire them here; use one "
                    "DelayQueue per run, or remove its items before the run ends"
                )
            self._wheel = wheel
        return wheel

    def __len__(self) -> int:
        """Items in the queue: still waiting, or expired and not yet taken."""
        return self._waiting + len(self._ready)

    def insert(self, item: T, delay: float) -> Key[T]:
        """Add ``item``, to expire ``delay`` seconds from now.

        Args:
            item: Any value.
            delay: Seconds until it expires. Zero or negative expires at the next tick.

        Returns:
            The item's key, for :meth:`remove` and :meth:`reset`.

        Raises:
            ValueError: if ``delay`` is NaN or infinite.
            RuntimeError: items are still waiting on the wheel of an earlier run.
        """
        return self.insert_at(item, trio.current_time() + delay)

    def insert_at(self, item: T, deadline: float) -> Key[T]:
        """Add ``item``, to expire at ``deadline`` on Trio's clock. See :meth:`insert`.

        Raises:
            ValueError: if ``deadline`` is NaN or infinite.
            RuntimeError: items are still waiting on the wheel of an earlier run.
        """
        _check(deadline)
        wheel = self._get_wheel()
        key = Key(self, item, deadline)
        wheel.insert(key, deadline)
        self._waiting += 1
        return key

    def remove(self, key: Key[T]) -> T:
        """Take an item out, expired or not, and return it.

        O(1) while it waits; O(expired items) if it has expired and is waiting to be taken.

        Raises:
            KeyError: if the key is not in this queue (already taken or removed, or from
                another queue).
        """
        self._own(key)
        if key._slot is not None:
            cancel_entry(key)
            self._waiting -= 1
        else:
            self._ready.remove(key)
        key._queue = None
        return key._item

    def reset(self, key: Key[T], delay: float) -> None:
        """Make an item expire ``delay`` seconds from now instead, even if it already expired.

        Raises:
            KeyError: if the key is not in this queue.
            ValueError: if ``delay`` is NaN or infinite.
        """
        self.reset_at(key, trio.current_time() + delay)

    def reset_at(self, key: Key[T], deadline: float) -> None:
        """Make an item expire at ``deadline`` instead. See :meth:`reset`.

        Raises:
            KeyError: if the key is not in this queue.
            ValueError: if ``deadline`` is NaN or infinite.
        """
        _check(deadline)
        self._own(key)
        wheel = self._get_wheel()
        if key._slot is None:
            self._ready.remove(key)
            self._waiting += 1
        key._deadline = deadline
        wheel.reset(key, deadline)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, Key) and key._queue is self

    def next_expired_nowait(self) -> T:
        """Take the next expired item without waiting.

        Raises:
            trio.WouldBlock: if no item has expired yet.
        """
        if not self._ready:
            raise trio.WouldBlock
        key = self._ready.popleft()
        key._queue = None
        return key._item

    async def next_expired(self) -> T:
        """Wait for the next item to expire and take it. Waits even while the queue is empty.

        Raises:
            RuntimeError: nothing has expired and the items still waiting are on the wheel of
                an earlier run, so they never would.

        Cancellation: a checkpoint. A cancelled call takes no item; every expired item stays
        in the queue for the next call.
        """
        if self._ready:
            await trio.lowlevel.checkpoint()
        elif self._waiting:
            self._get_wheel()  # refuses to wait for a wheel that no longer runs
        while not self._ready:
            await self._lot.park()
        return self.next_expired_nowait()

    def __aiter__(self) -> DelayQueue[T]:
        return self

    async def __anext__(self) -> T:
        """The next expired item; ends the iteration when the queue is empty.

        Cancellation: as :meth:`next_expired`.
        """
        if not self._waiting and not self._ready:
            await trio.lowlevel.checkpoint()
            raise StopAsyncIteration
        return await self.next_expired()

    def _own(self, key: Key[T]) -> None:
        if key._queue is not self:
            raise KeyError(
                f"{key!r} is not in this queue: it was already taken or removed, or it "
                "belongs to another DelayQueue"
            )

    def __repr__(self) -> str:
        return f"<DelayQueue waiting={self._waiting} expired={len(self._ready)}>"


def _check(deadline: float) -> None:
    if not math.isfinite(deadline):
        raise ValueError(f"an item's deadline must be finite, got {deadline!r}")
