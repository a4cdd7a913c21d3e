"""Shared state done right: the slow await outside, a critical section with no await inside.

The bank of examples/shared_state_broken.py, fixed in two ways:

1. Authorize first, with nothing held, then update the balance in one step with no await
   in it. Between two awaits no other task runs (Trio switches tasks only at a checkpoint),
   so that update cannot be interleaved with another, and it needs no lock at all.
2. One task owns the accounts. Depositors authorize, then send the deposit to the owner
   through an mpsc channel and wait for the new balance on a oneshot channel. Only the owner
   ever touches the dict.

Both are as fast as the unlocked version and lose nothing. With --limit N, at most N
authorizations run at once (a Semaphore around the network call only, never around the
dict), which is how you respect a backend's limit without turning it into a lock.

Run it: python examples/shared_state_fixed.py [--deposits N] [--limit N]
"""

from __future__ import annotations

import argparse

import trio
import trio.testing

import runtime
from runtime.sync import Semaphore, mpsc, oneshot
from runtime.time import sleep

ACCOUNTS = ("alice", "bob", "carol", "dave")
AMOUNT = 10
AUTHORIZE_SECONDS = 0.5

Deposit = tuple[str, int, oneshot.Sender[int]]  # (account, amount, where to send the balance)


async def authorize(account: str, amount: int, limit: Semaphore) -> None:
    async with limit:  # a permit for the call, and only for the call
        await sleep(AUTHORIZE_SECONDS)  # the fraud service, over the network


async def deposit(bank: dict[str, int], account: str, amount: int, limit: Semaphore) -> None:
    await authorize(account, amount, limit)  # the slow part, with nothing held
    bank[account] += amount  # read and write with no await between: nobody can interleave


async def bank_owner(bank: dict[str, int], requests: mpsc.Receiver[Deposit]) -> None:
    async for account, amount, reply in requests:  # ends when every depositor has closed
        bank[account] += amount
        reply.send(bank[account])


async def deposit_via_owner(
    requests: mpsc.Sender[Deposit], account: str, amount: int, limit: Semaphore
) -> int:
    with requests:
        await authorize(account, amount, limit)
        reply, balance = oneshot.channel[int]()
        await requests.send((account, amount, reply))
        return await balance


def report(how: str, deposits: int, started: float, bank: dict[str, int]) -> None:
    took = trio.current_time() - started
    total, expected = sum(bank.values()), deposits * AMOUNT
    print(f"{how}: {deposits} deposits took {took:.1f}s, total {total} of {expected}")


async def run_deposits(deposits: int, limit: int | None) -> None:
    bank = dict.fromkeys(ACCOUNTS, 0)
    started = trio.current_time()
    authorizations = Semaphore(limit or deposits)  # no --limit: all at once
    async with trio.open_nursery() as nursery:
        for number in range(deposits):
            account = ACCOUNTS[number % len(ACCOUNTS)]
            nursery.start_soon(deposit, bank, account, AMOUNT, authorizations)
    report("authorize, then update with no await", deposits, started, bank)


async def run_owner(deposits: int, limit: int | None) -> None:
    bank = dict.fromkeys(ACCOUNTS, 0)
    started = trio.current_time()
    authorizations = Semaphore(limit or deposits)  # no --limit: all at once
    requests_tx, requests_rx = mpsc.channel[Deposit](16)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(bank_owner, bank, requests_rx)
        with requests_tx:  # each depositor gets a clone; the original closes here
            for number in range(deposits):
                account = ACCOUNTS[number % len(ACCOUNTS)]
                sender = requests_tx.clone()
                nursery.start_soon(deposit_via_owner, sender, account, AMOUNT, authorizations)
    report("one task owns the accounts", deposits, started, bank)


async def main(deposits: int = 100, limit: int | None = None) -> None:
    await run_deposits(deposits, limit)
    await run_owner(deposits, limit)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deposits", type=int, default=100, help="deposits to make (100)")
    parser.add_argument("--limit", type=int, help="authorizations at once (no limit)")
    args = parser.parse_args()
    clock = trio.testing.MockClock(autojump_threshold=0)
    runtime.run(main, args.deposits, args.limit, clock=clock)
