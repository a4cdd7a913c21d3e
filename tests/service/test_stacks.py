"""Random stacks, random faults: no permit leaks, no scope corrupts, every request ends.

Hypothesis builds a ``ServiceBuilder`` stack (timeout, retry, concurrency limit, load shed,
buffer, rate limit, hedge, circuit breaker), optionally over a ``Balance`` of two or three
endpoints with stacks of their own, and sends it a handful of concurrent requests under
MockClock. Each request scripts its attempts (answer, fail with a retryable fault, fail with a
bug, each after a delay), arrives by the plain call or a reservation, and may be cancelled by
its caller. Afterwards every limit has all its permits back, every buffer its slots, every
endpoint no calls pending, and every request has ended with a response or an error a layer
is allowed to raise.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import attrs
import trio
import trio.testing
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from runtime.service import (
    Backoff,
    Balance,
    Budget,
    BudgetExhausted,
    Buffer,
    BufferLayer,
    CircuitOpen,
    ConcurrencyLimit,
    ConcurrencyLimitLayer,
    Elapsed,
    Layer,
    Overloaded,
    RateLimit,
    RetryOn,
    Service,
    ServiceBuilder,
    service_fn,
)


class Fault(Exception):
    """A failure worth retrying."""


class Bug(Exception):
    """A failure that is not (RetryOn names only Fault)."""


ALLOWED = (Fault, Bug, Elapsed, Overloaded, BudgetExhausted, CircuitOpen, trio.WouldBlock)


@attrs.frozen
class Request:
    """One request: how each attempt ends (cycled) and how the caller behaves."""

    number: int
    attempts: tuple[tuple[str, float], ...]
    mode: str
    start: float
    cancel_after: float | None


class Backend:
    """The service at the bottom: follows each request's script and counts calls in flight."""

    def __init__(self) -> None:
        self.in_flight = 0
        self.tries: dict[int, int] = {}

    async def __call__(self, request: Request) -> int:
        self.in_flight += 1
        try:
            attempt = self.tries.get(request.number, 0)
            self.tries[request.number] = attempt + 1
            outcome, delay = request.attempts[attempt % len(request.attempts)]
            await trio.sleep(delay)
            if outcome == "fault":
                raise Fault(request.number)
            if outcome == "bug":
                raise Bug(request.number)
            return request.number
        finally:
            self.in_flight -= 1


LAYER = st.one_of(
    st.tuples(st.just("timeout"), st.sampled_from([0.5, 2.0, 30.0])),
    st.tuples(st.just("retry"), st.integers(2, 4)),
    st.tuples(st.just("concurrency_limit"), st.integers(1, 3)),
    st.tuples(st.just("load_shed"), st.just(0)),
    st.tuples(st.just("buffer"), st.integers(1, 3)),
    st.tuples(st.just("rate_limit"), st.integers(1, 5)),
    st.tuples(st.just("hedge"), st.just(0)),
    st.tuples(st.just("circuit_breaker"), st.just(0)),
)
ENDPOINT_LAYER = st.one_of(  # what an endpoint usually carries: a deadline and its limits
    st.tuples(st.just("timeout"), st.sampled_from([0.5, 2.0, 30.0])),
    st.tuples(st.just("concurrency_limit"), st.integers(1, 2)),
    st.tuples(st.just("rate_limit"), st.integers(1, 5)),
    st.tuples(st.just("circuit_breaker"), st.just(0)),
    LAYER,
)
STACK = st.lists(LAYER, max_size=5)
ENDPOINTS = st.one_of(
    st.just([]), st.lists(st.lists(ENDPOINT_LAYER, max_size=3), min_size=2, max_size=3)
)
ATTEMPT = st.tuples(
    st.sampled_from(["ok", "ok", "fault", "bug"]), st.sampled_from([0.0, 0.1, 1.0, 5.0])
)
REQUEST = st.tuples(
    st.lists(ATTEMPT, min_size=1, max_size=3),
    st.sampled_from(["call", "call", "ready", "ready_nowait"]),
    st.sampled_from([0.0, 0.0, 0.05, 1.0]),
    st.one_of(st.none(), st.sampled_from([0.01, 0.5, 3.0])),
)


def build(spec: list[tuple[str, Any]], nursery: trio.Nursery) -> ServiceBuilder:
    builder = ServiceBuilder()
    for name, value in spec:
        if name == "timeout":
            builder = builder.timeout(value)
        elif name == "retry":
            builder = builder.retry(
                RetryOn(Fault, attempts=value),
                backoff=Backoff(initial=0.05),
                budget=Budget(),
                rng=random.Random(0),
            )
        elif name == "concurrency_limit":
            builder = builder.concurrency_limit(value)
        elif name == "load_shed":
            builder = builder.load_shed()
        elif name == "buffer":
            builder = builder.buffer(value, nursery=nursery)
        elif name == "rate_limit":
            builder = builder.rate_limit(value, 1.0)
        elif name == "hedge":
            builder = builder.hedge(min_data_points=3)
        else:
            builder = builder.circuit_breaker(failures=3, rng=random.Random(0))
    return builder


