"""CircuitBreaker: Linkerd's failure accrual. Stop calling a service that keeps failing.

Everything that affects the breaker's state lives in :data:`TRANSITIONS`, one table of
``state -> {event: next state}``; :meth:`CircuitBreaker._fire` is the only code that changes
the state, and it does so by looking the event up. Printed, the table is the diagram::

    CLOSED    --TRIP--------------> OPEN        (the accrual policy saw too many failures)
    OPEN      --PENALTY_OVER------> HALF_OPEN   (checked lazily, when someone asks)
    HALF_OPEN --PROBE-------------> PROBING     (one call is let through)
    PROBING   --PROBE_OK----------> CLOSED
    PROBING   --PROBE_FAILED------> OPEN        (with a longer penalty)
    PROBING   --PROBE_ABANDONED---> HALF_OPEN   (the probe was cancelled: another may go)

Ordinary ``SUCCESS`` and ``FAILURE`` events are fed to the accrual policy in ``CLOSED``, and
ignored elsewhere (they are late answers to calls made before the circuit opened; only the
probe decides whether it closes).

**Accrual.** When to trip is a policy: :class:`ConsecutiveFailures` (N in a row, Linkerd's
default) or :class:`FailureRate` (a failure fraction over a sliding window).

**Penalty.** Each time the circuit opens, it stays open for a penalty that doubles from
``min_penalty`` up to ``max_penalty``, plus jitter (up to ``jitter`` times the base, still
capped at ``max_penalty``), so a fleet of clients does not probe in lockstep. A successful probe
resets the penalty to ``min_penalty``.

**Open means fast.** While open, calls raise :class:`CircuitOpen` without touching the inner
service, and ``is_ready()`` is False, so a balancer skips the endpoint.
"""

from __future__ import annotations

import enum
import random
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import (
    AbstractAsyncContextManager,
    AbstractContextManager,
    asynccontextmanager,
    contextmanager,
)
from types import TracebackType
from typing import Any, Generic, Protocol, TypeVar

import attrs
import outcome
import trio

from ._service import Call, Service
from ._validate import at_least_one, non_negative, positive
from ._window import WindowCounter

Req = TypeVar("Req")
Resp = TypeVar("Resp")

__all__ = [
    "Accrual",
    "CircuitBreaker",
    "CircuitBreakerLayer",
    "CircuitOpen",
    "CircuitState",
    "ConsecutiveFailures",
    "Event",
    "FailureRate",
    "TRANSITIONS",
]


class CircuitState(enum.Enum):
    """Where a circuit breaker is."""

    CLOSED = "closed"
    """Calls go through; outcomes feed the accrual policy."""
    OPEN = "open"
    """Calls are refused until the penalty runs out."""
    HALF_OPEN = "half-open"
    """The penalty ran out; the next call is the probe."""
    PROBING = "probing"
    """The probe is in flight; other calls are refused."""


class Event(enum.Enum):
    """What can happen to a circuit breaker."""

    SUCCESS = "success"
    FAILURE = "failure"
    TRIP = "trip"
    PENALTY_OVER = "penalty over"
    PROBE = "probe"
    PROBE_OK = "probe ok"
    PROBE_FAILED = "probe failed"
    PROBE_ABANDONED = "probe abandoned"


_C, _O, _H, _P = (
    CircuitState.CLOSED,
    CircuitState.OPEN,
    CircuitState.HALF_OPEN,
    CircuitState.PROBING,
)

TRANSITIONS: dict[CircuitState, dict[Event, CircuitState]] = {
    _C: {Event.SUCCESS: _C, Event.FAILURE: _C, Event.TRIP: _O},
    _O: {Event.SUCCESS: _O, Event.FAILURE: _O, Event.PENALTY_OVER: _H},
    _H: {Event.SUCCESS: _H, Event.FAILURE: _H, Event.PROBE: _P},
    _P: {
        Event.SUCCESS: _P,
        Event.FAILURE: _P,
        Event.PROBE_OK: _C,
        Event.PROBE_FAILED: _O,
        Event.PROBE_ABANDONED: _H,
    },
}
"""Every legal ``(state, event)`` and the state it leads to. Anything else is a bug."""


