"""LoadShed: fail fast with Overloaded instead of waiting for an inner service that is busy.

Each call tries to reserve the inner service without waiting (``ready_nowait()``). If that
works, the call goes through on the reservation; if not, the caller gets :class:`Overloaded`
at once and the inner service is never called. Because the check and the reservation are one
step, there is no window in which another task can take the room the check saw.

Put LoadShed *above* the layer that runs out of room (a concurrency limit, a rate limit, a
buffer): ``ServiceBuilder().load_shed().concurrency_limit(64)`` sheds the 65th concurrent call.
Below it, there is nothing for it to see.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager, AbstractContextManager
from types import TracebackType
from typing import Generic, TypeVar

import attrs
import trio

from runtime.rt._coop import try_consume_budget

from ._service import Call, Service

Req = TypeVar("Req")
Resp = TypeVar("Resp")

__all__ = ["LoadShed", "LoadShedLayer", "Overloaded"]


class Overloaded(Exception):
    """The service was not ready, so the request was refused without being sent.

    Safe to retry elsewhere or later: the inner service never saw the request.
    """


def _overloaded() -> Overloaded:
    return Overloaded(
        "service not ready, request shed without being sent (LoadShed); retry later or "
        "elsewhere, or raise the limit below LoadShed"
    )


@attrs.define(eq=False)
class LoadShed(Service[Req, Resp]):
    """Refuse calls with :class:`Overloaded` when the inner service is not ready.

    LoadShed itself is always ready: it answers every call, if only with ``Overloaded``.

    Attributes:
        inner: The wrapped service.
        shed: How many calls were refused so far.

    Cancellation:
        A cancelled call returns the reservation it took, like any other exit.
    """

    inner: Service[Req, Resp]
    shed: int = attrs.field(default=0, init=False)

    async def __call__(self, request: Req) -> Resp:
        """Call the inner service if it is ready now.

        Raises:
            Overloaded: the inner service is not ready; it was not called.
        """
        entered = False
        try:
            with self.inner.ready_nowait() as call:
                entered = True
                return await call(request)
        except trio.WouldBlock:
            if entered:
                raise
            self.shed += 1
            raise _overloaded() from None

    def ready(self) -> AbstractAsyncContextManager[Call[Req, Resp]]:
        """Reserve the inner service if it is ready now; never waits.

        Raises:
            Overloaded: (on entry) the inner service is not ready.
        """
        return _Shedding(self)

    def ready_nowait(self) -> AbstractContextManager[Call[Req, Resp]]:
        """Reserve the inner service if it is ready now.

        Raises:
            Overloaded: (on entry) the inner service is not ready.
        """
        return _Shedding(self)

    def is_ready(self) -> bool:
        return True


class _Shedding(Generic[Req, Resp]):
    """LoadShed's reservation: the inner service's, taken without waiting, or Overloaded."""

    __slots__ = ("_inner", "_shed")

    def __init__(self, shed: LoadShed[Req, Resp]) -> None:
        self._shed = shed
        self._inner: AbstractContextManager[Call[Req, Resp]] | None = None

    def __enter__(self) -> Call[Req, Resp]:
        inner = self._shed.inner.ready_nowait()
        try:
            call = inner.__enter__()
        except trio.WouldBlock:
            self._shed.shed += 1
            raise _overloaded() from None
        self._inner = inner
        return call

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        inner, self._inner = self._inner, None
        assert inner is not None, "LoadShed reservation exited without being entered"
        return inner.__exit__(exc_type, exc, tb)

    async def __aenter__(self) -> Call[Req, Resp]:
        if not try_consume_budget():
            await trio.lowlevel.checkpoint()
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        return self.__exit__(exc_type, exc, tb)


@attrs.frozen
class LoadShedLayer:
    """Wraps services in :class:`LoadShed`."""

    def layer(self, inner: Service[Req, Resp]) -> LoadShed[Req, Resp]:
        return LoadShed(inner)
