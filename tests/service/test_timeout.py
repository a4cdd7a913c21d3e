"""Timeout: one deadline over readiness and the call, raising Elapsed."""

from __future__ import annotations

import pytest
import trio

import runtime.time
from runtime.service import Elapsed, Timeout, TimeoutLayer, service_fn
from runtime.testing import mock_service

from .conftest import echo


async def test_answer_within_the_deadline_passes_through(autojump_clock: trio.abc.Clock) -> None:
    inner, handle = mock_service()
    svc = Timeout(inner, 2.0)

    async def answer() -> None:
        request = await handle.next_request()
        await trio.sleep(1.5)
        request.respond("done")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(answer)
        assert await svc("go") == "done"


async def test_slow_call_raises_elapsed_and_cancels_the_inner_call(
    autojump_clock: trio.abc.Clock,
) -> None:
    inner, handle = mock_service()
    svc = Timeout(inner, 2.0)
    start = trio.current_time()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_expect_elapsed, svc)
        request = await handle.next_request()
        await request.wait_cancelled()
    assert trio.current_time() - start == pytest.approx(2.0)
    assert request.cancelled


async def _expect_elapsed(svc: Timeout[str, str]) -> None:
    with pytest.raises(Elapsed, match=r"within 2\.0 s"):
        await svc("slow")


async def test_deadline_covers_waiting_for_readiness(autojump_clock: trio.abc.Clock) -> None:
    inner, handle = mock_service()
    handle.hold()
    svc = Timeout(inner, 1.0)
    start = trio.current_time()
    with pytest.raises(Elapsed):
        await svc("never ready")
    assert trio.current_time() - start == pytest.approx(1.0)
    stats = handle.statistics()
    assert stats.calls == 0
    assert stats.reserved == 0


async def test_reservation_and_call_share_one_deadline(autojump_clock: trio.abc.Clock) -> None:
    inner, handle = mock_service()
    handle.hold()
    svc = Timeout(inner, 1.0)
    start = trio.current_time()

    async def unblock_then_stall() -> None:
        await trio.sleep(0.6)
        handle.allow(None)
        request = await handle.next_request()  # reached at 0.6 s; never answered

        await request.wait_cancelled()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(unblock_then_stall)
        with pytest.raises(Elapsed):
            async with svc.ready() as call:
                assert trio.current_time() - start == pytest.approx(0.6)
                await call("x")
    assert trio.current_time() - start == pytest.approx(1.0)
    assert handle.statistics().reserved == 0


async def test_ready_nowait_refuses_when_inner_is_not_ready() -> None:
    inner, handle = mock_service()
    handle.hold()
    svc = Timeout(inner, 1.0)
    assert not svc.is_ready()
    with pytest.raises(trio.WouldBlock), svc.ready_nowait():
        pass  # pragma: no cover


async def test_ready_nowait_call_is_bounded_by_the_deadline(
    autojump_clock: trio.abc.Clock,
) -> None:
    inner, handle = mock_service()
    svc = Timeout(inner, 1.0)
    with pytest.raises(Elapsed), svc.ready_nowait() as call:
        await call("x")
    assert handle.statistics().reserved == 0


async def test_ready_nowait_lets_an_error_of_the_block_through_and_releases(
    autojump_clock: trio.abc.Clock,
) -> None:
    inner, handle = mock_service()
    svc = Timeout(inner, 1.0)
    with pytest.raises(KeyError, match="the block's own"), svc.ready_nowait():
        assert handle.statistics().reserved == 1
        raise KeyError("the block's own")
    assert handle.statistics().reserved == 0
    with svc.ready_nowait():  # a block that ends in time raises nothing
        await trio.sleep(0.5)
    assert handle.statistics().reserved == 0


async def test_ready_nowait_deadline_inside_a_block_that_never_calls(
    autojump_clock: trio.abc.Clock,
) -> None:
    inner, handle = mock_service()
    svc = Timeout(inner, 1.0)
    start = trio.current_time()
    caught: BaseException | None = None
    try:  # not pytest.raises: a trio.Cancelled leaking out of a test does not fail it
        with svc.ready_nowait():
            await trio.sleep_forever()
    except BaseException as exc:
        caught = exc
    assert isinstance(caught, Elapsed), caught
    assert "within 1.0 s" in str(caught)
    assert trio.current_time() - start == pytest.approx(1.0)
    assert handle.statistics().reserved == 0


async def test_ready_nowait_outer_cancellation_stays_a_cancellation(
    autojump_clock: trio.abc.Clock,
) -> None:
    inner, handle = mock_service()
    svc = Timeout(inner, 10.0)
    with trio.move_on_after(1.0) as outer, svc.ready_nowait():
        await trio.sleep_forever()
    assert outer.cancelled_caught
    assert handle.statistics().reserved == 0


async def test_outer_cancellation_is_not_turned_into_elapsed(
    autojump_clock: trio.abc.Clock,
) -> None:
    inner, handle = mock_service()
    svc = Timeout(inner, 10.0)
    with trio.move_on_after(1.0) as outer:
        await svc("x")
    assert outer.cancelled_caught
    assert handle.statistics().reserved == 0


async def test_cancelled_reservation_leaks_nothing(autojump_clock: trio.abc.Clock) -> None:
    inner, handle = mock_service()
    handle.allow(1)
    svc = Timeout(inner, 10.0)
    with trio.move_on_after(1.0):
        async with svc.ready():
            await trio.sleep_forever()
    assert handle.statistics().reserved == 0
    assert handle.statistics().allowance == 1


async def test_elapsed_is_the_runtime_time_error_and_a_timeout_error() -> None:
    assert Elapsed is runtime.time.Elapsed
    assert issubclass(Elapsed, TimeoutError)


async def test_layer_and_validation() -> None:
    svc = TimeoutLayer(3.0).layer(service_fn(echo))
    assert isinstance(svc, Timeout)
    assert svc.duration == 3.0
    assert await svc("ok") == "ok"
    with pytest.raises(ValueError, match="'duration' must be > 0"):
        Timeout(service_fn(echo), -1.0)
    with pytest.raises(ValueError, match="'duration' must be > 0"):
        TimeoutLayer(float("nan"))
    with pytest.raises(TypeError, match="'duration'"):
        TimeoutLayer("1")  # type: ignore[arg-type]
