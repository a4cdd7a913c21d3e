"""What timeouts cost: the runtime's timer wheel against Trio's own mechanisms, in one process.

Trio keeps every cancel-scope deadline in a binary heap, and each pending timeout needs a cancel
scope of its own. The runtime keeps timers on a hierarchical timing wheel. Peers are measured
in the same run, interleaved over several rounds, and the best round of each is compared: the
ratios matter, not the absolute times (these are shared machines).

1. touch:    ``IdleDeadline.touch()`` against assigning ``CancelScope.deadline`` on a live
             scope, with N scopes (and N idle deadlines) pending.      target: >= 20x cheaper
2. timeout:  ``with runtime.time.timeout(s)`` against ``with trio.move_on_after(s)``, enter
             and exit, on an empty wheel/heap and with N timers pending.   target: ratio <= 1.0
3. memory:   extra bytes per pending idle timeout (tracemalloc): an ``IdleDeadline`` on a parked
             task's existing scope, against a ``trio.move_on_after`` scope around the same kind
             of parked task.                                     target: <= 1/4 of Trio's
4. wheel:    insert + cancel on the wheel, ns per pair (public ``call_at``/``cancel`` and the
             entry path that ``timeout()`` uses).
5. lag:      N timers spread over ``--spread`` seconds of real time; p50 and p99 of
             (fire time - deadline).                                       target: p99 < 5 ms

Run: python benchmarks/timers.py [--timers N] [--rounds R] [--spread S] [--skip-lag] [--ops K]
"""

from __future__ import annotations

import argparse
import gc
import math
import time
import tracemalloc
from collections.abc import Callable

import trio
import trio.testing

import runtime
from runtime.time import IdleDeadline, TimerWheel, timeout
from runtime.time._wheel import _Entry, cancel_entry

Results = dict[str, str]


def best_of(rounds: int, fn: Callable[[], float]) -> float:
    return min(fn() for _ in range(rounds))


# -- 1. touch() against CancelScope.deadline = ... ---------------------------------------


async def park_with_scope(period: float, idle: bool, handles: list[object]) -> None:
    """A connection-like task parked in its own scope, with an idle timeout of one kind."""
    with trio.CancelScope() as scope:
        if idle:
            deadline = IdleDeadline(period, scope=scope)
            handles.append(deadline)
            try:
                await trio.sleep_forever()
            finally:
                deadline.close()
        else:
            scope.deadline = trio.current_time() + period
            handles.append(scope)
            await trio.sleep_forever()


async def bench_touch(n: int, rounds: int, ops: int) -> tuple[float, float]:
    scopes: list[trio.CancelScope] = []
    idles: list[IdleDeadline] = []
    async with trio.open_nursery() as nursery:
        for _ in range(n):
            nursery.start_soon(park_with_scope, 3600.0, False, scopes)
            nursery.start_soon(park_with_scope, 3600.0, True, idles)
        await trio.testing.wait_all_tasks_blocked()
        base = trio.current_time() + 3600.0

        def trio_round() -> float:
            start = time.perf_counter()
            for i in range(ops):
                scopes[i % n].deadline = base + i * 1e-6
            return (time.perf_counter() - start) / ops

        def ours_round() -> float:
            start = time.perf_counter()
            for i in range(ops):
                idles[i % n].touch()
            return (time.perf_counter() - start) / ops

        best_trio = best_ours = math.inf
        for _ in range(rounds):
            best_trio = min(best_trio, trio_round())
            best_ours = min(best_ours, ours_round())
        nursery.cancel_scope.cancel()
    return best_trio, best_ours


# -- 2. timeout() against trio.move_on_after() ------------------------------------------


