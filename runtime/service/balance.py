"""Balance: power of two random choices over endpoints, by a load measure.

For each request, Balance draws two different endpoints at random and sends to the one whose
load is lower (Mitzenmacher's "power of two choices": nearly as good as asking every endpoint,
at the cost of two). Endpoints that are not ready (``is_ready()`` False: a full limit, an open
circuit) are skipped; if neither draw is ready, the draw is repeated among the ready ones.
The chosen endpoint is reserved with ``ready_nowait()``, so the choice and the reservation are
one step.

**Load measures.** :class:`PendingRequests` counts calls in flight. :class:`PeakEwma` (Finagle,
Linkerd) multiplies an RTT estimate by ``pending + 1``. The estimate is an exponentially
weighted moving average whose weights depend on the time between samples (``decay`` is the
time constant), except that a sample *above* the estimate replaces it at once (the "peak"):
it reacts to a slowdown immediately and forgets it slowly. The default RTT is only a guess
for an endpoint never measured: its first sample replaces it. An estimate that gets no samples
fades towards zero, so an endpoint that was slow once gets tried again instead of being
starved forever. Only successful calls are RTT samples: a fast failure would make a broken
endpoint look attractive. A failed call instead leaves a peak of ``failure_rtt`` (1 s by
default), and a cancelled one (a per-try timeout above) a peak of the time it took, so
retries go elsewhere while the estimate fades; pair Balance with a
CircuitBreaker per endpoint to stop sending to an endpoint that keeps failing.

**When nothing is ready** (or there are no endpoints yet), a call waits: on the less loaded of
two endpoints' ``ready()``, or for the first insert. Any change to the endpoint set wakes the
waiters to choose again. Put a Timeout above Balance to bound that wait.

**Endpoint changes** come from a :class:`~runtime.service.discover.Discover`
(``serve_discovery``) or from :meth:`Balance.insert` / :meth:`Balance.remove`. Removing an
endpoint only stops new requests to it: calls in flight keep their reference and finish.
"""

from __future__ import annotations

import abc
import math
import random
from collections.abc import AsyncIterator, Container
from contextlib import (
    AbstractAsyncContextManager,
    AbstractContextManager,
    asynccontextmanager,
)
from types import TracebackType
from typing import Any, Generic, TypeVar

import attrs
import trio

from runtime.rt._coop import try_consume_budget

from ._service import Call, Service
from ._tasks import running
from ._validate import positive
from .discover import Change, Discover, Insert

K = TypeVar("K")
Req = TypeVar("Req")
Resp = TypeVar("Resp")

__all__ = [
    "Balance",
    "BalanceStatistics",
    "Endpoint",
    "EndpointStatistics",
    "Load",
    "PeakEwma",
    "PendingRequests",
    "open_balance",
]

_now = trio.current_time


class Endpoint(Generic[K, Req, Resp]):
    """One endpoint in a Balance and the load figures kept for it (what a Load reads).

    Attributes:
        key: The endpoint's key.
        service: The service that reaches it.
        pending: Calls in flight on it.
        rtt: The RTT estimate as of ``stamp`` (used by PeakEwma).
        stamp: When ``rtt`` was last updated (Trio time).
        samples: Successful calls measured so far.
    """

    __slots__ = ("key", "pending", "rtt", "samples", "service", "stamp")

    def __init__(self, key: K, service: Service[Req, Resp], rtt: float, now: float) -> None:
        self.key = key
        self.service = service
        self.pending = 0
        self.rtt = rtt
        self.stamp = now
        self.samples = 0


class Load(abc.ABC):
    """How busy an endpoint looks to the balancer; lower is better."""

    def initial_rtt(self) -> float:
        """The RTT estimate a new endpoint starts with. Default 0 (unused)."""
        return 0.0

    @abc.abstractmethod
    def cost(self, endpoint: Endpoint[Any, Any, Any], now: float) -> float:
        """The endpoint's load at ``now``."""

    def observe(self, endpoint: Endpoint[Any, Any, Any], rtt: float, now: float) -> None:
        """A call to ``endpoint`` succeeded after ``rtt`` seconds. Default: nothing to learn."""
        return None

    def observe_failure(self, endpoint: Endpoint[Any, Any, Any], now: float) -> None:
        """A call to ``endpoint`` raised. Default: nothing to learn."""
        return None

    def observe_cancelled(self, endpoint: Endpoint[Any, Any, Any], rtt: float, now: float) -> None:
        """A call to ``endpoint`` was cancelled after ``rtt`` seconds (a timeout above, or
        the caller gone): it took at least that long. Default: nothing to learn."""
        return None


