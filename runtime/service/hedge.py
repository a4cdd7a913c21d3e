"""Hedge: when a request is slower than most, send a second copy and take whichever wins.

Hedge keeps the latencies of recent successful calls. Once it has ``min_data_points`` of them,
each request starts a timer set to the ``percentile`` of those latencies (the p90 by default).
If the request is still running when the timer fires, a copy (``clone(request)``) goes to the
inner service too. The first attempt to succeed wins; the other is cancelled, which returns
anything it had reserved. A failure while the other attempt still runs is ignored; if every
attempt fails, the first attempt's exception is raised. If the first attempt fails before the
timer fires, no copy is sent: retrying failures is :class:`~runtime.service.Retry`'s job.

Both attempts run inside one nursery in the caller's task, so a hedge never outlives its
request, and cancelling the caller cancels both.

Cost: at ``percentile`` p, about ``1 - p`` of requests send a second copy, so the inner service
sees up to that much more load. Keep ``percentile`` high.
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any, Generic, TypeVar

import attrs
import outcome
import trio

from runtime.time import sleep

from ._service import Call, Middleware, Service
from ._validate import at_least_one, fraction

Req = TypeVar("Req")
Resp = TypeVar("Resp")

__all__ = ["Hedge", "HedgeLayer", "HedgeStatistics"]


def _same(request: Req) -> Req | None:
    return request


class _Latencies:
    """The last ``size`` samples, kept sorted as well so a percentile is one index."""

    __slots__ = ("_arrival", "_size", "_sorted")

    def __init__(self, size: int) -> None:
        self._arrival: deque[float] = deque()
        self._sorted: list[float] = []
        self._size = size

    def __len__(self) -> int:
        return len(self._arrival)

    def add(self, sample: float) -> None:
        if len(self._arrival) == self._size:
            oldest = self._arrival.popleft()
            del self._sorted[bisect.bisect_left(self._sorted, oldest)]
        self._arrival.append(sample)
        bisect.insort(self._sorted, sample)

    def percentile(self, p: float) -> float:
        """Nearest-rank percentile: the smallest sample at or above a fraction ``p`` of all."""
        ranked = self._sorted
        return ranked[max(0, math.ceil(p * len(ranked)) - 1)]


class _Race(Generic[Resp]):
    """Who won, and what failed, between the first attempt and its hedge."""

    __slots__ = ("first_error", "hedged", "scope", "winner")

    def __init__(self, scope: trio.CancelScope) -> None:
        self.scope = scope
        self.winner: outcome.Value[Resp] | None = None
        self.first_error: Exception | None = None
        self.hedged = False

    def won(self, response: Resp) -> None:
        if self.winner is None:
            self.winner = outcome.Value(response)
            self.scope.cancel()

    def result(self) -> Resp:
        if self.winner is not None:
            return self.winner.unwrap()
        assert self.first_error is not None
        raise self.first_error


@attrs.frozen
class HedgeStatistics:
    """A hedge at one moment.

    Attributes:
        samples: Latencies on record.
        threshold: Seconds after which a copy is sent; None until there are enough samples.
        hedged: Copies sent so far.
    """

    samples: int
    threshold: float | None
    hedged: int


@attrs.define(eq=False)
class Hedge(Middleware[Req, Resp, Req, Resp]):
    """Send a second copy of slow requests; the first success wins, the loser is cancelled.

    Attributes:
        inner: The wrapped service.
        percentile: Latency percentile after which a copy is sent. Default 0.9: at most about
            10% more load, for a cut in the tail above the p90.
        min_data_points: Samples needed before any hedging. Default 20: fewer make the
            percentile noise.
        max_samples: Recent latencies kept. Default 1000.
        clone: ``clone(request)`` gives the copy to send, or None to never hedge that
            request. Default: the same request object (fine for immutable requests).
        hedged: Copies sent so far.

    Cancellation:
        Cancelling the caller cancels both attempts; each returns what it reserved.
    """

    inner: Service[Req, Resp]
    percentile: float = attrs.field(default=0.9, validator=fraction)
    min_data_points: int = attrs.field(default=20, validator=at_least_one)
    max_samples: int = attrs.field(default=1000, validator=at_least_one)
    clone: Callable[[Req], Req | None] = _same
    hedged: int = attrs.field(default=0, init=False)
    _latencies: _Latencies = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self._latencies = _Latencies(max(self.max_samples, self.min_data_points))

    def __call__(self, request: Req) -> Coroutine[Any, Any, Resp]:
        """Call the inner service, hedging if the call runs past the latency threshold."""
        return self.handle(request, self.inner)

    def threshold(self) -> float | None:
        """Seconds after which a copy is sent, or None while there are too few samples."""
        if len(self._latencies) < self.min_data_points:
            return None
        return self._latencies.percentile(self.percentile)

    async def handle(self, request: Req, call: Call[Req, Resp]) -> Resp:
        threshold = self.threshold()
        spare = None if threshold is None else self.clone(request)
        if threshold is None or spare is None:
            return await self._timed(call, request)
        async with trio.open_nursery() as nursery:
            race: _Race[Resp] = _Race(nursery.cancel_scope)
            nursery.start_soon(self._hedge, threshold, spare, race)
            try:
                race.won(await self._timed(call, request))
            except Exception as exc:
                race.first_error = exc
                if not race.hedged:
                    nursery.cancel_scope.cancel()
        return race.result()

    async def _hedge(self, threshold: float, request: Req, race: _Race[Resp]) -> None:
        await sleep(threshold)
        try:
            # The copy counts as sent once it holds a reservation. Until then a failed first
            # attempt does not wait for it: under a reservation (a LoadShed above a limit),
            # the room it waits for may be the very room the first attempt's block holds.
            async with self.inner.ready() as call:
                race.hedged = True
                self.hedged += 1
                response = await self._timed(call, request)
        except Exception:
            return  # the first attempt's outcome decides
        race.won(response)

    async def _timed(self, call: Call[Req, Resp], request: Req) -> Resp:
        start = trio.current_time()
        response = await call(request)
        self._latencies.add(trio.current_time() - start)
        return response

    def statistics(self) -> HedgeStatistics:
        """Samples on record, the current threshold and copies sent."""
        return HedgeStatistics(
            samples=len(self._latencies), threshold=self.threshold(), hedged=self.hedged
        )


@attrs.frozen
class HedgeLayer(Generic[Req]):
    """Wraps services in :class:`Hedge` (each with its own latency record).

    Attributes:
        percentile: Latency percentile after which a copy is sent.
        min_data_points: Samples needed before any hedging.
        max_samples: Recent latencies kept.
        clone: Gives the copy to send, or None to never hedge that request.
    """

    percentile: float = attrs.field(default=0.9, validator=fraction)
    min_data_points: int = attrs.field(default=20, validator=at_least_one)
    max_samples: int = attrs.field(default=1000, validator=at_least_one)
    clone: Callable[[Req], Req | None] = _same

    def layer(self, inner: Service[Req, Resp]) -> Hedge[Req, Resp]:
        return Hedge(
            inner,
            percentile=self.percentile,
            min_data_points=self.min_data_points,
            max_samples=self.max_samples,
            clone=self.clone,
        )
