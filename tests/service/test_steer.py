"""Steer: route each request by a function of the request."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
import trio

from runtime.service import LoadShed, Overloaded, Service, Steer, service_fn
from runtime.testing import mock_service


def named(name: str) -> Service[str, str]:
    async def call(request: str) -> str:
        await trio.lowlevel.checkpoint()
        return f"{name}:{request}"

    return service_fn(call)


def by_prefix(request: str, services: Sequence[Service[str, str]]) -> int:
    return 0 if request.startswith("/api") else 1


async def test_routes_by_the_picker() -> None:
    svc = Steer([named("api"), named("static")], by_prefix)
    assert await svc("/api/users") == "api:/api/users"
    assert await svc("/index.html") == "static:/index.html"


async def test_bad_index_says_what_went_wrong() -> None:
    svc = Steer([named("only")], lambda request, services: 3)
    with pytest.raises(IndexError, match="returned 3 for 1 services"):
        await svc("x")
    with pytest.raises(ValueError, match="at least one"):
        Steer([], by_prefix)


async def test_ready_only_when_every_service_is(autojump_clock: trio.abc.Clock) -> None:
    held, handle = mock_service()
    handle.hold()
    svc: Steer[str, Any] = Steer([named("api"), held], by_prefix)
    assert not svc.is_ready()
    with pytest.raises(trio.WouldBlock), svc.ready_nowait():
        pass  # pragma: no cover
    with pytest.raises(Overloaded):
        await LoadShed(svc)("/api")
    handle.allow(None)
    assert svc.is_ready()
    with svc.ready_nowait() as call:
        assert await call("/api/x") == "api:/api/x"


async def test_call_waits_for_the_chosen_service(autojump_clock: trio.abc.Clock) -> None:
    held, handle = mock_service()
    handle.hold()
    svc: Steer[str, Any] = Steer([named("api"), held], by_prefix)
    assert await svc("/api/fast") == "api:/api/fast"  # the held service does not block it
    with trio.move_on_after(1.0) as scope:
        async with svc.ready() as call:
            await call("/static")
    assert scope.cancelled_caught
    assert handle.statistics().reserved == 0