def layered(svc: Service[Any, Any], layers: tuple[Layer, ...]) -> Iterator[Any]:
    """``(layer, service)`` pairs down a built stack: each layer made exactly one service."""
    for layer in layers:
        yield layer, svc
        svc = svc.inner  # type: ignore[attr-defined]


def assert_nothing_held(svc: Service[Any, Any], layers: tuple[Layer, ...]) -> None:
    for layer, service in layered(svc, layers):
        if isinstance(layer, ConcurrencyLimitLayer):
            assert isinstance(service, ConcurrencyLimit)
            stats = service.statistics()
            assert (stats.available, stats.waiting) == (layer.limit, 0), "a permit leaked"
        elif isinstance(layer, BufferLayer):
            assert isinstance(service, Buffer)
            stats = service.statistics()
            assert (stats.free_slots, stats.queued) == (layer.bound, 0), "a slot leaked"
        elif isinstance(service, RateLimit):
            assert not service.statistics().waiting


async def send(svc: Service[Any, Any], request: Request, ended: dict[int, str]) -> None:
    await trio.sleep(request.start)
    with trio.move_on_after(request.cancel_after or float("inf")):
        try:
            if request.mode == "call":
                response = await svc(request)
            elif request.mode == "ready":
                async with svc.ready() as call:
                    response = await call(request)
            else:
                with svc.ready_nowait() as call:
                    response = await call(request)
        except ALLOWED as exc:
            ended[request.number] = type(exc).__name__
            return
        assert response == request.number
        ended[request.number] = "ok"
        return
    ended[request.number] = "cancelled"


async def run_stack(
    stack: list[tuple[str, Any]],
    endpoints: list[list[tuple[str, Any]]],
    requests: list[Request],
) -> None:
    backend = Backend()
    bottom: Service[Any, Any] = service_fn(backend)
    ended: dict[int, str] = {}
    async with trio.open_nursery() as workers:
        endpoint_stacks = []
        if endpoints:
            balance: Balance[int, Any, Any] = Balance(rng=random.Random(0))
            for key, spec in enumerate(endpoints):
                builder = build(spec, workers)
                endpoint = builder.service(bottom)
                balance.insert(key, endpoint)
                endpoint_stacks.append((endpoint, builder.layers))
            bottom = balance
        builder = build(stack, workers)
        svc = builder.service(bottom)
        with trio.fail_after(100_000):  # a request that never ends stops here
            async with trio.open_nursery() as callers:
                for request in requests:
                    callers.start_soon(send, svc, request, ended)
        assert sorted(ended) == [r.number for r in requests], "a request never ended"
        # A caller that gave up on a request a Buffer worker was serving has left; the
        # worker's cancelled call unwinds, and frees the slot, when it next runs.
        await trio.testing.wait_all_tasks_blocked()
        assert backend.in_flight == 0
        assert_nothing_held(svc, builder.layers)
        for endpoint, layers in endpoint_stacks:
            assert_nothing_held(endpoint, layers)
        if endpoints:
            assert all(e.pending == 0 for e in balance.statistics().endpoints)
        workers.cancel_scope.cancel()


OK = ([("ok", 0.0)], "call", 0.0, None)


# Pinned: what this test found.
@example(  # Balance waiting on an endpoint's ready() with a Timeout in it (scope corruption)
    stack=[],
    endpoints=[[("concurrency_limit", 1)], [("timeout", 0.5), ("concurrency_limit", 1)]],
    raw=[OK, OK, OK],
)
@example(  # a failed first attempt waited for a hedge copy that waited for its own permit
    stack=[("concurrency_limit", 1), ("load_shed", 0), ("hedge", 0), ("concurrency_limit", 1)],
    endpoints=[],
    raw=[
        OK,
        OK,
        OK,
        OK,
        (*OK[:2], 0.05, None),
        (*OK[:2], 0.05, None),
        ([("fault", 0.1)], "call", 0.0, None),
    ],
)
@example(  # a Buffer worker unwinds a call its caller gave up on after the caller has left
    stack=[("timeout", 0.5), ("buffer", 1)],
    endpoints=[],
    raw=[OK, OK, ([("ok", 1.0)], "call", 0.0, None)],
)
@example(  # Retry under LoadShed's reservation of a limit of 1 (a second permit never came)
    stack=[("load_shed", 0), ("retry", 2), ("concurrency_limit", 1)],
    endpoints=[],
    raw=[([("fault", 0.0), ("ok", 0.0)], "call", 0.0, None)],
)
@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stack=STACK, endpoints=ENDPOINTS, raw=st.lists(REQUEST, min_size=1, max_size=8))
def test_random_stacks_leak_nothing_and_every_request_ends(
    stack: list[tuple[str, Any]],
    endpoints: list[list[tuple[str, Any]]],
    raw: list[tuple[list[tuple[str, float]], str, float, float | None]],
) -> None:
    requests = [
        Request(n, tuple(attempts), mode, start, cancel_after)
        for n, (attempts, mode, start, cancel_after) in enumerate(raw)
    ]
    trio.run(
        run_stack, stack, endpoints, requests, clock=trio.testing.MockClock(autojump_threshold=0)
    )
