"""RateLimit: a token bucket, ``num`` calls per ``per`` seconds, with a burst.

The bucket holds up to ``burst`` tokens and refills continuously at ``num / per`` tokens a
second; each call takes one. Tokens are computed from ``trio.current_time()`` when needed, so
there is no refill task and MockClock drives it.

Waiting callers queue in FIFO order behind a ``trio.Lock``: the one at the head sleeps until
the next token is due, takes it, and hands the head to the next. A newcomer never overtakes
the queue. A caller cancelled while queued or sleeping has taken nothing. A reservation
(``ready()``) takes a token on entry; if the block ends without making the call, the token
goes back into the bucket. The token pays for the block's first call; a reserved call made
again (a Retry under the reservation does that) waits for a token of its own.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Awaitable
from contextlib import AbstractAsyncContextManager, AbstractContextManager, asynccontextmanager
from types import TracebackType
from typing import Generic, TypeVar

import attrs
import trio

from runtime.rt._coop import try_consume_budget
from runtime.time import sleep_until

from ._service import Call, Service
from ._validate import at_least_one, positive

Req = TypeVar("Req")
Resp = TypeVar("Resp")

__all__ = ["RateLimit", "RateLimitLayer", "RateLimitStatistics"]

_checkpoint = trio.lowlevel.checkpoint
_now = trio.current_time
_ONE = 1.0 - 1e-9  # a whole token, allowing for float error in the refill arithmetic


@attrs.frozen
class RateLimitStatistics:
    """A bucket at one moment.

    Attributes:
        tokens: Tokens in the bucket now (fractional while refilling).
        waiting: Whether callers are queued for a token.
    """

    tokens: float
    waiting: bool


class _Once(Generic[Req, Resp]):
    """A reserved call that records whether it was used (so an unused token is refunded).

    The reservation's token pays for the first call; each later call takes its own.
    """

    __slots__ = ("_call", "_limit", "used")

    def __init__(self, limit: RateLimit[Req, Resp], call: Call[Req, Resp]) -> None:
        self._limit = limit
        self._call = call
        self.used = False

    def __call__(self, request: Req) -> Awaitable[Resp]:
        if self.used:
            return self._limit._call_with_token(self._call, request)
        self.used = True
        return self._call(request)


class _TokenNowait(Generic[Req, Resp]):
    """``ready_nowait()``: a token and the inner reservation; an unused token is refunded.

    A class rather than a generator, and its own reserved call (it records the use), because
    LoadShed and Balance take this path on every call.
    """

    __slots__ = ("_call", "_inner", "_limit", "_used")

    def __init__(self, limit: RateLimit[Req, Resp]) -> None:
        self._limit = limit
        self._inner: AbstractContextManager[Call[Req, Resp]] | None = None
        self._call: Call[Req, Resp] | None = None
        self._used = False

    def __enter__(self) -> Call[Req, Resp]:
        limit = self._limit
        if limit._queue.locked() or not limit._try_take():
            raise trio.WouldBlock
        try:
            inner = limit.inner.ready_nowait()
            self._call = inner.__enter__()
        except BaseException:
            limit._refund()
            raise
        self._inner = inner
        return self

    def __call__(self, request: Req) -> Awaitable[Resp]:
        assert self._call is not None
        if self._used:
            return self._limit._call_with_token(self._call, request)
        self._used = True
        return self._call(request)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        inner, self._inner, self._call = self._inner, None, None
        assert inner is not None, "exited without being entered"
        try:
            return inner.__exit__(exc_type, exc, tb)
        finally:
            if not self._used:
                self._limit._refund()


@attrs.define(eq=False, init=False)
class RateLimit(Service[Req, Resp]):
    """Let at most ``num`` calls per ``per`` seconds through, after an initial ``burst``.

    Args:
        inner: The wrapped service.
        num: Calls allowed per period.
        per: The period, seconds.
        burst: Tokens the bucket holds, so calls that may go back to back after a quiet spell.
            Default ``num``: a full period's allowance may be used at once, as a fixed
            window would allow.

    Cancellation:
        A caller cancelled while waiting for a token has taken none. A token is spent once the
        call starts; cancelling the call does not give it back.
    """

    inner: Service[Req, Resp]
    num: int
    per: float
    burst: int
    _rate: float
    _tokens: float
    _updated: float
    _queue: trio.Lock

    def __init__(
        self, inner: Service[Req, Resp], num: int, per: float, *, burst: int | None = None
    ) -> None:
        _check(num, per, burst)
        self.inner = inner
        self.num = num
        self.per = per
        self.burst = num if burst is None else burst
        self._rate = num / per
        self._tokens = float(self.burst)
        self._updated = -math.inf  # the first refill fills the bucket
        self._queue = trio.Lock()

    async def __call__(self, request: Req) -> Resp:
        """Take a token (waiting for one if needed), then call the inner service."""
        if not try_consume_budget():
            await _checkpoint()
        if self._queue.locked() or not self._try_take():
            await self._wait_for_token()
        return await self.inner(request)

    async def _call_with_token(self, call: Call[Req, Resp], request: Req) -> Resp:
        """A reserved call made again: it takes a token of its own, as a plain call does."""
        if not try_consume_budget():
            await _checkpoint()
        if self._queue.locked() or not self._try_take():
            await self._wait_for_token()
        return await call(request)

    def _refill(self) -> None:
        now = _now()
        if now > self._updated:
            tokens = self._tokens + (now - self._updated) * self._rate
            self._tokens = tokens if tokens < self.burst else float(self.burst)
            self._updated = now

    def _try_take(self) -> bool:
        now = _now()
        tokens = self._tokens
        if now > self._updated:
            tokens += (now - self._updated) * self._rate
            if tokens > self.burst:
                tokens = float(self.burst)
            self._updated = now
        if tokens >= _ONE:
            self._tokens = tokens - 1.0
            return True
        self._tokens = tokens
        return False

    def _refund(self) -> None:
        self._refill()
        self._tokens = min(float(self.burst), self._tokens + 1.0)

    async def _wait_for_token(self) -> None:
        async with self._queue:
            while not self._try_take():
                await sleep_until(self._updated + (1.0 - self._tokens) / self._rate)

    @asynccontextmanager
    async def _ready(self) -> AsyncIterator[Call[Req, Resp]]:
        if not try_consume_budget():
            await _checkpoint()
        if self._queue.locked() or not self._try_take():
            await self._wait_for_token()
        once: _Once[Req, Resp] | None = None
        try:
            async with self.inner.ready() as call:
                once = _Once(self, call)
                yield once
        finally:
            if once is None or not once.used:
                self._refund()

    def ready(self) -> AbstractAsyncContextManager[Call[Req, Resp]]:
        """Wait for a token and for the inner service; an unused token is refunded on exit."""
        return self._ready()

    def ready_nowait(self) -> AbstractContextManager[Call[Req, Resp]]:
        """Take a token and reserve the inner service without waiting.

        Raises:
            trio.WouldBlock: (on entry) no token is available (or callers are queued), or
                the inner service is not ready.
        """
        return _TokenNowait(self)

    def is_ready(self) -> bool:
        if self._queue.locked():
            return False
        self._refill()
        return self._tokens >= _ONE and self.inner.is_ready()

    def statistics(self) -> RateLimitStatistics:
        """Tokens in the bucket and whether anyone is waiting."""
        self._refill()
        return RateLimitStatistics(tokens=self._tokens, waiting=self._queue.locked())


def _check(num: int, per: float, burst: int | None) -> None:
    if num < 1:
        raise ValueError(f"rate limit num must be >= 1 call per period, got {num!r}")
    if not per > 0:
        raise ValueError(f"rate limit period must be > 0 seconds, got {per!r}")
    if burst is not None and burst < 1:
        raise ValueError(f"rate limit burst must be >= 1 token, got {burst!r}")


@attrs.frozen
class RateLimitLayer:
    """Wraps each service in its own :class:`RateLimit`.

    Attributes:
        num: Calls allowed per period.
        per: The period, seconds.
        burst: Tokens the bucket holds; default ``num``.
    """

    num: int = attrs.field(validator=at_least_one)
    per: float = attrs.field(validator=positive)
    burst: int | None = attrs.field(
        default=None, validator=attrs.validators.optional(at_least_one)
    )

    def layer(self, inner: Service[Req, Resp]) -> RateLimit[Req, Resp]:
        return RateLimit(inner, self.num, self.per, burst=self.burst)