class CircuitOpen(Exception):
    """The circuit is open: the call was refused without reaching the service.

    Attributes:
        retry_after: Seconds until a probe will be allowed (0 if one is in flight now).
    """

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Accrual(Protocol):
    """Decides from outcomes when a closed circuit should open."""

    def record(self, failed: bool, now: float) -> bool:
        """Count one outcome at time ``now``; return True if the circuit should open."""
        ...

    def reset(self) -> None:
        """Forget everything (the circuit just closed or opened)."""
        ...


@attrs.define
class ConsecutiveFailures:
    """Open after ``failures`` failures in a row; any success resets the count.

    Attributes:
        failures: Failures in a row that open the circuit. Default 7, Linkerd's.
    """

    failures: int = attrs.field(default=7, validator=at_least_one)
    _run: int = attrs.field(default=0, init=False)

    def record(self, failed: bool, now: float) -> bool:
        self._run = self._run + 1 if failed else 0
        return self._run >= self.failures

    def reset(self) -> None:
        self._run = 0


_OK, _FAILED = 0, 1


@attrs.define
class FailureRate:
    """Open when at least ``rate`` of the calls in the last ``window`` seconds failed.

    Attributes:
        rate: Failure fraction that opens the circuit, in (0, 1]. Default 0.5.
        window: Seconds of history. Default 30.
        min_requests: Calls needed in the window before the rate counts, so two failures out
            of three at startup do not open it. Default 10.
    """

    rate: float = attrs.field(
        default=0.5, validator=attrs.validators.and_(positive, attrs.validators.le(1))
    )
    window: float = attrs.field(default=30.0, validator=positive)
    min_requests: int = attrs.field(default=10, validator=at_least_one)
    _counts: WindowCounter = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self._counts = WindowCounter(self.window, kinds=2)

    def record(self, failed: bool, now: float) -> bool:
        self._counts.add(_FAILED if failed else _OK, now)
        failures = self._counts.total(_FAILED, now)
        total = failures + self._counts.total(_OK, now)
        return total >= self.min_requests and failures >= self.rate * total

    def reset(self) -> None:
        self._counts.clear()


def _check_penalties(min_penalty: float, max_penalty: float) -> None:
    if min_penalty > max_penalty:
        raise ValueError(
            f"min_penalty ({min_penalty!r}) must be <= max_penalty ({max_penalty!r}): the "
            "penalty grows from the first to the second"
        )


def _default_rng() -> random.Random:
    # Seeded from the global generator, so random.seed(n) (which the simulator calls) makes
    # a whole program's draws repeatable; unseeded, it is as random as random.Random().
    return random.Random(random.getrandbits(64))


def _is_error(result: outcome.Outcome[Any]) -> bool:
    return isinstance(result, outcome.Error)


