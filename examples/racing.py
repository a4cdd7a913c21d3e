"""Racing: what Tokio's select! does, done with nurseries and cancel scopes.

Six races, one after the other:

1. first of three mirrors: the first download to finish wins, the others are cancelled, and
   their cleanup (a shielded goodbye, with a bound) runs before the race returns;
2. an answer against a timeout (move_on_after);
3. whichever of two events is set first (trio.Event);
4. two channels read as one stream: merged, not raced;
5. a hedged request: runtime.service.Hedge sends a copy of a slow request;
6. a shutdown racing the work: a worker finishes the job in hand, then stops taking more.

Everything runs under Trio's mock clock, so the waits take no real time and the timings it
prints are the same on every run.

Run it: python examples/racing.py [--patience SECONDS] [--no-shield]
"""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable
from functools import partial
from typing import TypeVar

import trio
import trio.testing

import runtime
from runtime.service import Hedge, service_fn
from runtime.sync import mpsc
from runtime.time import move_on_after, sleep

T = TypeVar("T")


async def race(*racers: Callable[[], Awaitable[T]]) -> tuple[int, T]:
    """Run every racer at once; return (index, result) of the first to finish.

    The others are cancelled, and the race returns only once they have finished unwinding
    (their ``finally`` blocks and shielded cleanups included). An exception from any racer
    cancels the rest and comes out of the nursery (in an ExceptionGroup).
    """
    winner: list[tuple[int, T]] = []

    async def run(index: int, racer: Callable[[], Awaitable[T]]) -> None:
        result = await racer()
        if not winner:  # two may finish in the same tick: the first to get here wins
            winner.append((index, result))
            nursery.cancel_scope.cancel()

    async with trio.open_nursery() as nursery:
        for index, racer in enumerate(racers):
            nursery.start_soon(run, index, racer)
    return winner[0]


# 1. First of N --------------------------------------------------------------------------------

MIRRORS = {"mirror-a": 0.3, "mirror-b": 0.1, "mirror-c": 0.2}  # seconds each takes


async def download(mirror: str, seconds: float, goodbyes: list[str], shield: bool) -> str:
    try:
        await sleep(seconds)
        return mirror
    except trio.Cancelled:  # we lost the race; say goodbye, then let the Cancelled go on
        with move_on_after(0.05, shield=shield):  # shielded, so it can await; bounded
            await sleep(0.01)  # tell the mirror we are closing the connection
            goodbyes.append(mirror)
        raise


async def first_of_mirrors(shield: bool) -> None:
    goodbyes: list[str] = []
    started = trio.current_time()
    downloads = [partial(download, m, s, goodbyes, shield) for m, s in MIRRORS.items()]
    _, mirror = await race(*downloads)
    took = trio.current_time() - started
    said = " and ".join(sorted(goodbyes)) or "nobody"
    print(f"first of three: {mirror} won; goodbyes from {said}; returned after {took:.2f}s")


# 2. An answer or a timeout ----------------------------------------------------------------------


async def ask_backend() -> int:
    await sleep(0.5)
    return 42


async def answer_or_timeout(patience: float) -> None:
    started = trio.current_time()
    with move_on_after(patience) as scope:
        answer = await ask_backend()
    took = trio.current_time() - started
    if scope.expired:
        print(f"answer or timeout: no answer within {patience:g}s, used the cached value")
    else:
        print(f"answer or timeout: {answer} after {took:.1f}s")


# 3. Whichever of two events ------------------------------------------------------------------


async def set_after(seconds: float, event: trio.Event) -> None:
    await sleep(seconds)
    event.set()


async def first_event() -> None:
    answer_ready, hung_up = trio.Event(), trio.Event()
    started = trio.current_time()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(set_after, 0.4, answer_ready)
        nursery.start_soon(set_after, 0.25, hung_up)
        which, _ = await race(answer_ready.wait, hung_up.wait)
        nursery.cancel_scope.cancel()  # nobody needs the answer now
    what = ["the answer came", "the caller hung up"][which]
    print(f"two events: {what} first, after {trio.current_time() - started:.2f}s")


