"""A pipeline with channels that shuts itself down: fetch pages, count words, add up.

Three stages joined by two bounded mpsc channels:

    fetch x3 --pages--> count_words --counts--> main

Each stage closes its sending handle when it is done, so the end of the data flows down the
pipeline like the data does: count_words' loop ends once the last fetcher has closed its
handle, and main's loop ends once count_words has closed its own. Nobody has to be told to stop.
examples/pipeline_broken.py forgets one handle and hangs.

The fetchers pretend to wait for the network. The program runs under Trio's mock clock, which
skips ahead whenever every task is waiting, so those waits take no real time.

Run it: python examples/pipeline_fixed.py
"""

from __future__ import annotations

import trio
import trio.testing

import runtime
from runtime.sync import mpsc

SITES = {"alpha": 3, "beta": 2, "gamma": 4}  # pages to fetch from each site

Page = tuple[str, str]  # (site, text)
Count = tuple[str, int]  # (site, words)


async def fetch(site: str, pages: int, tx: mpsc.Sender[Page]) -> None:
    with tx:  # this fetcher's handle is closed when it finishes, however it finishes
        for number in range(pages):
            await trio.sleep(0.1)  # the network
            await tx.send((site, " ".join([site] * (number + 1))))


async def count_words(rx: mpsc.Receiver[Page], tx: mpsc.Sender[Count]) -> None:
    with tx:
        async for site, text in rx:  # ends when every pages sender is closed
            await tx.send((site, len(text.split())))


async def main() -> dict[str, int]:
    pages_tx, pages_rx = mpsc.channel[Page](4)
    counts_tx, counts_rx = mpsc.channel[Count](4)
    totals = dict.fromkeys(SITES, 0)
    started = trio.current_time()
    async with trio.open_nursery() as nursery:
        with pages_tx:  # hand a clone to each fetcher, then close the original
            for site, pages in SITES.items():
                nursery.start_soon(fetch, site, pages, pages_tx.clone())
        nursery.start_soon(count_words, pages_rx, counts_tx)
        async for site, words in counts_rx:  # ends when count_words closes counts_tx
            totals[site] += words
    for site, words in totals.items():
        print(f"{site}: {words} words")
    elapsed = trio.current_time() - started
    print(f"done after {elapsed:.1f}s: every stage finished and closed its channel")
    return totals


if __name__ == "__main__":
    runtime.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
