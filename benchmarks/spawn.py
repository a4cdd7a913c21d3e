"""What structure costs: ``runtime.spawn`` + ``await handle`` against bare Trio.

The peer is the least a Trio program can do to run a task and learn that it finished:
``nursery.start_soon`` plus a ``trio.Event``. Both run in the same process, interleaved over
several rounds, and the best round of each is compared, so the ratio is what matters, not the
absolute times (these are shared machines).

Each measured run starts with ``gc.collect()``, so that no run pays for collections made due by
the runs before it (without it the batch ratio read 0.2 higher and swung from run to run;
with ``gc.freeze()`` instead, only the runtime's side got faster, so it was the one paying).
The collector still runs during every measurement, so each side pays for its own allocations.

Two shapes:
  sequential: spawn one task, keep the handle, await it, repeat (latency of one spawn+join).
  batch:      spawn N tasks, then await them all (throughput of the spawn path).

Target (issue 2): ratio <= 1.5 in both shapes.

Run: python benchmarks/spawn.py [--tasks N] [--rounds R]
"""

from __future__ import annotations

import argparse
import gc
import time
from collections.abc import Awaitable, Callable

import trio
import trio.testing

import runtime


async def work() -> int:
    return 1


async def work_then_set(event: trio.Event) -> None:
    event.set()


async def trio_sequential(nursery: trio.Nursery, n: int) -> None:
    for _ in range(n):
        event = trio.Event()
        nursery.start_soon(work_then_set, event)
        await event.wait()


async def runtime_sequential(nursery: trio.Nursery, n: int) -> None:
    spawn = runtime.spawn
    for _ in range(n):
        handle = spawn(work)  # kept while the task runs, so abort() must work: the scoped path
        await handle


async def work_in_scope_then_set(event: trio.Event) -> None:
    with trio.CancelScope():  # what a task needs so that it alone can be cancelled
        event.set()


async def trio_scoped_sequential(nursery: trio.Nursery, n: int) -> None:
    for _ in range(n):
        event = trio.Event()
        nursery.start_soon(work_in_scope_then_set, event)
        await event.wait()


async def trio_fire_and_forget(nursery: trio.Nursery, n: int) -> None:
    for _ in range(n):
        nursery.start_soon(work)
    await trio.testing.wait_all_tasks_blocked()


async def runtime_fire_and_forget(nursery: trio.Nursery, n: int) -> None:
    spawn = runtime.spawn
    for _ in range(n):
        spawn(work)
    await trio.testing.wait_all_tasks_blocked()


async def trio_batch(nursery: trio.Nursery, n: int) -> None:
    events = [trio.Event() for _ in range(n)]
    for event in events:
        nursery.start_soon(work_then_set, event)
    for event in events:
        await event.wait()


async def runtime_batch(nursery: trio.Nursery, n: int) -> None:
    spawn = runtime.spawn
    handles = [spawn(work) for _ in range(n)]
    for handle in handles:
        await handle


Bench = Callable[[trio.Nursery, int], Awaitable[None]]


async def measure(bench: Bench, nursery: trio.Nursery, n: int) -> float:
    gc.collect()  # each run starts from the same collector state, whoever ran before it
    start = time.perf_counter()
    await bench(nursery, n)
    return (time.perf_counter() - start) / n


async def main(tasks: int, rounds: int) -> None:
    shapes: dict[str, tuple[Bench, Bench]] = {
        "sequential": (trio_sequential, runtime_sequential),
        "batch": (trio_batch, runtime_batch),
        "forget": (trio_fire_and_forget, runtime_fire_and_forget),
        "scoped-seq": (trio_scoped_sequential, runtime_sequential),
    }
    print(f"spawn benchmark: {tasks} tasks x {rounds} rounds, best round shown")
    print("  sequential: spawn+await one at a time   vs start_soon+Event")
    print("  batch:      spawn N, then await all      vs start_soon+Event")
    print("  forget:     spawn, handle dropped        vs bare start_soon")
    print("  scoped-seq: spawn+await one at a time    vs start_soon+Event+CancelScope")
    print("              (the same capability: the peer task can be cancelled on its own)")
    print(f"{'shape':<12}{'trio peer':>24}{'runtime':>22}{'ratio':>8}")
    worst = 0.0
    async with trio.open_nursery() as nursery:
        for peer, ours in shapes.values():  # warm-up: allocator, caches, CPU clock
            await measure(peer, nursery, tasks)
            await measure(ours, nursery, tasks)
        for shape, (peer, ours) in shapes.items():
            best_peer = best_ours = float("inf")
            for _ in range(rounds):
                best_peer = min(best_peer, await measure(peer, nursery, tasks))
                best_ours = min(best_ours, await measure(ours, nursery, tasks))
            ratio = best_ours / best_peer
            if shape in ("sequential", "batch"):
                worst = max(worst, ratio)
            print(
                f"{shape:<12}{best_peer * 1e6:>21.2f} us{best_ours * 1e6:>19.2f} us{ratio:>8.2f}"
            )
    verdict = "PASS" if worst <= 1.5 else "FAIL"
    print(f"worst spawn+await ratio vs start_soon+Event = {worst:.2f} (target <= 1.5): {verdict}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    runtime.run(main, args.tasks, args.rounds)
