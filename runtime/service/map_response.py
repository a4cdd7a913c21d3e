"""MapResponse: turn each response into another before the caller sees it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

import attrs

from ._service import Call, Middleware, Service

Req = TypeVar("Req")
Resp = TypeVar("Resp")
NewResp = TypeVar("NewResp")

__all__ = ["MapResponse", "MapResponseLayer"]


@attrs.define(eq=False)
class MapResponse(Middleware[Req, NewResp, Req, Resp]):
    """Return ``f(response)`` instead of the inner service's response. Readiness passes through.

    Exceptions from the inner service are not touched (see :class:`MapErr`).

    Attributes:
        inner: The wrapped service.
        f: ``f(response) -> new response``.
    """

    inner: Service[Req, Resp]
    f: Callable[[Resp], NewResp]

    async def __call__(self, request: Req) -> NewResp:
        return self.f(await self.inner(request))

    async def handle(self, request: Req, call: Call[Req, Resp]) -> NewResp:
        return self.f(await call(request))


@attrs.frozen
class MapResponseLayer(Generic[Resp, NewResp]):
    """Wraps services in :class:`MapResponse`.

    Attributes:
        f: ``f(response) -> new response``.
    """

    f: Callable[[Resp], NewResp]

    def layer(self, inner: Service[Req, Resp]) -> MapResponse[Req, NewResp, Resp]:
        return MapResponse(inner, self.f)
