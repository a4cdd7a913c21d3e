"""Filter and AsyncFilter: check (and possibly rewrite) a request before it goes in.

The predicate returns the request to send (the same one, or a new one) or raises to reject
it; the exception reaches the caller and the inner service is never called. ``Filter`` takes
a plain function, ``AsyncFilter`` an async one (for a check that must look something up).

Readiness passes through: a reservation on a filter is a reservation on the inner service, and
a rejected request gives it back unused.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

import attrs

from ._service import Call, Middleware, Service

Req = TypeVar("Req")
NewReq = TypeVar("NewReq")
Resp = TypeVar("Resp")

__all__ = ["AsyncFilter", "AsyncFilterLayer", "Filter", "FilterLayer"]


@attrs.define(eq=False)
class Filter(Middleware[Req, Resp, NewReq, Resp]):
    """Pass requests through a predicate that may rewrite or reject them.

    Attributes:
        inner: The wrapped service.
        predicate: ``predicate(request) -> request to send``; raises to reject.
    """

    inner: Service[NewReq, Resp]
    predicate: Callable[[Req], NewReq]

    async def __call__(self, request: Req) -> Resp:
        """Check the request, then call the inner service with what the predicate returned.

        Raises:
            Exception: whatever the predicate raised to reject the request.
        """
        return await self.inner(self.predicate(request))

    async def handle(self, request: Req, call: Call[NewReq, Resp]) -> Resp:
        return await call(self.predicate(request))


@attrs.define(eq=False)
class AsyncFilter(Middleware[Req, Resp, NewReq, Resp]):
    """Like :class:`Filter`, with an async predicate.

    Attributes:
        inner: The wrapped service.
        predicate: ``async predicate(request) -> request to send``; raises to reject.

    Cancellation:
        A call cancelled during the predicate never reaches the inner service.
    """

    inner: Service[NewReq, Resp]
    predicate: Callable[[Req], Awaitable[NewReq]]

    async def __call__(self, request: Req) -> Resp:
        """Check the request, then call the inner service with what the predicate returned.

        Raises:
            Exception: whatever the predicate raised to reject the request.
        """
        return await self.inner(await self.predicate(request))

    async def handle(self, request: Req, call: Call[NewReq, Resp]) -> Resp:
        return await call(await self.predicate(request))


@attrs.frozen
class FilterLayer(Generic[Req, NewReq]):
    """Wraps services in :class:`Filter`.

    Attributes:
        predicate: ``predicate(request) -> request to send``; raises to reject.
    """

    predicate: Callable[[Req], NewReq]

    def layer(self, inner: Service[NewReq, Resp]) -> Filter[Req, Resp, NewReq]:
        return Filter(inner, self.predicate)


@attrs.frozen
class AsyncFilterLayer(Generic[Req, NewReq]):
    """Wraps services in :class:`AsyncFilter`.

    Attributes:
        predicate: ``async predicate(request) -> request to send``; raises to reject.
    """

    predicate: Callable[[Req], Awaitable[NewReq]]

    def layer(self, inner: Service[NewReq, Resp]) -> AsyncFilter[Req, Resp, NewReq]:
        return AsyncFilter(inner, self.predicate)
