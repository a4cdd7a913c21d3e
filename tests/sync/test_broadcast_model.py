"""Model-based test of broadcast: random operations against a log-and-cursors model.

The model keeps the whole log of values sent and, per subscriber, the position of the next
value it will read. A subscriber whose position is more than ``capacity`` behind the end of the
log must get ``Lagged`` with the exact count and continue from the oldest retained value.
Operations: sends (async and nowait), subscribing from either side, receives (blocking in their
own task, and try_), cancelling a waiting receive, cloning and closing senders, closing
subscribers. The real channel and the model are compared at quiet points after every step, and
at the end every sender is closed and every subscriber drained.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import trio
import trio.testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runtime.rt import _coop
from runtime.sync import Lagged, broadcast


@dataclass
class Sub:
    position: int
    closed: bool = False
    waiting: list[int] = field(default_factory=list)  # op ids of receives parked on it


@dataclass
class Model:
    capacity: int
    log: list[int] = field(default_factory=list)
    senders_open: list[bool] = field(default_factory=lambda: [True])
    subs: list[Sub] = field(default_factory=lambda: [Sub(0)])
    outcomes: dict[int, Any] = field(default_factory=dict)

    def read(self, sub: Sub) -> Any:
        """What a receive on ``sub`` returns now, or None if it would wait."""
        if sub.closed:
            return "closed"
        if sub.position < len(self.log):
            head = len(self.log) - self.capacity
            if sub.position < head:
                missed = head - sub.position
                sub.position = head
                return ("lagged", missed)
            value = self.log[sub.position]
            sub.position += 1
            return value
        if not any(self.senders_open):
            return "end"
        return None

    def settle(self) -> None:
        """Waiting receives re-check after a send or a close, in the order they parked."""
        for sub in self.subs:
            still: list[int] = []
            for op in sub.waiting:
                result = self.read(sub)
                if result is None:
                    still.append(op)
                else:
                    self.outcomes[op] = result
            sub.waiting = still

    def send(self, sender: int, value: int) -> Any:
        if not self.senders_open[sender]:
            return "closed"
        self.log.append(value)
        self.settle()
        return sum(not sub.closed for sub in self.subs)


NAMES = [
    *["send"] * 5,
    *["send_nowait"] * 2,
    *["recv"] * 5,
    *["try_recv"] * 3,
    "cancel_recv",
    *["subscribe"] * 2,
    "resubscribe",
    "clone",
    "close_sender",
    "close_sub",
]
OPERATIONS = st.tuples(st.sampled_from(NAMES), st.integers(0, 7))


class Harness:
    def __init__(self, nursery: trio.Nursery, capacity: int) -> None:
        self.nursery = nursery
        self.model = Model(capacity)
        tx, rx = broadcast.channel[int](capacity)
        self.senders = [tx]
        self.subs = [rx]
        self.outcomes: dict[int, Any] = {}
        self.scopes: dict[int, trio.CancelScope] = {}
        self.reads: list[tuple[int, int]] = []  # (op, subscriber) of every receive
        self.starts = [0]  # log position at which each subscriber joined
        self.log: list[int] = []
        self.next_op = 0
        self.next_value = 0

    def op_id(self) -> int:
        self.next_op += 1
        return self.next_op

    def spawn_recv(self, op: int, sub: int) -> None:
        scope = self.scopes[op] = trio.CancelScope()

        async def run() -> None:
            with scope:
                self.outcomes[op] = await _outcome_of(self.subs[sub].recv)
            if scope.cancelled_caught:
                self.outcomes[op] = "cancelled"

        self.nursery.start_soon(run)

    async def apply(self, name: str, arg: int) -> None:
        model = self.model
        sender = arg % len(self.senders)
        sub = arg % len(self.subs)
        op = self.op_id()
        if name in ("send", "send_nowait"):
            self.next_value += 1
            value = self.next_value
            model.outcomes[op] = model.send(sender, value)
            if model.senders_open[sender]:
                self.log.append(value)
            if name == "send":
                self.outcomes[op] = await _outcome_of(self.senders[sender].send, value)
            else:
                self.outcomes[op] = _sync_outcome(self.senders[sender].send_nowait, value)
        elif name == "recv":
            if model.subs[sub].waiting:
                return  # one waiting receive per subscriber: woken tasks run in any order
            self.reads.append((op, sub))
            result = model.read(model.subs[sub])
            if result is None:
                model.subs[sub].waiting.append(op)
            else:
                model.outcomes[op] = result
            self.spawn_recv(op, sub)
        elif name == "try_recv":
            if model.subs[sub].waiting:
                return  # a parked receive is first in line for this subscriber
            self.reads.append((op, sub))
            result = model.read(model.subs[sub])
            model.outcomes[op] = "wouldblock" if result is None else result
            self.outcomes[op] = _sync_outcome(self.subs[sub].try_recv)
        elif name == "cancel_recv":
            parked = [(s, o) for s, m in enumerate(model.subs) for o in m.waiting]
            if not parked:
                return
            which_sub, which_op = parked[arg % len(parked)]
            model.subs[which_sub].waiting.remove(which_op)
            model.outcomes[which_op] = "cancelled"
            self.scopes[which_op].cancel()
        elif name == "subscribe":
            if model.senders_open[sender]:
                model.subs.append(Sub(len(model.log)))
                self.starts.append(len(model.log))
                self.subs.append(self.senders[sender].subscribe())
            else:
                model.outcomes[op] = "closed"
                self.outcomes[op] = _sync_outcome(self.senders[sender].subscribe)
        elif name == "resubscribe":
            model.subs.append(Sub(len(model.log)))
            self.starts.append(len(model.log))
            self.subs.append(self.subs[sub].subscribe())
        elif name == "clone":
            if model.senders_open[sender]:
                model.senders_open.append(True)
                self.senders.append(self.senders[sender].clone())
            else:
                model.outcomes[op] = "closed"
                self.outcomes[op] = _sync_outcome(self.senders[sender].clone)
        elif name == "close_sender":
            model.senders_open[sender] = False
            model.settle()
            self.senders[sender].close()
        elif name == "close_sub":
            target = model.subs[sub]
            if not target.closed:
                target.closed = True
                for parked_op in target.waiting:
                    model.outcomes[parked_op] = "closed"
                target.waiting = []
            self.subs[sub].close()
        await trio.testing.wait_all_tasks_blocked()
        self.check()

    def check(self) -> None:
        assert self.outcomes == self.model.outcomes
        stats = self.senders[0].statistics()
        assert stats.sent == len(self.model.log)
        assert stats.subscribers == sum(not sub.closed for sub in self.model.subs)
        assert stats.open_senders == sum(self.model.senders_open)
        assert stats.receivers_waiting == sum(len(sub.waiting) for sub in self.model.subs)
        for real, modelled in zip(self.subs, self.model.subs, strict=True):
            assert real.pending() == len(self.model.log) - modelled.position

    async def finish(self) -> None:
        for index, sender in enumerate(self.senders):
            sender.close()
            self.model.senders_open[index] = False
        self.model.settle()
        await trio.testing.wait_all_tasks_blocked()
        self.check()
        for index, sub in enumerate(self.subs):
            modelled = self.model.subs[index]
            while True:
                op = self.op_id()
                self.reads.append((op, index))
                result = self.model.read(modelled)
                self.model.outcomes[op] = result
                self.outcomes[op] = _sync_outcome(sub.try_recv)
                self.check()
                if result in ("end", "closed"):
                    break
        self.check_history()

    def check_history(self) -> None:
        """Independently of the model: each subscriber read, in order, exactly the values sent
        after it joined, except the ones Lagged told it it missed; nothing twice."""
        for index, start in enumerate(self.starts):
            position = start
            for op, sub in self.reads:
                outcome = self.outcomes[op]
                if sub != index or outcome in ("wouldblock", "cancelled"):
                    continue
                if isinstance(outcome, tuple):
                    position += outcome[1]
                elif isinstance(outcome, int):
                    assert outcome == self.log[position]
                    position += 1
                else:
                    assert outcome in ("end", "closed")
                    if outcome == "end":
                        assert position == len(self.log)
                    break
            else:
                raise AssertionError(f"subscriber {index} was never drained")


async def _outcome_of(fn: Any, *args: Any) -> Any:
    try:
        return await fn(*args)
    except Lagged as lagged:
        return ("lagged", lagged.missed)
    except trio.EndOfChannel:
        return "end"
    except trio.ClosedResourceError:
        return "closed"


def _sync_outcome(fn: Any, *args: Any) -> Any:
    try:
        result = fn(*args)
    except Lagged as lagged:
        return ("lagged", lagged.missed)
    except trio.EndOfChannel:
        return "end"
    except trio.ClosedResourceError:
        return "closed"
    except trio.WouldBlock:
        return "wouldblock"
    return result if isinstance(result, int) else None


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    capacity=st.integers(1, 4),
    budget=st.sampled_from([1, 2, 128]),
    operations=st.lists(OPERATIONS, min_size=20, max_size=80),
)
def test_broadcast_matches_the_model(
    capacity: int, budget: int, operations: list[tuple[str, int]]
) -> None:
    async def main() -> None:
        async with trio.open_nursery() as nursery:
            harness = Harness(nursery, capacity)
            for name, arg in operations:
                await harness.apply(name, arg)
            await harness.finish()
            nursery.cancel_scope.cancel()

    previous = _coop.set_budget(budget)
    try:
        trio.run(main)
    finally:
        _coop.set_budget(previous)


def test_every_subscriber_sees_every_value_in_order_when_keeping_up() -> None:
    """The headline property without lag: several subscribers, each reading everything."""

    async def main() -> None:
        tx, rx = broadcast.channel[int](4)
        subscribers = [rx, tx.subscribe(), rx.subscribe()]
        seen: list[list[int]] = [[] for _ in subscribers]

        async def read(index: int) -> None:
            async for value in subscribers[index]:
                seen[index].append(value)

        async with trio.open_nursery() as nursery:
            for index in range(len(subscribers)):
                nursery.start_soon(read, index)
            await trio.testing.wait_all_tasks_blocked()
            with tx:
                for value in range(1000):
                    await tx.send(value)
                    if value % 4 == 3:
                        await trio.testing.wait_all_tasks_blocked()
        assert seen == [list(range(1000))] * 3

    trio.run(main)
