"""The keyspace of mini-redis: strings and lists, expiry on a DelayQueue, and pub/sub.

**Expiry.** A key with a time to live has a :class:`runtime.time.Key` in one
:class:`~runtime.time.DelayQueue` (``Db.expiring``); :meth:`Db.serve_expiry` takes keys out
as they expire and deletes them. Every change that ends a key's TTL (SET without KEEPTTL,
DEL, PERSIST, a new EXPIRE) removes its old entry first, so whatever comes out of the queue is
still due. The queue's wheel ticks every millisecond, so a read also checks the deadline itself
(``_live``): a key is never seen after its deadline, even in the tick before the queue fires.
All of it reads Trio's clock, so under ``MockClock`` the tests move time by hours in no time.

**Pub/sub.** Each channel with subscribers is one :func:`runtime.sync.broadcast.channel`: a
message is encoded once, stored once, and every subscriber reads it from the ring at its own
pace. The publisher never waits. A subscriber that falls behind, ``backlog`` messages or
``max_pending`` bytes (its *output limit*, like Redis's ``client-output-buffer-limit pubsub``),
is dropped at the next publish: its :meth:`Subscriber.drop` closes its connection, and
nobody else notices.
"""

from __future__ import annotations

import logging
from collections import deque
from typing import Protocol

import attrs
import trio

from runtime.sync import broadcast
from runtime.time import DelayQueue, Key

from . import resp

logger = logging.getLogger("mini_redis")

Value = bytes | deque[bytes]
"""What a key holds: a string or a list."""

WRONGTYPE = "WRONGTYPE Operation against a key holding the wrong kind of value"
NOT_INTEGER = "ERR value is not an integer or out of range"
INT64 = (-(2**63), 2**63 - 1)


class CommandError(Exception):
    """A command failed; the message is the error reply (it starts with its kind)."""


