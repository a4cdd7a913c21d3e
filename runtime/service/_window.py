"""A sliding-window counter: how many events of each kind happened in the last ``span`` seconds.

The window is cut into ``buckets`` equal slices kept in a ring. An event is counted in the
slice of the current time; when time moves into a new slice, the slices that fell out of the
window are cleared and their counts subtracted from the running totals. So adding and reading
are O(1) (clearing after a long pause is at most ``buckets`` steps), and the window's true
length is between ``span - span/buckets`` and ``span``.

Time is passed in by the caller (``trio.current_time()``), so MockClock drives it.
"""

from __future__ import annotations


class WindowCounter:
    """Counts of ``kinds`` kinds of event over a sliding window.

    Args:
        span: Window length in seconds.
        kinds: How many different kinds of event are counted (indexed 0..kinds-1).
        buckets: Slices the window is cut into; more slices, smoother sliding.
    """

    __slots__ = ("_buckets", "_counts", "_slice", "_totals", "_width")

    def __init__(self, span: float, kinds: int, buckets: int = 10) -> None:
        if span <= 0:
            raise ValueError(f"window span must be > 0 seconds, got {span!r}")
        self._width = span / buckets
        self._buckets = buckets
        self._counts = [[0] * kinds for _ in range(buckets)]
        self._totals = [0] * kinds
        self._slice: int | None = None

    def _advance(self, current: int) -> None:
        """Move the window to slice ``current``, clearing the slices that fell out of it."""
        last = self._slice
        if last is None or current - last >= self._buckets:
            steps = range(self._buckets)
        else:
            steps = range(last + 1, current + 1)
        totals = self._totals
        for step in steps:
            counts = self._counts[step % self._buckets]
            for kind, count in enumerate(counts):
                totals[kind] -= count
                counts[kind] = 0
        self._slice = current

    def add(self, kind: int, now: float, amount: int = 1) -> None:
        """Count ``amount`` events of ``kind`` at time ``now``."""
        current = int(now // self._width)
        if current != self._slice:
            self._advance(current)
        self._counts[current % self._buckets][kind] += amount
        self._totals[kind] += amount

    def total(self, kind: int, now: float) -> int:
        """Events of ``kind`` in the window that ends at ``now``."""
        current = int(now // self._width)
        if current != self._slice:
            self._advance(current)
        return self._totals[kind]

    def clear(self) -> None:
        """Forget every event."""
        for counts in self._counts:
            counts[:] = [0] * len(counts)
        self._totals[:] = [0] * len(self._totals)
        self._slice = None
