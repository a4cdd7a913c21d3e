"""MapErr: turn each exception from the inner service into another.

Only ``Exception`` s are mapped: ``trio.Cancelled``, ``KeyboardInterrupt`` and other
``BaseException`` s pass through untouched, because cancellation must stay cancellation. The
new exception is raised ``from`` the original, so the traceback keeps both.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NoReturn, TypeVar

import attrs

from ._service import Call, Middleware, Service

Req = TypeVar("Req")
Resp = TypeVar("Resp")

__all__ = ["MapErr", "MapErrLayer"]


@attrs.define(eq=False)
class MapErr(Middleware[Req, Resp, Req, Resp]):
    """Raise ``f(exc)`` in place of each exception ``exc`` the inner service raises.

    Attributes:
        inner: The wrapped service.
        f: ``f(exception) -> exception to raise``; returning ``exc`` itself re-raises it.
    """

    inner: Service[Req, Resp]
    f: Callable[[Exception], BaseException]

    async def __call__(self, request: Req) -> Resp:
        """Call the inner service; map what it raises.

        Raises:
            BaseException: ``f`` of the inner service's exception.
        """
        try:
            return await self.inner(request)
        except Exception as exc:
            self._raise(exc)

    async def handle(self, request: Req, call: Call[Req, Resp]) -> Resp:
        try:
            return await call(request)
        except Exception as exc:
            self._raise(exc)

    def _raise(self, exc: Exception) -> NoReturn:
        mapped = self.f(exc)
        if mapped is exc:
            raise exc
        raise mapped from exc


@attrs.frozen
class MapErrLayer:
    """Wraps services in :class:`MapErr`.

    Attributes:
        f: ``f(exception) -> exception to raise``.
    """

    f: Callable[[Exception], BaseException]

    def layer(self, inner: Service[Req, Resp]) -> MapErr[Req, Resp]:
        return MapErr(inner, self.f)