@attrs.define(eq=False)
class Db:
    """The keyspace.

    Args:
        backlog: Messages a subscriber may fall behind, per channel, before it is dropped.
        max_pending: Bytes of messages a subscriber may have unsent before it is dropped.
    """

    backlog: int = 1024
    max_pending: int = 8 * 1024 * 1024
    data: dict[bytes, Value] = attrs.field(factory=dict)
    expiring: DelayQueue[bytes] = attrs.field(factory=DelayQueue)
    deadlines: dict[bytes, Key[bytes]] = attrs.field(factory=dict)
    channels: dict[bytes, Channel] = attrs.field(factory=dict)

    # -- expiry ----------------------------------------------------------------------------

    async def serve_expiry(self) -> None:
        """Delete keys as their TTL runs out. Runs until cancelled."""
        while True:
            key = await self.expiring.next_expired()
            del self.deadlines[key]
            del self.data[key]

    def _live(self, key: bytes) -> Value | None:
        """The key's value, or None if it is missing or its deadline has passed."""
        value = self.data.get(key)
        if value is not None and self.deadlines:
            entry = self.deadlines.get(key)
            if entry is not None and entry.deadline <= trio.current_time():
                self._forget(key)
                return None
        return value

    def _forget(self, key: bytes) -> bool:
        """Delete ``key`` and its TTL; whether it existed."""
        entry = self.deadlines.pop(key, None)
        if entry is not None:
            self.expiring.remove(entry)
        return self.data.pop(key, None) is not None

    def _expire_in(self, key: bytes, seconds: float) -> None:
        entry = self.deadlines.get(key)
        if entry is None:
            self.deadlines[key] = self.expiring.insert(key, seconds)
        else:
            self.expiring.reset(entry, seconds)

    def _persist(self, key: bytes) -> bool:
        entry = self.deadlines.pop(key, None)
        if entry is None:
            return False
        self.expiring.remove(entry)
        return True

    # -- strings ---------------------------------------------------------------------------

    def get(self, key: bytes) -> bytes | None:
        """The string at ``key``, or None. Raises CommandError (WRONGTYPE) for a list."""
        value = self._live(key)
        if value is None or type(value) is bytes:
            return value
        raise CommandError(WRONGTYPE)

    def set(
        self,
        key: bytes,
        value: bytes,
        *,
        ttl: float | None = None,
        nx: bool = False,
        xx: bool = False,
        keepttl: bool = False,
    ) -> bool:
        """Store a string (any old value and TTL go). Returns False when NX or XX refused."""
        if nx or xx:
            exists = self._live(key) is not None
            if (nx and exists) or (xx and not exists):
                return False
        self.data[key] = value
        if ttl is not None:
            self._expire_in(key, ttl)
        elif not keepttl and self.deadlines:
            self._persist(key)
        return True

    def incr(self, key: bytes, by: int) -> int:
        """Add ``by`` to the integer at ``key`` (0 if missing), keeping its TTL."""
        current = self.get(key)
        try:
            number = 0 if current is None else int(current)
        except ValueError:
            raise CommandError(NOT_INTEGER) from None
        if current is not None and (current != b"%d" % number or len(current) > 20):
            raise CommandError(NOT_INTEGER)  # "+1", " 1", "1_0", "01": not Redis integers
        number += by
        if not INT64[0] <= number <= INT64[1]:
            raise CommandError("ERR increment or decrement would overflow")
        self.data[key] = b"%d" % number
        return number

    # -- keys ------------------------------------------------------------------------------

    def delete(self, keys: list[bytes]) -> int:
        """Delete keys; how many existed."""
        return sum(self._live(key) is not None and self._forget(key) for key in keys)

    def exists(self, keys: list[bytes]) -> int:
        """How many of ``keys`` exist (a key named twice counts twice)."""
        return sum(self._live(key) is not None for key in keys)

    def expire(self, key: bytes, seconds: float) -> bool:
        """Give ``key`` a TTL; a TTL <= 0 deletes it. False if the key does not exist."""
        if self._live(key) is None:
            return False
        if seconds <= 0:
            self._forget(key)
        else:
            self._expire_in(key, seconds)
        return True

    def persist(self, key: bytes) -> bool:
        """Remove ``key``'s TTL; whether it had one."""
        return self._live(key) is not None and self._persist(key)

    def ttl(self, key: bytes) -> float | None:
        """Seconds left to live: None for a missing key, -1.0 for a key without TTL."""
        if self._live(key) is None:
            return None
        entry = self.deadlines.get(key)
        if entry is None:
            return -1.0
        return max(0.0, entry.deadline - trio.current_time())

    def type(self, key: bytes) -> str:
        """``string``, ``list`` or ``none``."""
        value = self._live(key)
        if value is None:
            return "none"
        return "string" if type(value) is bytes else "list"

    def flush(self) -> None:
        """Delete every key."""
        for entry in self.deadlines.values():
            self.expiring.remove(entry)
        self.deadlines.clear()
        self.data.clear()

    # -- lists (enough to have a second type) ----------------------------------------------

    def _list(self, key: bytes, create: bool) -> deque[bytes] | None:
        value = self._live(key)
        if value is None:
            if not create:
                return None
            value = self.data[key] = deque()
        if type(value) is not deque:
            raise CommandError(WRONGTYPE)
        return value

    def push(self, key: bytes, values: list[bytes], *, left: bool) -> int:
        """LPUSH (``left``) or RPUSH; the list's new length."""
        items = self._list(key, create=True)
        assert items is not None
        (items.extendleft if left else items.extend)(values)
        return len(items)

    def range(self, key: bytes, start: int, stop: int) -> list[bytes]:
        """LRANGE: inclusive indexes, negative from the end."""
        items = self._list(key, create=False)
        if not items:
            return []
        n = len(items)
        start = max(start + n if start < 0 else start, 0)
        stop = min(stop + n if stop < 0 else stop, n - 1)
        return [items[i] for i in range(start, stop + 1)]

    def length(self, key: bytes) -> int:
        """LLEN."""
        items = self._list(key, create=False)
        return len(items) if items else 0

    # -- pub/sub ---------------------------------------------------------------------------

    def subscribe(self, name: bytes, who: Subscriber) -> broadcast.Receiver[bytes]:
        """Subscribe ``who`` to channel ``name``; read the messages from the receiver."""
        channel = self.channels.get(name)
        if channel is None:
            sender, first = broadcast.channel[bytes](self.backlog)
            first.close()
            channel = self.channels[name] = Channel(sender)
        receiver = channel.sender.subscribe()
        channel.subscribers[who] = receiver
        return receiver

    def unsubscribe(self, name: bytes, who: Subscriber) -> None:
        """End ``who``'s subscription to ``name`` (its receiver is closed)."""
        channel = self.channels.get(name)
        if channel is None:
            return
        receiver = channel.subscribers.pop(who, None)
        if receiver is not None:
            receiver.close()
        if not channel.subscribers:
            channel.sender.close()
            del self.channels[name]

    def publish(self, name: bytes, message: bytes) -> int:
        """Send ``message`` to every subscriber of ``name``; how many will get it.

        Subscribers over their output limit are dropped here (and not counted).
        """
        channel = self.channels.get(name)
        if channel is None:
            return 0
        push = resp.encode([b"message", name, message])
        channel.sender.send_nowait(push)
        size = len(push)
        delivered = 0
        for who, receiver in list(channel.subscribers.items()):
            who.pending_bytes += size
            behind = receiver.pending()
            if behind >= self.backlog or who.pending_bytes > self.max_pending:
                who.drop(
                    f"{behind} messages, {who.pending_bytes} bytes behind "
                    f"(output limit {self.backlog} messages, {self.max_pending} bytes)"
                )
            else:
                delivered += 1
        return delivered


@attrs.define(eq=False)
class Channel:
    """One pub/sub channel: its broadcast sender, and who reads it through which receiver."""

    sender: broadcast.Sender[bytes]
    subscribers: dict[Subscriber, broadcast.Receiver[bytes]] = attrs.field(factory=dict)


class Subscriber(Protocol):
    """What the keyspace needs of a subscribed connection."""

    pending_bytes: int
    """Bytes of messages published to it and not yet written to its socket."""

    def drop(self, reason: str) -> None:
        """Close the connection: it fell too far behind."""
        ...
