"""Timeouts and cancellation: hard and soft limits, cleanup, one deadline for many tries.

Run it: python examples/timeouts.py
"""

from __future__ import annotations

import trio

import runtime
from runtime.time import Elapsed, move_on_after, sleep, timeout, timeout_at


async def fetch(name: str, seconds: float) -> str:
    """Stand-in for a backend that answers after `seconds`."""
    await sleep(seconds)
    return f"{name}: answered after {seconds}s"


async def fetch_carefully(name: str, seconds: float) -> str:
    """A fetch that must say goodbye to the backend, even when it is cancelled."""
    try:
        return await fetch(name, seconds)
    finally:
        # We may be here *because* we were cancelled: any await would raise Cancelled at
        # once. A shielded scope lets the cleanup run, and its own timeout bounds it.
        with move_on_after(0.05, shield=True) as cleanup:
            await sleep(0.01)  # e.g. send a "cancel" message to the backend
        print(f"{name}: said goodbye" if not cleanup.expired else f"{name}: goodbye timed out")


async def main() -> None:
    # 1. A hard limit: the block is cancelled, and leaving it raises Elapsed.
    try:
        with timeout(0.2):
            print(await fetch("fast", 0.1))
            print(await fetch("slow", 0.5))
    except Elapsed:
        print("slow: gave up after 0.2s")

    # 2. A soft limit: the block just ends; the scope says whether time ran out.
    with move_on_after(0.2) as scope:
        print(await fetch("slow", 0.5))
    print("moved on without slow" if scope.expired else "slow made it")

    # 3. Cancellation arrives at the next checkpoint; finally blocks still run.
    with move_on_after(0.2):
        print(await fetch_carefully("careful", 0.5))

    # 4. One deadline for the whole job, a shorter limit for each try.
    deadline = trio.current_time() + 1.0
    with timeout_at(deadline):
        for attempt, seconds in enumerate([0.3, 0.3, 0.05], start=1):
            with move_on_after(0.1):
                print(await fetch(f"try {attempt}", seconds))
                break
            print(f"try {attempt}: no answer within 0.1s, retrying")

    # 5. A deadline you can move: each piece of progress buys more time.
    with timeout(0.3) as scope:
        for chunk in range(1, 4):
            await sleep(0.2)
            scope.deadline = trio.current_time() + 0.3
            print(f"chunk {chunk} arrived, deadline moved")
    print("download complete")


if __name__ == "__main__":
    runtime.run(main)