def timeout_rounds(ops: int, rounds: int) -> tuple[float, float]:
    def trio_round() -> float:
        start = time.perf_counter()
        for _ in range(ops):
            with trio.move_on_after(10.0):
                pass
        return (time.perf_counter() - start) / ops

    def ours_round() -> float:
        start = time.perf_counter()
        for _ in range(ops):
            with timeout(10.0):
                pass
        return (time.perf_counter() - start) / ops

    best_trio = best_ours = math.inf
    for _ in range(rounds):
        best_trio = min(best_trio, trio_round())
        best_ours = min(best_ours, ours_round())
    return best_trio, best_ours


async def parked_in_timeout() -> None:
    with timeout(3600.0):
        await trio.sleep_forever()


async def bench_timeout_loaded(n: int, rounds: int, ops: int) -> tuple[float, float]:
    """The same, while n other timeouts of each kind are pending (a server under load)."""
    async with trio.open_nursery() as nursery:
        for _ in range(n):
            nursery.start_soon(park_with_scope, 3600.0, False, [])
            nursery.start_soon(parked_in_timeout)
        await trio.testing.wait_all_tasks_blocked()
        result = timeout_rounds(ops, rounds)
        nursery.cancel_scope.cancel()
    return result


# -- 3. memory per pending idle timeout ---------------------------------------------------


async def parked(kind: str) -> None:
    with trio.CancelScope() as scope:  # the connection's existing scope
        if kind == "idle":
            idle = IdleDeadline(3600.0, scope=scope)
            try:
                await trio.sleep_forever()
            finally:
                idle.close()
        elif kind == "idle-with":
            with IdleDeadline(3600.0, scope=scope):
                await trio.sleep_forever()
        elif kind == "trio":
            with trio.move_on_after(3600.0):
                await trio.sleep_forever()
        else:
            await trio.sleep_forever()


async def memory_of(kind: str, n: int) -> float:
    """Bytes allocated (and still held) by n parked tasks of one kind, per task."""
    TimerWheel.current()  # the wheel exists before measuring, as in a running server
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    async with trio.open_nursery() as nursery:
        for _ in range(n):
            nursery.start_soon(parked, kind)
        await trio.testing.wait_all_tasks_blocked()
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - before
        tracemalloc.stop()
        nursery.cancel_scope.cancel()
    return held / n


