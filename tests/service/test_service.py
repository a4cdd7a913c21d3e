"""The Service protocol: service_fn, readiness defaults, Middleware, layer_fn."""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing

from runtime.service import Call, Layer, Middleware, Service, layer_fn, service_fn
from runtime.testing import mock_service

from .conftest import echo


class Shout(Middleware[str, str, str, str]):
    """A user-written middleware: upper-cases the request on its way in."""

    async def handle(self, request: str, call: Call[str, str]) -> str:
        return await call(request.upper())


async def test_service_fn_calls_the_function() -> None:
    svc = service_fn(echo)
    assert await svc("hi") == "hi"
    assert "echo" in repr(svc)


async def test_default_readiness_is_always_ready() -> None:
    svc = service_fn(echo)
    assert svc.is_ready()
    async with svc.ready() as call:
        assert await call(1) == 1
    with svc.ready_nowait() as call:
        assert await call(2) == 2


@pytest.mark.usefixtures("budget_of_one")
async def test_default_ready_is_a_checkpoint() -> None:
    svc = service_fn(echo)
    with trio.testing.assert_checkpoints():
        async with svc.ready():
            pass


async def test_service_is_abstract() -> None:
    with pytest.raises(TypeError):
        Service()  # type: ignore[abstract]


async def test_concurrent_calls_share_one_instance(autojump_clock: trio.abc.Clock) -> None:
    async def slow(x: int) -> int:
        await trio.sleep(1)
        return x * 2

    svc = service_fn(slow)
    results: list[int] = []

    async def one(x: int) -> None:
        results.append(await svc(x))

    start = trio.current_time()
    async with trio.open_nursery() as nursery:
        for x in range(10):
            nursery.start_soon(one, x)
    assert sorted(results) == [x * 2 for x in range(10)]
    assert trio.current_time() - start == pytest.approx(1.0)


async def test_middleware_handle_on_the_plain_call() -> None:
    assert await Shout(service_fn(echo))("hey") == "HEY"


async def test_middleware_passes_readiness_through() -> None:
    inner, handle = mock_service()
    svc = Shout(inner)
    handle.hold()
    assert not svc.is_ready()
    with pytest.raises(trio.WouldBlock), svc.ready_nowait():
        pass  # pragma: no cover
    handle.allow(1)
    assert svc.is_ready()

    async def answer() -> None:
        request = await handle.next_request()
        request.respond(request.request + "!")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(answer)
        with svc.ready_nowait() as call:
            assert handle.statistics().reserved == 1
            assert await call("ok") == "OK!"
    assert handle.statistics().reserved == 0
    assert not svc.is_ready()


async def test_middleware_reservation_released_on_cancel(autojump_clock: trio.abc.Clock) -> None:
    inner, handle = mock_service()
    svc = Shout(inner)
    handle.allow(1)
    with trio.move_on_after(1):
        async with svc.ready():
            assert handle.statistics().reserved == 1
            await trio.sleep_forever()
    assert handle.statistics().reserved == 0
    assert handle.statistics().allowance == 1  # the unused reservation came back


async def test_layer_fn_makes_a_layer() -> None:
    layer: Layer = layer_fn(Shout)
    svc = layer.layer(service_fn(echo))
    assert await svc("a") == "A"


async def test_call_alias_accepts_services() -> None:
    call: Call[Any, Any] = service_fn(echo)
    assert await call(3) == 3
