"""runtime.testing.mock_service: take requests, respond, fail, allow N, hold."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from runtime.testing import mock_service


async def test_take_respond_and_fail() -> None:
    svc, handle = mock_service()
    results: list[object] = []

    async def call(request: str) -> None:
        try:
            results.append(await svc(request))
        except KeyError as exc:
            results.append(exc)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(call, "a")
        first = await handle.next_request()
        assert first.request == "a"
        first.respond(1)
        nursery.start_soon(call, "b")
        second = await handle.next_request()
        second.fail(KeyError("b"))
    assert results[0] == 1
    assert isinstance(results[1], KeyError)
    with pytest.raises(RuntimeError, match="already answered"):
        first.respond(2)
    assert handle.statistics().calls == 2


async def test_allow_n_then_not_ready() -> None:
    svc, handle = mock_service()
    assert svc.is_ready()
    handle.allow(2)
    async with trio.open_nursery() as nursery:
        for n in range(3):
            nursery.start_soon(svc, n)
        await trio.testing.wait_all_tasks_blocked()
        assert handle.statistics().calls == 2
        assert not svc.is_ready()
        handle.allow(1)
        await trio.testing.wait_all_tasks_blocked()
        assert handle.statistics().calls == 3
        for _ in range(3):
            handle.next_request_nowait().respond(None)
    with pytest.raises(trio.WouldBlock):
        handle.next_request_nowait()
    with pytest.raises(ValueError, match="allow"):
        handle.allow(-1)


async def test_hold_blocks_reservations_until_allowed(autojump_clock: trio.abc.Clock) -> None:
    svc, handle = mock_service()
    handle.hold()
    with pytest.raises(trio.WouldBlock), svc.ready_nowait():
        pass  # pragma: no cover
    entered_at: list[float] = []

    async def reserve() -> None:
        async with svc.ready():
            entered_at.append(trio.current_time())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(reserve)
        await trio.sleep(2.0)
        assert entered_at == []
        handle.allow(1)
    assert entered_at == [pytest.approx(2.0)]
    assert handle.statistics().allowance == 1  # unused reservation gave its unit back


async def test_cancelled_caller_is_visible_and_dropped(autojump_clock: trio.abc.Clock) -> None:
    svc, handle = mock_service()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(svc, "taken")
        taken = await handle.next_request()
        nursery.start_soon(svc, "not taken")
        await trio.testing.wait_all_tasks_blocked()
        nursery.cancel_scope.cancel()
    assert taken.cancelled
    taken.respond("ignored")  # answering a cancelled call does nothing
    assert handle.statistics().queued == 0  # the untaken one was dropped
    assert "taken" in repr(taken)


async def test_reserved_call_used_twice_waits_for_allowance_the_second_time(
    autojump_clock: trio.abc.Clock,
) -> None:
    svc, handle = mock_service()
    handle.allow(1)
    async with svc.ready() as call, trio.open_nursery() as nursery:
        nursery.start_soon(call, 1)
        (await handle.next_request()).respond(None)
        await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(call, 2)
        await trio.sleep(1.0)
        assert handle.statistics().calls == 1
        handle.allow(1)
        (await handle.next_request()).respond(None)
    assert handle.statistics().reserved == 0
