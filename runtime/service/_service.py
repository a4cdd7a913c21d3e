"""The Service protocol, readiness, Layer and the small adapters around them.

A Service is an async callable ``request -> response`` that many tasks may call at once. Some
services can only take a call when they have room for it (a concurrency limit with a free
slot, a rate limit with a token, a buffer with a free queue slot). That is *readiness*, and it
comes in three forms, all optional for a service that is always ready:

``await svc(request)``
    The plain call. It waits for readiness itself, calls, and gives the readiness back. This is
    the hot path and what most code uses.

``async with svc.ready() as call: await call(request)``
    A scoped reservation. Entering waits until the service can take a call and reserves room
    for it; ``call`` uses that reservation. Leaving the block returns whatever is left of it, on
    every exit: normal, exception, or cancellation. There is no way to hold a reservation past
    the block, so there is no way to leak one (Tower's ``poll_ready`` has no way to give one
    back).

``with svc.ready_nowait() as call: ...`` and ``svc.is_ready()``
    The non-blocking forms, for load shedding and balancing. ``ready_nowait()`` reserves on
    entry or raises :class:`trio.WouldBlock`, and returns the reservation on exit; nothing is
    reserved before ``__enter__``, so a context manager that is never entered holds nothing.
    ``is_ready()`` is a hint that reserves nothing.

A middleware that only transforms requests or responses passes readiness straight through to
its inner service; :class:`Middleware` does that for you.
"""

from __future__ import annotations

import abc
from collections.abc import Awaitable, Callable, Coroutine
from contextlib import AbstractAsyncContextManager, AbstractContextManager
from types import TracebackType
from typing import Any, Generic, Protocol, TypeAlias, TypeVar

import attrs
import trio

from runtime.rt._coop import try_consume_budget

Req = TypeVar("Req")
Resp = TypeVar("Resp")
InReq = TypeVar("InReq")
InResp = TypeVar("InResp")
Req_contra = TypeVar("Req_contra", contravariant=True)
Resp_co = TypeVar("Resp_co", covariant=True)

Call: TypeAlias = Callable[[Req], Awaitable[Resp]]
"""What a reservation gives you: an async function ``request -> response``."""

_checkpoint = trio.lowlevel.checkpoint


class Service(abc.ABC, Generic[Req_contra, Resp_co]):
    """An async function from a request to a response, with optional readiness.

    Subclasses implement ``__call__``. A service that can only take a call when it has room
    (a limit, a rate, a queue) also overrides :meth:`ready`, :meth:`ready_nowait` and
    :meth:`is_ready`; the defaults describe a service that is always ready.

    One instance may be called by many tasks at once; there is nothing to clone.
    """

    __slots__ = ()

    @abc.abstractmethod
    async def __call__(self, request: Req_contra) -> Resp_co:
        """Wait until the service is ready, call it, and return its response.

        Args:
            request: The request.

        Returns:
            The response.
        """

    def ready(self) -> AbstractAsyncContextManager[Call[Req_contra, Resp_co]]:
        """Wait until the service can take a call, and reserve room for it.

        Use as ``async with svc.ready() as call: response = await call(request)``. The call
        uses the reservation instead of waiting again. ``call`` may be called again inside the
        block, one call at a time (Retry does): a later call reuses what the block holds (a
        concurrency permit, a buffer slot) and waits only for what a single call costs (a
        rate-limit token), so it never waits for a second share of what the block holds.

        Returns:
            An async context manager whose value is the reserved call. Entering it is a
            checkpoint.

        Cancellation:
            Cancelled while waiting, nothing is reserved. Leaving the block by any route,
            cancellation included, returns the reservation.
        """
        return _AlwaysReady(self)

    def ready_nowait(self) -> AbstractContextManager[Call[Req_contra, Resp_co]]:
        """Reserve room for a call if that is possible without waiting.

        Use as ``with svc.ready_nowait() as call: ...``. Entering either reserves or raises.

        Returns:
            A context manager whose value is the reserved call. Nothing is reserved until it
            is entered, and leaving it returns the reservation.

        Raises:
            trio.WouldBlock: (on entry) the service cannot take a call now.
        """
        return _AlwaysReady(self)

    def is_ready(self) -> bool:
        """Whether a call could be reserved now without waiting. A hint: it reserves nothing.

        Returns:
            True if :meth:`ready_nowait` would succeed at this moment.
        """
        return True


class _AlwaysReady(Generic[Req, Resp]):
    """The reservation of a service that is always ready: the service itself."""

    __slots__ = ("_call",)

    def __init__(self, call: Call[Req, Resp]) -> None:
        self._call = call

    def __enter__(self) -> Call[Req, Resp]:
        return self._call

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None

    async def __aenter__(self) -> Call[Req, Resp]:
        if not try_consume_budget():
            await _checkpoint()
        return self._call

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None


