"""Your first runtime program: run, spawn, await a handle, and a JoinSet.

Run it: python examples/first_program.py
"""

from __future__ import annotations

import trio

import runtime


async def fetch(name: str, delay: float) -> str:
    """Stand-in for real work: wait a little, then return a result."""
    await trio.sleep(delay)
    return f"{name} after {delay}s"


async def main() -> list[str]:
    # One task, awaited through its handle: the value comes back, or its exception.
    handle = runtime.spawn(fetch, "config", 0.02, name="load-config")
    print("spawned", handle.name)
    print("got", await handle)

    # Many tasks, results in the order they finish. Leaving the block cancels stragglers.
    results = []
    async with runtime.JoinSet[str]() as tasks:
        for name, delay in [("users", 0.03), ("orders", 0.01), ("stock", 0.02)]:
            tasks.spawn(fetch, name, delay)
        async for result in tasks:
            print("finished:", result)
            results.append(result)
    return results


if __name__ == "__main__":
    runtime.run(main)
