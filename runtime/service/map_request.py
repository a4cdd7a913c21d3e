"""MapRequest: turn each request into another before the inner service sees it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

import attrs

from ._service import Call, Middleware, Service

Req = TypeVar("Req")
NewReq = TypeVar("NewReq")
Resp = TypeVar("Resp")

__all__ = ["MapRequest", "MapRequestLayer"]


@attrs.define(eq=False)
class MapRequest(Middleware[Req, Resp, NewReq, Resp]):
    """Call the inner service with ``f(request)``. Readiness passes through.

    Attributes:
        inner: The wrapped service.
        f: ``f(request) -> new request``. An exception it raises reaches the caller.
    """

    inner: Service[NewReq, Resp]
    f: Callable[[Req], NewReq]

    async def __call__(self, request: Req) -> Resp:
        return await self.inner(self.f(request))

    async def handle(self, request: Req, call: Call[NewReq, Resp]) -> Resp:
        return await call(self.f(request))


@attrs.frozen
class MapRequestLayer(Generic[Req, NewReq]):
    """Wraps services in :class:`MapRequest`.

    Attributes:
        f: ``f(request) -> new request``.
    """

    f: Callable[[Req], NewReq]

    def layer(self, inner: Service[NewReq, Resp]) -> MapRequest[Req, Resp, NewReq]:
        return MapRequest(inner, self.f)
