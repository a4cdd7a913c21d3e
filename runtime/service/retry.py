"""Retry: a Policy decides, Backoff spaces the attempts, a Budget stops retry storms.

The three questions a retry asks are kept apart:

* *Should this outcome be retried?* The :class:`Policy` looks at the request and the outcome
  (a response or an exception) and says yes or no. It also clones the request, because an
  attempt may consume it (a body stream, a mutable object); a policy that returns ``None``
  from ``clone_request`` makes that request non-retryable.
* *When?* :class:`Backoff`: exponential, with full jitter (each delay is uniform between 0 and
  the exponential ceiling), so clients that failed together do not retry together.
* *Can we afford it?* :class:`Budget`: retries may be at most a fraction of recent requests,
  plus a small floor per second (Linkerd's defaults: 20% + 10/s over 10 s). When a service
  fails for everyone, retries add at most that fraction to its load instead of multiplying it.

Budget accounting and cancellation: every request deposits once when it starts; a retry
withdraws only just before its attempt is sent, after the backoff sleep. A caller cancelled
during the backoff has withdrawn nothing, so cancellation never spends the budget.
"""

from __future__ import annotations

import random
from collections.abc import Coroutine, Iterable
from typing import Any, Generic, Protocol, TypeVar

import attrs
import outcome
import trio

from runtime.time import sleep

from ._service import Call, Middleware, Service
from ._validate import at_least_one, non_negative, positive
from ._window import WindowCounter
from .load_shed import Overloaded

Req = TypeVar("Req")
Resp = TypeVar("Resp")
Req_contra = TypeVar("Req_contra", contravariant=True)
Resp_contra = TypeVar("Resp_contra", contravariant=True)

__all__ = [
    "Backoff",
    "Budget",
    "BudgetExhausted",
    "BudgetStatistics",
    "Policy",
    "Retry",
    "RetryLayer",
    "RetryOn",
    "TRANSIENT_ERRORS",
]

_DEPOSITS = 0
_WITHDRAWALS = 1


class BudgetExhausted(Exception):
    """A failed request was not retried because the retry budget is spent.

    The failure that would have been retried is the ``__cause__``.
    """


class Policy(Protocol[Req, Resp_contra]):
    """Decides, per outcome, whether to retry, and clones requests for the next attempt."""

    def retry(self, request: Req, result: outcome.Outcome[Resp_contra], attempt: int) -> bool:
        """Whether to try again after ``attempt`` attempts ended with ``result``.

        Args:
            request: The request as the caller sent it.
            result: ``outcome.Value(response)`` or ``outcome.Error(exception)``.
            attempt: Attempts made so far, counting the first (so 1 after the first).

        Returns:
            True to retry (the budget and backoff still apply).
        """
        ...

    def clone_request(self, request: Req) -> Req | None:
        """A copy of ``request`` for a later attempt, or None if it cannot be retried.

        Called once before the first attempt and once before each retry.
        """
        ...


TRANSIENT_ERRORS: tuple[type[Exception], ...] = (
    OSError,
    TimeoutError,
    trio.BrokenResourceError,
    Overloaded,
)
"""Errors that usually mean "the world hiccuped", for ``RetryOn(TRANSIENT_ERRORS)``.

``OSError`` (connection refused or reset, unreachable: ``ConnectionError`` is one),
``TimeoutError`` (:class:`~runtime.service.Elapsed` is one), ``trio.BrokenResourceError`` (the
peer went away mid-stream) and :class:`~runtime.service.Overloaded` (shed without being sent).
Bugs such as ``TypeError`` or ``KeyError`` are not here: another attempt fails the same way.
Whether a request that may have reached the service is safe to send again is still yours to
decide.
"""


def _exception_types(
    value: type[Exception] | Iterable[type[Exception]],
) -> tuple[type[Exception], ...]:
    return (value,) if isinstance(value, type) else tuple(value)


def _check_exception_types(
    instance: object, attribute: attrs.Attribute[tuple[type[Exception], ...]], value: object
) -> None:
    assert isinstance(value, tuple)
    if not value:
        raise ValueError(
            "RetryOn needs at least one exception type to retry, e.g. "
            "RetryOn((ConnectionError, Elapsed)) or RetryOn(TRANSIENT_ERRORS)"
        )
    bad = [t for t in value if not (isinstance(t, type) and issubclass(t, Exception))]
    if bad:
        raise TypeError(
            f"RetryOn retries Exception subclasses only, got {bad!r}; cancellation and "
            "KeyboardInterrupt are never retried"
        )