@attrs.frozen
class PendingRequests(Load):
    """Load is the number of calls in flight on the endpoint."""

    def cost(self, endpoint: Endpoint[Any, Any, Any], now: float) -> float:
        return float(endpoint.pending)


@attrs.frozen
class PeakEwma(Load):
    """Load is a peak-sensitive, time-decayed RTT estimate times ``pending + 1``.

    Attributes:
        default_rtt: The estimate a new endpoint has until its first sample, seconds.
            Default 0.03: a same-region round trip, so new endpoints are neither shunned nor
            flooded.
        decay: Time constant of the average and of the fading, seconds. Default 10: an
            endpoint's estimate follows its recent behaviour over about ten seconds.
        failure_rtt: The estimate a failed call leaves at least, seconds (a peak, fading
            like any other). Default 1.0. A call that fails fast (a refused connect) is no
            sign of speed: without this, an endpoint that fails at once would look the
            lightest and draw every request until its circuit breaker opened.
    """

    default_rtt: float = attrs.field(default=0.03, validator=positive)
    decay: float = attrs.field(default=10.0, validator=positive)
    failure_rtt: float = attrs.field(default=1.0, validator=positive)

    def initial_rtt(self) -> float:
        return self.default_rtt

    def estimate(self, endpoint: Endpoint[Any, Any, Any], now: float) -> float:
        """The endpoint's RTT estimate at ``now``, faded since its last sample."""
        return endpoint.rtt * math.exp(-max(0.0, now - endpoint.stamp) / self.decay)

    def cost(self, endpoint: Endpoint[Any, Any, Any], now: float) -> float:
        return self.estimate(endpoint, now) * (endpoint.pending + 1)

    def observe(self, endpoint: Endpoint[Any, Any, Any], rtt: float, now: float) -> None:
        if endpoint.samples == 1:
            endpoint.rtt = rtt  # the first measurement replaces the default, a mere guess
        else:
            kept = math.exp(-max(0.0, now - endpoint.stamp) / self.decay)
            current = endpoint.rtt * kept
            endpoint.rtt = rtt if rtt > current else current + (rtt - current) * (1.0 - kept)
        endpoint.stamp = now

    def observe_failure(self, endpoint: Endpoint[Any, Any, Any], now: float) -> None:
        endpoint.rtt = max(self.estimate(endpoint, now), self.failure_rtt)
        endpoint.stamp = now

    def observe_cancelled(self, endpoint: Endpoint[Any, Any, Any], rtt: float, now: float) -> None:
        # a lower bound of the real RTT: a peak if it is above the estimate, else nothing
        estimate = self.estimate(endpoint, now)
        if rtt > estimate:
            endpoint.rtt = rtt
            endpoint.stamp = now


@attrs.frozen
class EndpointStatistics:
    """One endpoint at one moment.

    Attributes:
        key: The endpoint's key.
        pending: Calls in flight.
        load: Its load by the balancer's measure.
        ready: Whether it is ready now.
    """

    key: Any
    pending: int
    load: float
    ready: bool


@attrs.frozen
class BalanceStatistics:
    """A balancer at one moment.

    Attributes:
        endpoints: Each endpoint's figures.
    """

    endpoints: tuple[EndpointStatistics, ...]


def _default_rng() -> random.Random:
    # Seeded from the global generator, so random.seed(n) (which the simulator calls) makes
    # a whole program's draws repeatable; unseeded, it is as random as random.Random().
    return random.Random(random.getrandbits(64))