async def bench_memory(n: int) -> tuple[float, float, float]:
    await memory_of("none", n // 10)  # warm up allocator free lists
    base = await memory_of("none", n)
    trio_extra = await memory_of("trio", n) - base
    ours_extra = await memory_of("idle", n) - base
    with_extra = await memory_of("idle-with", n) - base
    return trio_extra, ours_extra, with_extra


# -- 4. wheel insert + cancel --------------------------------------------------------------


class _Bare(_Entry):
    __slots__ = ()

    def __init__(self) -> None:
        self._slot = None
        self._when = 0

    def _fire(self, wheel: TimerWheel) -> None:
        pass


def bench_wheel(ops: int, rounds: int, pending: int) -> tuple[float, float]:
    wheel = TimerWheel()
    for i in range(pending):  # a realistic population spread over ~10 s
        wheel.call_at(0.1 + (i % 10_000) * 0.001, lambda: None)

    def public_round() -> float:
        call_at = wheel.call_at
        start = time.perf_counter()
        for i in range(ops):
            call_at(5.0 + (i & 1023) * 0.001, int).cancel()
        return (time.perf_counter() - start) / ops

    def entry_round() -> float:
        entries = [_Bare() for _ in range(1024)]
        insert = wheel.insert
        start = time.perf_counter()
        for i in range(ops):
            entry = entries[i & 1023]
            insert(entry, 5.0 + (i & 1023) * 0.001)
            cancel_entry(entry)
        return (time.perf_counter() - start) / ops

    return best_of(rounds, public_round), best_of(rounds, entry_round)


# -- 5. fire lag under load ----------------------------------------------------------------


async def bench_lag(n: int, spread: float) -> tuple[float, float, float]:
    wheel = TimerWheel.current()
    lags: list[float] = []
    now = trio.current_time
    done = trio.Event()

    def make(deadline: float) -> Callable[[], None]:
        def fire() -> None:
            lags.append(now() - deadline)
            if len(lags) == n:
                done.set()

        return fire

    start = now() + 1.5  # after inserting them all, which takes a while in Python
    step = spread / n
    for i in range(n):
        deadline = start + i * step
        wheel.call_at(deadline, make(deadline))
    await done.wait()
    lags.sort()
    return lags[n // 2], lags[int(n * 0.99)], lags[-1]


# -- report ---------------------------------------------------------------------------------


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


async def main(n: int, rounds: int, spread: float, skip_lag: bool, ops: int) -> None:
    print(f"timers benchmark: N={n}, {rounds} rounds, best round shown (shared machine)")
    print()

    trio_set, touch = await bench_touch(n, rounds, ops)
    ratio = trio_set / touch
    print(f"1. idle timeout activity, {n} scopes and {n} idle deadlines pending")
    print(f"   trio  scope.deadline = t   {trio_set * 1e9:9.0f} ns")
    print(f"   ours  idle.touch()         {touch * 1e9:9.0f} ns")
    print(f"   touch is {ratio:.1f}x cheaper (target >= 20x): {verdict(ratio >= 20)}")
    print()

    empty_trio, empty_ours = timeout_rounds(ops, rounds)
    loaded_trio, loaded_ours = await bench_timeout_loaded(n, rounds, ops)
    worst = max(empty_ours / empty_trio, loaded_ours / loaded_trio)
    print("2. timeout block, enter + exit")
    print(f"   {'':24}{'trio move_on_after':>20}{'runtime timeout':>18}{'ratio':>8}")
    for label, peer, ours in [
        ("nothing else pending", empty_trio, empty_ours),
        (f"{n} others pending", loaded_trio, loaded_ours),
    ]:
        print(f"   {label:<24}{peer * 1e9:17.0f} ns{ours * 1e9:15.0f} ns{ours / peer:8.2f}")
    print(f"   worst ratio {worst:.2f} (target <= 1.0): {verdict(worst <= 1.0)}")
    print()

    trio_bytes, ours_bytes, with_bytes = await bench_memory(n)
    share = ours_bytes / trio_bytes
    print(f"3. extra memory per pending idle timeout ({n} parked tasks, tracemalloc)")
    print(f"   trio  move_on_after scope              {trio_bytes:7.0f} B")
    print(f"   ours  IdleDeadline on scope, close()   {ours_bytes:7.0f} B")
    print(
        f"   ours  the same as a with block         {with_bytes:7.0f} B  (+ the with's __exit__)"
    )
    print(f"   ours/trio = {share:.2f} (target <= 0.25): {verdict(share <= 0.25)}")
    print()

    public, entry = bench_wheel(ops, rounds, n)
    print(f"4. wheel insert + cancel, {n} other timers pending")
    print(f"   call_at() + Timer.cancel()   {public * 1e9:7.0f} ns per pair")
    print(f"   entry insert + cancel        {entry * 1e9:7.0f} ns per pair (the timeout() path)")
    print()

    if skip_lag:
        return
    p50, p99, worst_lag = await bench_lag(n, spread)
    print(f"5. fire lag, {n} timers spread over {spread:g} s of real time")
    print(f"   p50 {p50 * 1e3:.3f} ms   p99 {p99 * 1e3:.3f} ms   max {worst_lag * 1e3:.3f} ms")
    print(f"   p99 < 5 ms: {verdict(p99 < 0.005)}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--timers", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--spread", type=float, default=10.0)
    parser.add_argument("--skip-lag", action="store_true")
    parser.add_argument(
        "--ops",
        type=int,
        default=200_000,
        help="operations per timed loop (default 200000; a smoke run can use far fewer)",
    )
    args = parser.parse_args()
    config = runtime.RuntimeConfig(handle_signals=False)
    runtime.run(
        main, args.timers, args.rounds, args.spread, args.skip_lag, args.ops, config=config
    )