@attrs.frozen
class RetryOn(Generic[Req, Resp]):
    """A ready-made Policy: retry exceptions of the given types, up to ``attempts`` in all.

    ``RetryOn(ConnectionError)``, ``RetryOn((ConnectionError, Elapsed), attempts=2)``, or
    ``RetryOn(TRANSIENT_ERRORS)``. There is no default: "retry every Exception" would send a
    request again after a ``TypeError`` or a ``KeyError`` in your own code, which fails the
    same way each time and multiplies the load for nothing, so the types worth retrying are
    always named.

    Responses are never retried. Requests are reused as they are (``clone_request`` returns the
    request itself), which suits immutable requests; subclass and override ``clone_request``
    for requests an attempt can consume.

    Attributes:
        exceptions: Exception types worth retrying: one type or several (stored as a tuple).
        attempts: Total attempts, the first included. Default 3: two retries catch most
            transient faults; more mostly add load to a service that is down.

    Raises:
        ValueError: no exception type was given, or ``attempts`` is below 1.
        TypeError: something in ``exceptions`` is not an ``Exception`` subclass.
    """

    exceptions: tuple[type[Exception], ...] = attrs.field(
        converter=_exception_types, validator=_check_exception_types
    )
    attempts: int = attrs.field(default=3, validator=at_least_one)

    def retry(self, request: Req, result: outcome.Outcome[Resp], attempt: int) -> bool:
        return (
            attempt < self.attempts
            and isinstance(result, outcome.Error)
            and isinstance(result.error, self.exceptions)
        )

    def clone_request(self, request: Req) -> Req | None:
        return request


@attrs.frozen
class Backoff:
    """Exponential backoff with full jitter.

    Before retry number ``n`` (1 for the first retry) the delay is uniform in
    ``[0, min(maximum, initial * multiplier ** (n - 1))]``.

    Attributes:
        initial: Ceiling of the first delay, seconds. Default 0.05: long enough for a transient
            fault (a restarting peer, a full queue) to clear, short next to most timeouts.
        maximum: Largest ceiling, seconds. Default 5.0: past that the caller's own deadline
            has usually fired.
        multiplier: Growth of the ceiling per retry. Default 2.
    """

    initial: float = attrs.field(default=0.05, validator=non_negative)
    maximum: float = attrs.field(default=5.0, validator=non_negative)
    multiplier: float = attrs.field(default=2.0, validator=positive)

    def ceiling(self, retry: int) -> float:
        """The largest delay before retry number ``retry`` (1-based)."""
        return min(self.maximum, self.initial * self.multiplier ** (retry - 1))

    def delay(self, retry: int, rng: random.Random) -> float:
        """A jittered delay before retry number ``retry`` (1-based)."""
        return rng.uniform(0.0, self.ceiling(retry))


@attrs.frozen
class BudgetStatistics:
    """A Budget's window at one moment.

    Attributes:
        deposits: Requests counted in the window.
        withdrawals: Retries counted in the window.
        balance: Retries that could still be made now (may be fractional).
    """

    deposits: int
    withdrawals: int
    balance: float


@attrs.define(eq=False)
class Budget:
    """How many retries are affordable: a fraction of recent requests plus a floor per second.

    Over any window of ``ttl`` seconds, retries are allowed while::

        retries < min_per_second * ttl + retry_percent * requests

    so N requests to a service that always fails make at most
    ``N * (1 + retry_percent) + min_per_second * ttl`` attempts. One Budget may be shared by
    several Retry middlewares (pass the same instance) to cap them together.

    Attributes:
        ttl: Window length in seconds. Default 10.
        min_per_second: Retries allowed per second regardless of traffic, so a quiet client
            can still retry. Default 10.
        retry_percent: Retries allowed as a fraction of requests. Default 0.2.
    """

    ttl: float = attrs.field(default=10.0, validator=positive)
    min_per_second: float = attrs.field(default=10.0, validator=non_negative)
    retry_percent: float = attrs.field(default=0.2, validator=non_negative)
    _window: WindowCounter = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self._window = WindowCounter(self.ttl, kinds=2)

    def deposit(self) -> None:
        """Count one request (Retry does this once per call)."""
        self._window.add(_DEPOSITS, trio.current_time())

    def balance(self) -> float:
        """Retries that could be made now."""
        now = trio.current_time()
        window = self._window
        return (
            self.min_per_second * self.ttl
            + self.retry_percent * window.total(_DEPOSITS, now)
            - window.total(_WITHDRAWALS, now)
        )

    def can_withdraw(self) -> bool:
        """Whether one retry is affordable now. Spends nothing."""
        return self.balance() >= 1.0

    def try_withdraw(self) -> bool:
        """Spend one retry if it is affordable.

        Returns:
            True if the retry was counted; False if the budget is spent.
        """
        if self.balance() < 1.0:
            return False
        self._window.add(_WITHDRAWALS, trio.current_time())
        return True

    def statistics(self) -> BudgetStatistics:
        """Deposits, withdrawals and balance in the current window."""
        now = trio.current_time()
        return BudgetStatistics(
            deposits=self._window.total(_DEPOSITS, now),
            withdrawals=self._window.total(_WITHDRAWALS, now),
            balance=self.balance(),
        )


def _default_rng() -> random.Random:
    # Seeded from the global generator: random.seed(n) (the simulator's) makes it repeatable.
    return random.Random(random.getrandbits(64))