@attrs.define(eq=False)
class CircuitBreaker(Service[Req, Resp]):
    """Refuse calls for a while after the inner service keeps failing; probe once to recover.

    Attributes:
        inner: The wrapped service.
        accrual: When to open. Default ``ConsecutiveFailures(7)``.
        min_penalty: First open period, seconds. Default 1.
        max_penalty: Longest open period, seconds. Default 60.
        jitter: Extra random penalty, as a fraction of the base. Default 0.5.
        is_failure: Classifies an outcome (``outcome.Value`` or ``outcome.Error``) as a
            failure. Default: exceptions are failures, responses are not. Cancellation is
            never an outcome.
        rng: Source of jitter; seed it for repeatable tests.

    Cancellation:
        A cancelled call records nothing. A cancelled probe gives the probe back: the next
        call may probe.
    """

    inner: Service[Req, Resp]
    accrual: Accrual = attrs.field(factory=ConsecutiveFailures)
    min_penalty: float = attrs.field(default=1.0, validator=positive)
    max_penalty: float = attrs.field(default=60.0, validator=positive)
    jitter: float = attrs.field(default=0.5, validator=non_negative)
    is_failure: Callable[[outcome.Outcome[Resp]], bool] = _is_error
    rng: random.Random = attrs.field(factory=_default_rng)
    _state: CircuitState = attrs.field(default=CircuitState.CLOSED, init=False)
    _opened: int = attrs.field(default=0, init=False)
    _open_until: float = attrs.field(default=0.0, init=False)
    _penalty: float = attrs.field(default=0.0, init=False)

    def __attrs_post_init__(self) -> None:
        _check_penalties(self.min_penalty, self.max_penalty)

    # -- the state machine --------------------------------------------------------------

    @property
    def state(self) -> CircuitState:
        """The current state (an expired penalty shows as HALF_OPEN)."""
        self._check_penalty()
        return self._state

    @property
    def penalty(self) -> float:
        """The length of the last (or current) open period, seconds; 0 before the first."""
        return self._penalty

    def _fire(self, event: Event) -> None:
        try:
            new = TRANSITIONS[self._state][event]
        except KeyError:
            raise RuntimeError(
                f"circuit breaker bug: event {event.name} is not legal in state {self._state.name}"
            ) from None
        old, self._state = self._state, new
        if new is _O and old is not _O:
            self._open()
        elif new is _C and old is not _C:
            self._opened = 0
            self.accrual.reset()

    def _open(self) -> None:
        base = min(self.max_penalty, self.min_penalty * 2.0**self._opened)
        penalty = min(self.max_penalty, base + self.rng.uniform(0.0, self.jitter * base))
        self._opened += 1
        self._penalty = penalty
        self._open_until = trio.current_time() + penalty
        self.accrual.reset()

    def _check_penalty(self) -> None:
        if self._state is _O and trio.current_time() >= self._open_until:
            self._fire(Event.PENALTY_OVER)

    def _record(self, result: outcome.Outcome[Resp], probe: bool) -> None:
        failed = self.is_failure(result)
        if probe:
            self._fire(Event.PROBE_FAILED if failed else Event.PROBE_OK)
            return
        self._fire(Event.FAILURE if failed else Event.SUCCESS)
        if self._state is _C and self.accrual.record(failed, trio.current_time()):
            self._fire(Event.TRIP)

    # -- admission ------------------------------------------------------------------------

    def _admit(self) -> bool:
        """Let a call in (returning whether it is the probe) or raise CircuitOpen."""
        self._check_penalty()
        state = self._state
        if state is _C:
            return False
        if state is _H:
            self._fire(Event.PROBE)
            return True
        retry_after = max(0.0, self._open_until - trio.current_time()) if state is _O else 0.0
        raise CircuitOpen(
            "circuit open after repeated failures: the call was refused without reaching the "
            f"service. A probe is allowed in {retry_after:.3g} s; until then send the request "
            "elsewhere or fail it",
            retry_after=retry_after,
        )

    async def __call__(self, request: Req) -> Resp:
        """Call the inner service unless the circuit is open.

        Raises:
            CircuitOpen: the circuit is open, or half-open with the probe in flight.
        """
        return await self._call(self.inner, request, self._admit())

    async def _call(self, call: Call[Req, Resp], request: Req, probe: bool) -> Resp:
        try:
            response = await call(request)
        except Exception as exc:
            self._record(outcome.Error(exc), probe)
            raise
        except BaseException:
            if probe:
                self._fire(Event.PROBE_ABANDONED)
            raise
        self._record(outcome.Value(response), probe)
        return response

    @asynccontextmanager
    async def _ready(self) -> AsyncIterator[Call[Req, Resp]]:
        await trio.lowlevel.checkpoint()
        with self._admitted() as probe:
            async with self.inner.ready() as call:
                yield self._bind(call, probe)

    @contextmanager
    def _admitted(self) -> Iterator[list[bool]]:
        """Admission for a reservation; a probe reservation left unused is given back."""
        probe = [self._admit()]
        try:
            yield probe
        finally:
            if probe[0]:
                self._fire(Event.PROBE_ABANDONED)

    def _bind(self, call: Call[Req, Resp], probe: list[bool]) -> Call[Req, Resp]:
        async def reserved(request: Req) -> Resp:
            is_probe, probe[0] = probe[0], False  # the probe is used up by this call
            return await self._call(call, request, is_probe)

        return reserved

    def ready(self) -> AbstractAsyncContextManager[Call[Req, Resp]]:
        """Be admitted (as the probe, if it is time for one) and reserve the inner service.

        Raises:
            CircuitOpen: (on entry) the circuit is open.
        """
        return self._ready()

    def ready_nowait(self) -> AbstractContextManager[Call[Req, Resp]]:
        """Be admitted and reserve the inner service without waiting.

        Raises:
            trio.WouldBlock: (on entry) the circuit is open or the inner service is not ready.
        """
        return _NowaitAdmission(self)

    def is_ready(self) -> bool:
        self._check_penalty()
        return self._state in (_C, _H) and self.inner.is_ready()