class Layer(Protocol):
    """Something that turns a Service into another Service, usually by wrapping it.

    Every middleware comes with one (``TimeoutLayer``, ``RetryLayer``, ...), so a stack can be
    described before the service it wraps exists; :class:`ServiceBuilder` applies them.
    """

    def layer(self, inner: Service[Any, Any]) -> Service[Any, Any]:
        """Wrap ``inner``.

        Args:
            inner: The service to wrap.

        Returns:
            The wrapping service.
        """
        ...


@attrs.frozen
class _LayerFn:
    fn: Callable[[Service[Any, Any]], Service[Any, Any]]

    def layer(self, inner: Service[Any, Any]) -> Service[Any, Any]:
        return self.fn(inner)


def layer_fn(fn: Callable[[Service[Any, Any]], Service[Any, Any]]) -> Layer:
    """Make a Layer from a function that wraps a service.

    Args:
        fn: Called with the inner service; returns the wrapping one.

    Returns:
        A Layer whose ``layer(inner)`` is ``fn(inner)``.
    """
    return _LayerFn(fn)


class ServiceFn(Service[Req, Resp]):
    """A plain async function as a Service (always ready). Made by :func:`service_fn`."""

    __slots__ = ("fn",)

    def __init__(self, fn: Callable[[Req], Coroutine[Any, Any, Resp]]) -> None:
        self.fn = fn

    def __call__(self, request: Req) -> Coroutine[Any, Any, Resp]:
        return self.fn(request)  # the function's own coroutine: no frame of our own

    def __repr__(self) -> str:
        return f"service_fn({getattr(self.fn, '__qualname__', self.fn)!r})"


def service_fn(fn: Callable[[Req], Coroutine[Any, Any, Resp]]) -> Service[Req, Resp]:
    """Wrap a plain async function as a Service.

    The service is always ready and adds nothing to the call: it is a checkpoint exactly when
    ``fn`` is one.

    Args:
        fn: ``async def fn(request) -> response``.

    Returns:
        The service.
    """
    return ServiceFn(fn)


class Middleware(Service[Req, Resp], Generic[Req, Resp, InReq, InResp]):
    """Base class for a service that wraps one inner service and keeps its readiness.

    Write :meth:`handle`, which gets the request and the next hop. The plain call passes the
    inner service itself as the next hop; a reservation (``ready()`` / ``ready_nowait()``)
    reserves the inner service and passes its reserved call. So readiness flows through the
    middleware unchanged, and the middleware's code is written once.

    Attributes:
        inner: The wrapped service.
    """

    __slots__ = ("_passthrough", "inner")

    def __init__(self, inner: Service[InReq, InResp]) -> None:
        self.inner = inner

    @abc.abstractmethod
    async def handle(self, request: Req, call: Call[InReq, InResp]) -> Resp:
        """Handle one request, using ``call`` to reach the inner service.

        Args:
            request: The request this middleware received.
            call: The next hop: the inner service, or its reserved call.

        Returns:
            The response.
        """

    async def __call__(self, request: Req) -> Resp:
        return await self.handle(request, self.inner)

    def ready(self) -> AbstractAsyncContextManager[Call[Req, Resp]]:
        if type(self.inner).ready is _DEFAULT_READY:
            # Nothing to reserve below, so the plain call is the reserved call.
            try:
                return self._passthrough
            except AttributeError:
                return self._new_passthrough()
        return _Bound(self.inner.ready(), self.handle)

    def ready_nowait(self) -> AbstractContextManager[Call[Req, Resp]]:
        if type(self.inner).ready_nowait is _DEFAULT_READY_NOWAIT:
            try:
                return self._passthrough
            except AttributeError:
                return self._new_passthrough()
        return _Bound(self.inner.ready_nowait(), self.handle)

    def _new_passthrough(self) -> _AlwaysReady[Req, Resp]:
        # Stateless, so one per middleware serves every reservation.
        self._passthrough: _AlwaysReady[Req, Resp] = _AlwaysReady(self)
        return self._passthrough

    def is_ready(self) -> bool:
        return self.inner.is_ready()


_DEFAULT_READY = Service.ready
_DEFAULT_READY_NOWAIT = Service.ready_nowait


class _Bound(Generic[Req, Resp, InReq, InResp]):
    """An inner reservation, seen through a middleware's ``handle``."""

    __slots__ = ("_handle", "_inner")

    def __init__(self, inner: Any, handle: Callable[[Req, Call[InReq, InResp]], Awaitable[Resp]]):
        self._inner = inner
        self._handle = handle

    def __enter__(self) -> Call[Req, Resp]:
        return self._hop(self._inner.__enter__())

    def _hop(self, call: Call[InReq, InResp]) -> Call[Req, Resp]:
        handle = self._handle
        return lambda request: handle(request, call)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        return self._inner.__exit__(exc_type, exc, tb)  # type: ignore[no-any-return]

    async def __aenter__(self) -> Call[Req, Resp]:
        return self._hop(await self._inner.__aenter__())

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        return await self._inner.__aexit__(exc_type, exc, tb)  # type: ignore[no-any-return]
