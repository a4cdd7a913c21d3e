"""Shared state done wrong, twice: lost updates without a lock, a convoy with one.

A bank keeps a balance per account in a dict that every task can see. Each deposit must
first be authorized by a (pretend) fraud service, a network call that takes half a second.
100 deposits of 10 arrive at once, spread over four accounts.

1. No lock: each deposit reads the balance, awaits the authorization, then writes the balance
   plus 10. The await in the middle lets every other deposit read the same old balance, so
   most updates are overwritten: the money is simply gone.
2. One lock, held across the await: the totals are right now, but the lock is held during
   every half-second network call, so the deposits queue behind it one at a time and take
   100 times as long.

examples/shared_state_fixed.py keeps the await out of the critical section.

The program runs under Trio's mock clock, so the "network" takes no real time and the timings
it prints are the same on every run.

Run it: python examples/shared_state_broken.py [--deposits N]
"""

from __future__ import annotations

import argparse

import trio
import trio.testing

import runtime
from runtime.time import sleep

ACCOUNTS = ("alice", "bob", "carol", "dave")
AMOUNT = 10
AUTHORIZE_SECONDS = 0.5


async def authorize(account: str, amount: int) -> None:
    await sleep(AUTHORIZE_SECONDS)  # the fraud service, over the network


async def deposit_unlocked(bank: dict[str, int], account: str, amount: int) -> None:
    balance = bank[account]  # read ...
    await authorize(account, amount)  # ... every other task runs here ...
    bank[account] = balance + amount  # ... write: whatever they wrote is overwritten


async def deposit_lock_held(
    bank: dict[str, int], lock: trio.Lock, account: str, amount: int
) -> None:
    async with lock:
        balance = bank[account]
        await authorize(account, amount)  # the mistake: half a second with the lock held
        bank[account] = balance + amount


async def run_deposits(deposits: int, *, lock: trio.Lock | None) -> None:
    bank = dict.fromkeys(ACCOUNTS, 0)
    started = trio.current_time()
    async with trio.open_nursery() as nursery:
        for number in range(deposits):
            account = ACCOUNTS[number % len(ACCOUNTS)]
            if lock is None:
                nursery.start_soon(deposit_unlocked, bank, account, AMOUNT)
            else:
                nursery.start_soon(deposit_lock_held, bank, lock, account, AMOUNT)
    took = trio.current_time() - started
    total, expected = sum(bank.values()), deposits * AMOUNT
    lost = (expected - total) // AMOUNT
    how = "no lock" if lock is None else "lock held across the await"
    print(f"{how}: {deposits} deposits took {took:.1f}s, total {total} of {expected}", end="")
    print(f" ({lost} updates lost)" if lost else "")


async def main(deposits: int = 100) -> None:
    await run_deposits(deposits, lock=None)
    await run_deposits(deposits, lock=trio.Lock())


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deposits", type=int, default=100, help="deposits to make (100)")
    args = parser.parse_args()
    runtime.run(main, args.deposits, clock=trio.testing.MockClock(autojump_threshold=0))
