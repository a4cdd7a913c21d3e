"""AndThen: run an async step on each response before the caller gets it.

Like :class:`~runtime.service.MapResponse`, but the step is async (it may read a body, call
another service, ...). It runs only when the inner service returned; exceptions pass through.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

import attrs

from ._service import Call, Middleware, Service

Req = TypeVar("Req")
Resp = TypeVar("Resp")
NewResp = TypeVar("NewResp")

__all__ = ["AndThen", "AndThenLayer"]


@attrs.define(eq=False)
class AndThen(Middleware[Req, NewResp, Req, Resp]):
    """Return ``await f(response)``. Readiness passes through.

    Attributes:
        inner: The wrapped service.
        f: ``async f(response) -> new response``.

    Cancellation:
        Cancelled during ``f``, the inner call has already finished; its response is dropped.
    """

    inner: Service[Req, Resp]
    f: Callable[[Resp], Awaitable[NewResp]]

    async def __call__(self, request: Req) -> NewResp:
        return await self.f(await self.inner(request))

    async def handle(self, request: Req, call: Call[Req, Resp]) -> NewResp:
        return await self.f(await call(request))


@attrs.frozen
class AndThenLayer(Generic[Resp, NewResp]):
    """Wraps services in :class:`AndThen`.

    Attributes:
        f: ``async f(response) -> new response``.
    """

    f: Callable[[Resp], Awaitable[NewResp]]

    def layer(self, inner: Service[Req, Resp]) -> AndThen[Req, NewResp, Resp]:
        return AndThen(inner, self.f)
