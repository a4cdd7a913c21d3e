"""Model-based test of mpsc: random operations against a plain deque model.

Each example opens a channel and applies a random list of operations: sends (blocking and
try_), receives, reserves and permit sends/releases, cancellations of whatever is waiting,
clones and closes of either side. Blocking operations run in their own tasks; after every step
the test waits until all tasks are blocked, so the real channel and the model are compared at
quiet points where the outcome of every operation is determined. The model predicts each
operation's result (value, error, still waiting, cancelled) and the channel's counters; at the
end every sender and permit is closed and the receiver drained, and the sequence received must
be exactly the model's: nothing lost, nothing duplicated, in order.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import trio
import trio.testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runtime.rt import _coop
from runtime.sync import mpsc

WAITING = "waiting"


@dataclass
class Pending:
    op_id: int
    sender: int
    value: Any  # an int for a send, None for a reserve


@dataclass
class Model:
    capacity: float
    buffer: deque[int] = field(default_factory=deque)
    waiting: list[Pending] = field(default_factory=list)
    receiver: int | None = None  # op id of the waiting recv
    senders_open: list[bool] = field(default_factory=lambda: [True])
    rx_closed: bool = False
    reserved: int = 0
    permits_open: list[bool] = field(default_factory=list)
    outcomes: dict[int, Any] = field(default_factory=dict)
    received: list[int] = field(default_factory=list)

    def has_room(self) -> bool:
        return len(self.buffer) + self.reserved < self.capacity and not self.waiting

    def ended(self) -> bool:
        return self.rx_closed or (not any(self.senders_open) and self.reserved == 0)

    def push(self, value: int) -> None:
        if self.receiver is not None:
            self.deliver(self.receiver, value)
            self.receiver = None
        else:
            self.buffer.append(value)

    def deliver(self, op_id: int, value: int) -> None:
        self.outcomes[op_id] = value
        self.received.append(value)

    def slot_freed(self) -> None:
        while self.waiting:
            head = self.waiting.pop(0)
            if head.value is None:
                self.reserved += 1
                self.permits_open.append(True)
                self.outcomes[head.op_id] = ("permit", len(self.permits_open) - 1)
                return
            self.outcomes[head.op_id] = "sent"
            if self.receiver is None:
                self.buffer.append(head.value)
                return
            self.push(head.value)  # straight to the receiver: the slot is still free
        self.maybe_end()

    def maybe_end(self) -> None:
        if self.receiver is not None and self.ended():
            self.outcomes[self.receiver] = "end"
            self.receiver = None

    def take(self) -> int:
        if self.buffer:
            value = self.buffer.popleft()
            if self.waiting:
                self.slot_freed()
            return value
        head = self.waiting.pop(0)
        self.outcomes[head.op_id] = "sent"
        return int(head.value)

    # operations --------------------------------------------------------------------------

    def send(self, op_id: int, sender: int, value: int, *, wait: bool) -> None:
        if not self.senders_open[sender]:
            self.outcomes[op_id] = "closed"
        elif self.rx_closed:
            self.outcomes[op_id] = "broken"
        elif (self.receiver is not None and not self.waiting) or self.has_room():
            self.push(value)
            self.outcomes[op_id] = "sent"
        elif wait:
            self.waiting.append(Pending(op_id, sender, value))
        else:
            self.outcomes[op_id] = "wouldblock"

    def reserve(self, op_id: int, sender: int, *, wait: bool) -> None:
        if not self.senders_open[sender]:
            self.outcomes[op_id] = "closed"
        elif self.rx_closed:
            self.outcomes[op_id] = "broken"
        elif self.has_room():
            self.reserved += 1
            self.permits_open.append(True)
            self.outcomes[op_id] = ("permit", len(self.permits_open) - 1)
        elif wait:
            self.waiting.append(Pending(op_id, sender, None))
        else:
            self.outcomes[op_id] = "wouldblock"

    def recv(self, op_id: int, *, wait: bool) -> None:
        if self.buffer or (self.capacity == 0 and self.waiting):
            self.deliver(op_id, self.take())
        elif self.ended():
            self.outcomes[op_id] = "end"
        elif wait:
            self.receiver = op_id
        else:
            self.outcomes[op_id] = "wouldblock"

    def cancel_waiting(self, index: int) -> None:
        pending = self.waiting.pop(index % len(self.waiting))
        self.outcomes[pending.op_id] = "cancelled"

    def cancel_recv(self) -> None:
        assert self.receiver is not None
        self.outcomes[self.receiver] = "cancelled"
        self.receiver = None

    def clone(self, sender: int) -> bool:
        if not self.senders_open[sender]:
            return False
        self.senders_open.append(True)
        return True

    def close_sender(self, sender: int) -> None:
        if not self.senders_open[sender]:
            return
        self.senders_open[sender] = False
        for pending in [p for p in self.waiting if p.sender == sender]:
            self.waiting.remove(pending)
            self.outcomes[pending.op_id] = "closed"
        self.maybe_end()

    def close_receiver(self) -> None:
        if self.rx_closed:
            return
        self.rx_closed = True
        for pending in self.waiting:
            self.outcomes[pending.op_id] = "broken"
        self.waiting.clear()
        self.maybe_end()

    def permit_send(self, permit: int, value: int) -> str:
        self.permits_open[permit] = False
        self.reserved -= 1
        if self.rx_closed:
            self.slot_freed()
            return "broken"
        had_receiver = self.receiver is not None
        self.push(value)
        if had_receiver:
            self.slot_freed()
        return "sent"

    def permit_release(self, permit: int) -> None:
        self.permits_open[permit] = False
        self.reserved -= 1
        self.slot_freed()


# Names repeated to weight them: sends and receives drive the interesting states (a full
# buffer, a queue of waiting senders), while a receiver close ends most of the story.
OPERATION_NAMES = [
    *["send"] * 6,
    *["try_send"] * 2,
    *["reserve"] * 3,
    *["try_reserve"] * 2,
    *["recv"] * 4,
    *["try_recv"] * 3,
    *["cancel_waiting"] * 2,
    "cancel_recv",
    *["permit_send"] * 2,
    *["permit_release"] * 2,
    *["clone"] * 2,
    *["close_sender"] * 2,
    "close_receiver",
]
OPERATIONS = st.tuples(st.sampled_from(OPERATION_NAMES), st.integers(0, 7))


class Harness:
    """Drives the real channel next to the model and compares them at quiet points."""

    def __init__(self, nursery: trio.Nursery, capacity: int | None) -> None:
        self.nursery = nursery
        self.model = Model(math.inf if capacity is None else capacity)
        if capacity is None:
            tx, self.rx = mpsc.unbounded_channel[int]()
        else:
            tx, self.rx = mpsc.channel[int](capacity)
        self.senders = [tx]
        self.permits: list[mpsc.Permit[int]] = []
        self.outcomes: dict[int, Any] = {}
        self.scopes: dict[int, trio.CancelScope] = {}
        self.recv_op: int | None = None
        self.next_op = 0
        self.next_value = 0
        self.received: list[int] = []
        self.values: dict[int, int] = {}  # op id -> value, for every send of any kind

    def op_id(self) -> int:
        self.next_op += 1
        return self.next_op

    def value(self) -> int:
        self.next_value += 1
        return self.next_value

    def spawn(self, op_id: int, fn: Any, *args: Any) -> None:
        scope = self.scopes[op_id] = trio.CancelScope()

        async def run() -> None:
            with scope:
                try:
                    result = await fn(*args)
                except trio.ClosedResourceError:
                    result = "closed"
                except trio.BrokenResourceError:
                    result = "broken"
                except trio.EndOfChannel:
                    result = "end"
                self.outcomes[op_id] = result
            if scope.cancelled_caught:
                self.outcomes[op_id] = "cancelled"

        self.nursery.start_soon(run)

    async def send(self, sender: int, value: int) -> str:
        await self.senders[sender].send(value)
        return "sent"

    async def reserve(self, sender: int) -> tuple[str, int]:
        permit = await self.senders[sender].reserve()
        self.permits.append(permit)
        return ("permit", len(self.permits) - 1)

    async def recv(self) -> int:
        value = await self.rx.recv()
        self.received.append(value)
        return value

    def sync(self, op_id: int, fn: Any, *args: Any) -> None:
        try:
            self.outcomes[op_id] = fn(*args)
        except trio.WouldBlock:
            self.outcomes[op_id] = "wouldblock"
        except trio.ClosedResourceError:
            self.outcomes[op_id] = "closed"
        except trio.BrokenResourceError:
            self.outcomes[op_id] = "broken"
        except trio.EndOfChannel:
            self.outcomes[op_id] = "end"

    def try_send(self, sender: int, value: int) -> str:
        self.senders[sender].try_send(value)
        return "sent"

    def try_reserve(self, sender: int) -> tuple[str, int]:
        self.permits.append(self.senders[sender].try_reserve())
        return ("permit", len(self.permits) - 1)

    def try_recv(self) -> int:
        value = self.rx.try_recv()
        self.received.append(value)
        return value

    async def apply(self, name: str, arg: int) -> None:
        model = self.model
        senders = len(self.senders)
        can_reserve = model.capacity > 0
        if name in ("send", "try_send"):
            op, value = self.op_id(), self.value()
            self.values[op] = value
            model.send(op, arg % senders, value, wait=name == "send")
            if name == "send":
                self.spawn(op, self.send, arg % senders, value)
            else:
                self.sync(op, self.try_send, arg % senders, value)
        elif name in ("reserve", "try_reserve") and can_reserve:
            op = self.op_id()
            model.reserve(op, arg % senders, wait=name == "reserve")
            if name == "reserve":
                self.spawn(op, self.reserve, arg % senders)
            else:
                self.sync(op, self.try_reserve, arg % senders)
        elif name == "recv" and model.receiver is None:
            op = self.op_id()
            model.recv(op, wait=True)
            self.spawn(op, self.recv)
            self.recv_op = op
        elif name == "try_recv":
            op = self.op_id()
            model.recv(op, wait=False)
            self.sync(op, self.try_recv)
        elif name == "cancel_waiting" and model.waiting:
            pending = model.waiting[arg % len(model.waiting)]
            model.cancel_waiting(arg)
            self.scopes[pending.op_id].cancel()
        elif name == "cancel_recv" and model.receiver is not None:
            op = model.receiver
            model.cancel_recv()
            self.scopes[op].cancel()
        elif name in ("permit_send", "permit_release"):
            open_permits = [i for i, is_open in enumerate(model.permits_open) if is_open]
            if not open_permits:
                return
            index = open_permits[arg % len(open_permits)]
            op = self.op_id()
            if name == "permit_send":
                value = self.value()
                self.values[op] = value
                self.outcomes[op] = _permit_send(self.permits[index], value)
                self.model.outcomes[op] = model.permit_send(index, value)
            else:
                self.permits[index].release()
                model.permit_release(index)
        elif name == "clone":
            if model.clone(arg % senders):
                self.senders.append(self.senders[arg % senders].clone())
            else:
                op = self.op_id()
                model.outcomes[op] = "closed"
                self.sync(op, self.senders[arg % senders].clone)
        elif name == "close_sender":
            model.close_sender(arg % senders)
            self.senders[arg % senders].close()
        elif name == "close_receiver":
            model.close_receiver()
            self.rx.close()
        await trio.testing.wait_all_tasks_blocked()
        self.check()

    def check(self) -> None:
        model = self.model
        assert self.outcomes == model.outcomes
        stats = self.rx.statistics()
        assert stats.buffered == len(model.buffer)
        assert stats.reserved == model.reserved
        assert stats.senders_waiting == len(model.waiting)
        assert stats.receiver_waiting == (model.receiver is not None)
        assert stats.open_senders == sum(model.senders_open)
        assert stats.receiver_closed == model.rx_closed
        assert self.received == model.received
        # Liveness, independently of the model: nobody waits while they could proceed.
        if stats.senders_waiting:
            assert stats.buffered + stats.reserved >= stats.capacity
        if stats.receiver_waiting:
            assert stats.buffered == 0
            assert stats.senders_waiting == 0 or stats.capacity > 0

    async def finish(self) -> None:
        """Close every sender and permit, drain, and compare the whole history."""
        for index, sender in enumerate(self.senders):
            sender.close()
            self.model.close_sender(index)
        await trio.testing.wait_all_tasks_blocked()
        self.check()
        # Closing every sender failed the waiting reserves, so no permit is granted now.
        for index, permit in enumerate(self.permits):
            if self.model.permits_open[index]:
                permit.release()
                self.model.permit_release(index)
        await trio.testing.wait_all_tasks_blocked()
        self.check()
        if self.recv_op is not None and self.model.receiver is not None:
            raise AssertionError("a receiver still waits after every sender closed")
        while True:
            op = self.op_id()
            self.model.recv(op, wait=False)
            self.sync(op, self.try_recv)
            self.check()
            if not isinstance(self.outcomes[op], int):
                break
        assert self.outcomes[op] == "end"
        # Independently of the model: every value whose send succeeded was received exactly
        # once, and nothing else was.
        sent = sorted(v for op, v in self.values.items() if self.outcomes[op] == "sent")
        assert sorted(self.received) == sent


def _permit_send(permit: mpsc.Permit[int], value: int) -> str:
    try:
        permit.send(value)
    except trio.BrokenResourceError:
        return "broken"
    return "sent"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    capacity=st.sampled_from([0, 1, 1, 2, 3, None]),
    budget=st.sampled_from([1, 2, 128]),
    operations=st.lists(OPERATIONS, min_size=20, max_size=80),
)
def test_mpsc_matches_the_model(
    capacity: int | None, budget: int, operations: list[tuple[str, int]]
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