@attrs.define(eq=False, init=False)
class Balance(Service[Req, Resp], Generic[K, Req, Resp]):
    """Send each request to the less loaded of two random ready endpoints.

    Args:
        load: The load measure. Default ``PeakEwma()``.
        rng: Source of the random draws; pass a seeded ``random.Random`` for repeatable tests.

    Cancellation:
        A caller cancelled while waiting for an endpoint has reserved nothing; one cancelled
        during the call releases the endpoint's reservation and records no sample.
    """

    load: Load
    rng: random.Random
    _endpoints: list[Endpoint[K, Req, Resp]]
    _positions: dict[K, int]
    _changed: trio.Event
    _wakeups: dict[trio.CancelScope, None]  # ordered: waiters wake in one order

    def __init__(self, *, load: Load | None = None, rng: random.Random | None = None) -> None:
        self.load = load if load is not None else PeakEwma()
        self.rng = rng if rng is not None else _default_rng()
        self._endpoints = []
        self._positions = {}
        self._changed = trio.Event()
        self._wakeups = {}

    # -- the endpoint set -----------------------------------------------------------------

    def insert(self, key: K, service: Service[Req, Resp]) -> None:
        """Add an endpoint, or replace the service under ``key`` (its calls in flight finish).

        Args:
            key: Identifies the endpoint.
            service: The service that reaches it.
        """
        endpoint = Endpoint(key, service, self.load.initial_rtt(), _now())
        position = self._positions.get(key)
        if position is None:
            self._positions[key] = len(self._endpoints)
            self._endpoints.append(endpoint)
        else:
            self._endpoints[position] = endpoint
        self._set_changed()

    def remove(self, key: K) -> None:
        """Stop sending new requests to ``key``; calls in flight on it finish normally.

        Removing a key that is not there does nothing.
        """
        position = self._positions.pop(key, None)
        if position is None:
            return
        last = self._endpoints.pop()
        if position < len(self._endpoints):
            self._endpoints[position] = last
            self._positions[last.key] = position
        self._set_changed()

    def apply(self, change: Change[K, Service[Req, Resp]]) -> None:
        """Apply one change from a Discover."""
        if isinstance(change, Insert):
            self.insert(change.key, change.service)
        else:
            self.remove(change.key)

    def keys(self) -> list[K]:
        """The keys of the current endpoints."""
        return [endpoint.key for endpoint in self._endpoints]

    def __len__(self) -> int:
        return len(self._endpoints)

    def __contains__(self, key: object) -> bool:
        return key in self._positions

    def _set_changed(self) -> None:
        self._changed.set()
        self._changed = trio.Event()
        for scope in self._wakeups:
            scope.cancel()
        self._wakeups.clear()

    async def serve_discovery(
        self,
        discover: Discover[K, Service[Req, Resp]],
        *,
        task_status: Any = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Apply every change ``discover`` produces, until it ends.

        Start it with ``await nursery.start(balance.serve_discovery, discover)``; it reports
        started at once, and calls made before the first endpoint arrives wait for it.

        Cancellation:
            Cancelling it stops discovery; the endpoints already known stay.
        """
        task_status.started()
        async for change in discover:
            self.apply(change)

    # -- choosing -------------------------------------------------------------------------

    def _lighter(
        self, a: Endpoint[K, Req, Resp], b: Endpoint[K, Req, Resp]
    ) -> Endpoint[K, Req, Resp]:
        now = _now()
        cost = self.load.cost
        return a if cost(a, now) <= cost(b, now) else b

    def _two(self, endpoints: list[Endpoint[K, Req, Resp]]) -> Endpoint[K, Req, Resp]:
        count = len(endpoints)
        if count == 1:
            return endpoints[0]
        first = self.rng.randrange(count)
        second = self.rng.randrange(count - 1)
        if second >= first:
            second += 1
        return self._lighter(endpoints[first], endpoints[second])

    def _pick_ready(self) -> Endpoint[K, Req, Resp] | None:
        endpoints = self._endpoints
        count = len(endpoints)
        if count < 2:
            if count and endpoints[0].service.is_ready():
                return endpoints[0]
            return None
        rng = self.rng
        first = rng.randrange(count)
        second = rng.randrange(count - 1)
        if second >= first:
            second += 1
        a, b = endpoints[first], endpoints[second]
        a_ready, b_ready = a.service.is_ready(), b.service.is_ready()
        if a_ready and b_ready:
            return self._lighter(a, b)
        if a_ready or b_ready:
            return a if a_ready else b
        ready = [endpoint for endpoint in endpoints if endpoint.service.is_ready()]
        return self._two(ready) if ready else None

    # -- calling --------------------------------------------------------------------------

    async def __call__(self, request: Req) -> Resp:
        """Send the request to the less loaded of two ready endpoints, waiting if none is.

        Raises:
            Exception: whatever the chosen endpoint raised.
        """
        endpoint = self._pick_ready()
        if endpoint is not None:
            entered = False
            try:
                with endpoint.service.ready_nowait() as call:
                    entered = True
                    return await self._send(endpoint, call, request)
            except trio.WouldBlock:
                if entered:
                    raise
        async with self._reserve() as (endpoint, call):
            return await self._send(endpoint, call, request)

    async def _send(
        self, endpoint: Endpoint[K, Req, Resp], call: Call[Req, Resp], request: Req
    ) -> Resp:
        endpoint.pending += 1
        start = _now()
        try:
            response = await call(request)
        except Exception:
            self.load.observe_failure(endpoint, _now())
            raise
        except trio.Cancelled:  # a per-try timeout above: the endpoint was that slow at least
            now = _now()
            self.load.observe_cancelled(endpoint, now - start, now)
            raise
        finally:
            endpoint.pending -= 1
        now = _now()
        endpoint.samples += 1
        self.load.observe(endpoint, now - start, now)
        return response

    @asynccontextmanager
    async def _reserve(self) -> AsyncIterator[tuple[Endpoint[K, Req, Resp], Call[Req, Resp]]]:
        # Every reservation is entered and left inside this generator's own blocks, and the
        # caller's block runs at the yield, inside them: an endpoint's ready() may open cancel
        # scopes (a Timeout does), and those must close before any scope opened around them.
        if not try_consume_budget():
            await trio.lowlevel.checkpoint()
        while True:
            endpoint = self._pick_ready()
            if endpoint is not None:
                entered = False
                try:
                    with endpoint.service.ready_nowait() as call:
                        entered = True
                        yield endpoint, call
                        return
                except trio.WouldBlock:
                    if entered:
                        raise
                    # is_ready() was optimistic; wait below
            if not self._endpoints:
                await self._changed.wait()
                continue
            endpoint = self._two(self._endpoints)
            with trio.CancelScope() as wakeup:  # cancelled by a change to the endpoint set
                self._wakeups[wakeup] = None
                try:
                    async with endpoint.service.ready() as call:
                        self._wakeups.pop(wakeup, None)  # from here on, nothing cancels it
                        if not wakeup.cancel_called:
                            yield endpoint, call
                            return
                        # the set changed as the reservation came in: give it back, choose again
                finally:
                    self._wakeups.pop(wakeup, None)

    @asynccontextmanager
    async def _ready(self) -> AsyncIterator[Call[Req, Resp]]:
        async with self._reserve() as (endpoint, call):
            yield lambda request: self._send(endpoint, call, request)

    def _pick_avoiding(self, avoid: Container[K]) -> Endpoint[K, Req, Resp] | None:
        others = [e for e in self._endpoints if e.key not in avoid and e.service.is_ready()]
        return self._two(others) if others else self._pick_ready()

    def ready(self) -> AbstractAsyncContextManager[Call[Req, Resp]]:
        """Choose an endpoint and reserve it, waiting until one is ready.

        Cancellation:
            Cancelled while waiting, nothing is reserved.
        """
        return self._ready()

    def ready_nowait(self, avoid: Container[K] = ()) -> AbstractContextManager[Call[Req, Resp]]:
        """Choose a ready endpoint and reserve it.

        Args:
            avoid: Keys to choose only if no other endpoint is ready: a retry passes the
                endpoints its request already failed on, so that it goes elsewhere while
                elsewhere is there (Envoy's ``previous_hosts`` predicate).

        Raises:
            trio.WouldBlock: (on entry) no endpoint is ready.
        """
        return _NowaitReservation(self, avoid)

    def is_ready(self) -> bool:
        return any(endpoint.service.is_ready() for endpoint in self._endpoints)

    def statistics(self) -> BalanceStatistics:
        """Pending calls, load and readiness per endpoint."""
        now = _now()
        return BalanceStatistics(
            endpoints=tuple(
                EndpointStatistics(
                    key=endpoint.key,
                    pending=endpoint.pending,
                    load=self.load.cost(endpoint, now),
                    ready=endpoint.service.is_ready(),
                )
                for endpoint in self._endpoints
            )
        )


class _NowaitReservation(Generic[K, Req, Resp]):
    """``Balance.ready_nowait()``: chooses and reserves on entry, releases on exit (a class,
    not a generator context manager: it runs once per try on the proxy's request path)."""

    __slots__ = ("_avoid", "_balance", "_inner")

    def __init__(self, balance: Balance[K, Req, Resp], avoid: Container[K]) -> None:
        self._balance = balance
        self._avoid = avoid
        self._inner: AbstractContextManager[Call[Req, Resp]] | None = None

    def __enter__(self) -> Call[Req, Resp]:
        balance, avoid = self._balance, self._avoid
        endpoint = balance._pick_avoiding(avoid) if avoid else balance._pick_ready()
        if endpoint is None:
            raise trio.WouldBlock
        inner = endpoint.service.ready_nowait()
        call = inner.__enter__()
        self._inner = inner
        return lambda request: balance._send(endpoint, call, request)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        assert self._inner is not None, "exited without entering"
        return self._inner.__exit__(exc_type, exc, tb)


@asynccontextmanager
async def open_balance(
    discover: Discover[K, Service[Req, Resp]],
    *,
    load: Load | None = None,
    rng: random.Random | None = None,
) -> AsyncIterator[Balance[K, Req, Resp]]:
    """A Balance fed by ``discover`` for the length of the ``async with`` block.

    Args:
        discover: Where endpoints come from.
        load: The load measure. Default ``PeakEwma()``.
        rng: Source of the random draws.

    Yields:
        The balancer. Calls made before the first endpoint arrives wait for it.

    Cancellation:
        Leaving the block stops discovery.
    """
    balance: Balance[K, Req, Resp] = Balance(load=load, rng=rng)
    async with running(balance.serve_discovery, discover):
        yield balance
