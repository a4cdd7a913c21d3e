"""The pipeline of examples/pipeline_fixed.py with one mistake: it never finishes.

main hands a clone of the pages sender to each fetcher but keeps the original open. When the
fetchers are done and have closed their clones, the pages channel still has one open sender,
so count_words waits for more pages that will never come, and main waits for count_words.
Nothing fails; everything just waits.

So that running it does not hang your terminal, main gives the pipeline 60 seconds and then
says why it is stuck. The mock clock skips those 60 seconds as soon as every task is waiting.

Run it: python examples/pipeline_broken.py
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
    with tx:
        for number in range(pages):
            await trio.sleep(0.1)  # the network
            await tx.send((site, " ".join([site] * (number + 1))))


async def count_words(rx: mpsc.Receiver[Page], tx: mpsc.Sender[Count]) -> None:
    with tx:
        async for site, text in rx:
            await tx.send((site, len(text.split())))


async def main() -> dict[str, int]:
    pages_tx, pages_rx = mpsc.channel[Page](4)
    counts_tx, counts_rx = mpsc.channel[Count](4)
    totals = dict.fromkeys(SITES, 0)
    with trio.move_on_after(60) as watchdog:
        async with trio.open_nursery() as nursery:
            for site, pages in SITES.items():
                nursery.start_soon(fetch, site, pages, pages_tx.clone())
            # The mistake: pages_tx itself is still open, and nothing will ever close it.
            nursery.start_soon(count_words, pages_rx, counts_tx)
            async for site, words in counts_rx:
                totals[site] += words
    for site, words in totals.items():
        print(f"{site}: {words} words")
    if watchdog.cancelled_caught:
        open_senders = pages_rx.statistics().open_senders
        print(
            f"stuck for 60s: the pages channel still has {open_senders} open sender, "
            "so count_words waits for more pages forever"
        )
    return totals


if __name__ == "__main__":
    runtime.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
