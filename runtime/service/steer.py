"""Steer: send each request to one of several services, chosen by a function of the request.

``pick(request, services) -> index``. Unlike a balancer, the choice is about *what* the request
is (a route, a tenant, a shard), not about load.

Readiness: Steer cannot reserve before it has seen the request, because it does not yet know
which service will take it. So ``ready()`` reserves nothing of its own and the call waits
for the chosen service's readiness (the plain call does the same). ``is_ready()`` is True only
when *every* service is ready, the conservative answer (Tower's Steer also asks all of them), and
``ready_nowait()`` succeeds exactly when ``is_ready()`` is True.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Any, TypeVar

import attrs
import trio

from ._service import Call, Service

Req = TypeVar("Req")
Resp = TypeVar("Resp")

__all__ = ["Steer"]


@attrs.define(eq=False, init=False)
class Steer(Service[Req, Resp]):
    """Route each request to ``services[pick(request, services)]``.

    Args:
        services: The services to choose from.
        pick: ``pick(request, services) -> index``.

    Raises:
        ValueError: (at construction) ``services`` is empty.
    """

    services: tuple[Service[Req, Resp], ...]
    pick: Callable[[Req, Sequence[Service[Req, Resp]]], int]

    def __init__(
        self,
        services: Sequence[Service[Req, Resp]],
        pick: Callable[[Req, Sequence[Service[Req, Resp]]], int],
    ) -> None:
        if not services:
            raise ValueError("Steer needs at least one service to route to")
        self.services = tuple(services)
        self.pick = pick

    async def __call__(self, request: Req) -> Resp:
        """Call the service ``pick`` chooses for this request.

        Raises:
            IndexError: ``pick`` returned an index out of range.
        """
        services = self.services
        index = self.pick(request, services)
        if not 0 <= index < len(services):
            raise IndexError(
                f"Steer's pick returned {index} for {len(services)} services; it must return "
                f"an index in 0..{len(services) - 1}"
            )
        return await services[index](request)

    def ready_nowait(self) -> AbstractContextManager[Call[Req, Resp]]:
        """Succeed only when every service is ready; the call still goes through ``pick``.

        Raises:
            trio.WouldBlock: (on entry) some service is not ready.
        """
        if not self.is_ready():
            return _NotReady()
        return super().ready_nowait()

    def is_ready(self) -> bool:
        return all(service.is_ready() for service in self.services)


class _NotReady(AbstractContextManager[Any]):
    def __enter__(self) -> Any:
        raise trio.WouldBlock

    def __exit__(self, *exc_info: object) -> None:  # pragma: no cover - never entered
        return None
