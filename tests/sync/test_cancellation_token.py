"""runtime.sync.CancellationToken: cancel, wait, children, and Trio cancel scopes."""

from __future__ import annotations

import gc
from collections.abc import Callable

import trio
import trio.testing

from runtime.sync import CancellationToken

from .conftest import raises_cancelled

wait_idle = trio.testing.wait_all_tasks_blocked


async def test_cancel_wakes_waiters() -> None:
    token = CancellationToken()
    woken = 0

    async def wait() -> None:
        nonlocal woken
        await token.cancelled()
        woken += 1

    async with trio.open_nursery() as nursery:
        nursery.start_soon(wait)
        nursery.start_soon(wait)
        await wait_idle()
        assert woken == 0
        token.cancel()
        token.cancel()
    assert woken == 2
    assert token.is_cancelled()
    await token.cancelled()  # at once now
    await raises_cancelled(token.cancelled)


async def test_scope_is_cancelled_by_the_token() -> None:
    token = CancellationToken()
    reached_end = False

    async def worker() -> None:
        nonlocal reached_end
        with token.scope():
            await trio.sleep_forever()
        reached_end = True

    async with trio.open_nursery() as nursery:
        nursery.start_soon(worker)
        await wait_idle()
        token.cancel()
    assert reached_end
    with token.scope() as late:  # a scope made after the cancel is cancelled already
        await trio.lowlevel.checkpoint()
    assert late.cancelled_caught


async def test_children_are_cancelled_with_the_parent_not_the_other_way() -> None:
    parent = CancellationToken()
    child = parent.child_token()
    grandchild = child.child_token()
    sibling = parent.child_token()
    sibling.cancel()
    assert not parent.is_cancelled()
    parent.cancel()
    assert child.is_cancelled()
    assert grandchild.is_cancelled()
    assert parent.child_token().is_cancelled()


async def test_a_scope_from_an_unreferenced_child_is_still_cancelled_by_the_parent() -> None:
    parent = CancellationToken()
    finished = False

    async def worker() -> None:
        nonlocal finished
        with parent.child_token().child_token().scope():
            gc.collect()  # nothing holds the child tokens any more
            await trio.sleep_forever()
        finished = True

    async with trio.open_nursery() as nursery:
        nursery.start_soon(worker)
        await wait_idle()
        parent.cancel()
    assert finished


async def test_dropped_children_and_scopes_are_not_kept() -> None:
    parent = CancellationToken()
    for _ in range(100):
        parent.child_token()
        parent.scope()
    gc.collect()
    assert len(parent._children) == 0
    assert len(parent._scopes) == 0
    assert "active" in repr(parent)


async def test_cancelled_is_a_checkpoint(set_budget: Callable[[int], object]) -> None:
    set_budget(1)
    token = CancellationToken()
    token.cancel()
    with trio.testing.assert_checkpoints():
        await token.cancelled()