class _NowaitAdmission(Generic[Req, Resp]):
    """``CircuitBreaker.ready_nowait()``: admission and the inner reservation on entry; a
    probe admission left unused is given back on exit (a class, not a generator context
    manager: it runs once per try on the proxy's request path)."""

    __slots__ = ("_breaker", "_inner", "_probe")

    def __init__(self, breaker: CircuitBreaker[Req, Resp]) -> None:
        self._breaker = breaker
        self._inner: AbstractContextManager[Call[Req, Resp]] | None = None
        self._probe = [False]

    def __enter__(self) -> Call[Req, Resp]:
        breaker = self._breaker
        if not breaker.is_ready():
            raise trio.WouldBlock
        probe = self._probe = [breaker._admit()]
        inner = breaker.inner.ready_nowait()
        try:
            call = inner.__enter__()
        except BaseException:
            self._give_back()
            raise
        self._inner = inner
        return breaker._bind(call, probe)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        assert self._inner is not None, "exited without entering"
        try:
            return self._inner.__exit__(exc_type, exc, tb)
        finally:
            self._give_back()

    def _give_back(self) -> None:
        if self._probe[0]:
            self._breaker._fire(Event.PROBE_ABANDONED)


@attrs.frozen
class CircuitBreakerLayer:
    """Wraps each service in its own :class:`CircuitBreaker`.

    Attributes:
        failures: Consecutive failures that open a circuit (ignored if ``accrual`` is given).
        accrual: Makes a fresh accrual policy per service, e.g. ``lambda: FailureRate(0.5)``.
        min_penalty: First open period, seconds.
        max_penalty: Longest open period, seconds.
        jitter: Extra random penalty, as a fraction of the base.
        rng: Source of jitter, shared by the wrapped services.
    """

    failures: int = attrs.field(default=7, validator=at_least_one)
    accrual: Callable[[], Accrual] | None = None
    min_penalty: float = attrs.field(default=1.0, validator=positive)
    max_penalty: float = attrs.field(default=60.0, validator=positive)
    jitter: float = attrs.field(default=0.5, validator=non_negative)
    rng: random.Random = attrs.field(factory=_default_rng)

    def __attrs_post_init__(self) -> None:
        _check_penalties(self.min_penalty, self.max_penalty)

    def layer(self, inner: Service[Req, Resp]) -> CircuitBreaker[Req, Resp]:
        if self.accrual is not None:
            accrual = self.accrual()
        else:
            accrual = ConsecutiveFailures(self.failures)
        return CircuitBreaker(
            inner,
            accrual=accrual,
            min_penalty=self.min_penalty,
            max_penalty=self.max_penalty,
            jitter=self.jitter,
            rng=self.rng,
        )