@attrs.define(eq=False)
class Retry(Middleware[Req, Resp, Req, Resp]):
    """Call the inner service again when the policy says an outcome deserves it.

    Attributes:
        inner: The wrapped service.
        policy: Decides what to retry and clones requests.
        backoff: Delays between attempts; None retries at once.
        budget: Caps retries; None allows as many as the policy wants (not recommended: that
            is how retry storms start).
        rng: Source of jitter; pass a seeded ``random.Random`` for repeatable tests.

    Under a reservation (``ready()``, ``ready_nowait()``, or LoadShed or Balance above), every
    attempt goes through the reserved call: retries reuse what the reservation holds (a
    concurrency permit is held through the backoff too) rather than waiting for a second
    permit beside it, which could never come under a limit of one. The plain call retries
    through the inner service, which waits for readiness again for each attempt.

    Cancellation:
        A cancelled caller stops at once, in an attempt or in a backoff sleep. The attempt in
        progress is cancelled (and releases what it reserved); a retry is only withdrawn from
        the budget when its attempt starts, so a cancelled backoff costs nothing.
    """

    inner: Service[Req, Resp]
    policy: Policy[Req, Resp]
    backoff: Backoff | None = attrs.field(factory=Backoff)
    budget: Budget | None = attrs.field(factory=Budget)
    rng: random.Random = attrs.field(factory=_default_rng)

    _sees_responses: bool = attrs.field(init=False)
    _clones: bool = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        # RetryOn's own methods never retry a response and reuse the request: skip building
        # an outcome for every success, and the clone call.
        kind: Any = type(self.policy)
        self._sees_responses = kind.retry is not RetryOn.retry
        self._clones = kind.clone_request is not RetryOn.clone_request

    def __call__(self, request: Req) -> Coroutine[Any, Any, Resp]:
        """Call, and retry as the policy, backoff and budget allow.

        Raises:
            BudgetExhausted: a failure was worth retrying but the budget is spent.
            Exception: the last attempt's exception, when the policy stops retrying.
        """
        return self.handle(request, self.inner)

    async def handle(self, request: Req, call: Call[Req, Resp]) -> Resp:
        if self.budget is not None:
            self.budget.deposit()
        policy = self.policy
        spare = policy.clone_request(request) if self._clones else request
        try:
            response = await call(request)
        except Exception as exc:
            result: outcome.Outcome[Resp] = outcome.Error(exc)
            if spare is None or not policy.retry(request, result, 1):
                raise
        else:
            if spare is None or not self._sees_responses:
                return response
            result = outcome.Value(response)
            if not policy.retry(request, result, 1):
                return response
        return await self._retry(request, spare, result, call)

    async def _retry(
        self, request: Req, spare: Req, result: outcome.Outcome[Resp], call: Call[Req, Resp]
    ) -> Resp:
        """Retry through ``call`` after a first attempt whose ``result`` the policy wants
        retried. Under a reservation ``call`` is the reserved call, so a retry reuses what the
        reservation holds instead of waiting for a second share beside it."""
        policy = self.policy
        budget = self.budget
        attempt = 1
        while True:
            if budget is not None and not budget.can_withdraw():
                return self._give_up(result)
            if self.backoff is not None:
                await sleep(self.backoff.delay(attempt, self.rng))
            if budget is not None and not budget.try_withdraw():
                return self._give_up(result)
            this_try, spare = spare, policy.clone_request(spare)  # type: ignore[assignment]
            attempt += 1
            try:
                result = outcome.Value(await call(this_try))
            except Exception as exc:
                result = outcome.Error(exc)
            if spare is None or not policy.retry(request, result, attempt):
                return result.unwrap()

    def _give_up(self, result: outcome.Outcome[Resp]) -> Resp:
        if isinstance(result, outcome.Error):
            raise BudgetExhausted(
                f"not retrying {type(result.error).__name__}: the retry budget is spent "
                f"(at most {self._budget_terms()}); the failure is the cause. Fix the "
                "failing service, or raise the budget if this load is expected"
            ) from result.error
        return result.unwrap()

    def _budget_terms(self) -> str:
        budget = self.budget
        assert budget is not None
        return (
            f"{budget.retry_percent:.0%} of requests + {budget.min_per_second}/s "
            f"over {budget.ttl} s"
        )


@attrs.frozen
class RetryLayer(Generic[Req, Resp]):
    """Wraps services in :class:`Retry`.

    Attributes:
        policy: Decides what to retry.
        backoff: Delays between attempts; None retries at once.
        budget: A Budget *shared* by every service this layer wraps; None gives each its own
            default Budget. Use ``Budget`` explicitly to share, or pass ``no_budget=True``.
        no_budget: Retry without any budget.
        rng: Source of jitter, shared by the wrapped services.
    """

    policy: Policy[Req, Resp]
    backoff: Backoff | None = attrs.field(factory=Backoff)
    budget: Budget | None = None
    no_budget: bool = False
    rng: random.Random = attrs.field(factory=_default_rng)

    def layer(self, inner: Service[Any, Any]) -> Retry[Any, Any]:
        budget = None if self.no_budget else (self.budget or Budget())
        return Retry(inner, self.policy, backoff=self.backoff, budget=budget, rng=self.rng)