# 4. Two channels as one stream -------------------------------------------------------------


async def produce(every: float, count: int, tx: mpsc.Sender[int]) -> None:
    with tx:
        for number in range(1, count + 1):
            await sleep(every)
            await tx.send(number)


async def forward(tag: str, rx: mpsc.Receiver[int], merged: mpsc.Sender[str]) -> None:
    with merged:
        async for number in rx:
            await merged.send(f"{tag} {number}")


async def merged_channels() -> None:
    orders_tx, orders_rx = mpsc.channel[int](4)
    refunds_tx, refunds_rx = mpsc.channel[int](4)
    merged_tx, merged_rx = mpsc.channel[str](4)
    seen = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(produce, 0.2, 3, orders_tx)  # at 0.2, 0.4, 0.6
        nursery.start_soon(produce, 0.25, 2, refunds_tx)  # at 0.25, 0.5
        with merged_tx:
            nursery.start_soon(forward, "order", orders_rx, merged_tx.clone())
            nursery.start_soon(forward, "refund", refunds_rx, merged_tx.clone())
        async for item in merged_rx:  # ends when both forwarders are done
            seen.append(item)
    print(f"two channels, merged: {', '.join(seen)}")


# 5. A hedged request --------------------------------------------------------------------------


async def hedged_request() -> None:
    calls = 0

    async def backend(request: int) -> str:
        nonlocal calls
        calls += 1
        await sleep(2.0 if calls == 6 else 0.1)  # the 6th call hits a slow disk
        return f"reply {request}"

    hedge = Hedge(service_fn(backend), min_data_points=5)
    for request in range(1, 6):  # five quick calls: now the p90 latency is 0.1s
        await hedge(request)
    started = trio.current_time()
    reply = await hedge(6)
    took = trio.current_time() - started
    copies = hedge.statistics().hedged
    print(f"hedged: {reply} after {took:.1f}s instead of 2.0s ({copies} copy sent, {calls} calls)")


# 6. A shutdown racing the work ---------------------------------------------------------------


async def handle(job: int) -> None:
    await sleep(0.4)


async def work(jobs: mpsc.Receiver[int], finished: list[float]) -> None:
    async for job in jobs:  # a cancelled recv takes nothing: the job stays queued
        with move_on_after(2, shield=True):  # a shutdown can't cut a job short; 2s can
            await handle(job)
            finished.append(trio.current_time())


async def sigterm_after(seconds: float) -> None:
    await sleep(seconds)
    runtime.current().shutdown(reason="SIGTERM")  # what a real SIGTERM does


async def worker_until_shutdown() -> None:
    rt = runtime.current()
    jobs_tx, jobs_rx = mpsc.channel[int](10)
    for job in range(1, 11):
        jobs_tx.try_send(job)
    finished: list[float] = []  # when each job was done
    started = trio.current_time()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(sigterm_after, 1.0)
        await race(lambda: work(jobs_rx, finished), rt.shutdown_requested)
    queued = jobs_rx.statistics().buffered
    lost = 10 - len(finished) - queued
    last = finished[-1] - started
    print(
        f"shutdown at 1.0s: {len(finished)} jobs done (the last at {last:.1f}s), "
        f"{queued} still queued, {lost} lost"
    )


async def main(patience: float = 0.3, shield: bool = True) -> None:
    await first_of_mirrors(shield)
    await answer_or_timeout(patience)
    await first_event()
    await merged_channels()
    await hedged_request()
    await worker_until_shutdown()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patience", type=float, default=0.3, help="seconds to wait (0.3)")
    parser.add_argument("--no-shield", action="store_true", help="unshielded goodbyes")
    args = parser.parse_args()
    clock = trio.testing.MockClock(autojump_threshold=0)
    runtime.run(main, args.patience, not args.no_shield, clock=clock)
