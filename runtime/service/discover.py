"""Discover: where a balancer learns which endpoints exist.

A Discover is an async iterable of changes: ``Insert(key, service)`` adds an endpoint (or
replaces the one under that key) and ``Remove(key)`` takes it away. The balancer applies them
as they come (``Balance.serve_discovery``). A removed endpoint only stops getting *new*
requests; calls already on it finish normally, because the balancer never cancels them.

Three sources come with the package:

* :class:`StaticDiscover`: a fixed set, inserted once.
* :class:`WatchDiscover`: a watch channel (``runtime.sync.watch``) whose value is the whole
  endpoint set (a mapping of key to service); each new value is diffed against the last one.
* :class:`DnsDiscover`: a host name re-resolved every ``interval`` seconds; each address is an
  endpoint, made into a service by ``make_service(address)``. A failed lookup keeps the last
  known set (and logs), so a DNS outage does not empty the pool.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from typing import Generic, Protocol, TypeAlias, TypeVar, Union

import attrs
import trio

from runtime.time import sleep

from ._validate import positive

K = TypeVar("K")
S = TypeVar("S")
T_co = TypeVar("T_co", covariant=True)

__all__ = [
    "Address",
    "Change",
    "Discover",
    "DnsDiscover",
    "Insert",
    "Remove",
    "StaticDiscover",
    "WatchDiscover",
    "WatchReceiver",
]

logger = logging.getLogger("runtime.service.discover")

Address: TypeAlias = tuple[str, int]
"""An endpoint address: host (as an IP string) and port."""


@attrs.frozen
class Insert(Generic[K, S]):
    """Add an endpoint, or replace the one under ``key``.

    Attributes:
        key: Identifies the endpoint (an address, a name).
        service: The service that reaches it.
    """

    key: K
    service: S


@attrs.frozen
class Remove(Generic[K]):
    """Take the endpoint under ``key`` out of the pool (calls on it finish normally).

    Attributes:
        key: The endpoint to remove.
    """

    key: K


Change: TypeAlias = Union[Insert[K, S], Remove[K]]  # noqa: UP007 - a generic alias needs Union
"""One change to the endpoint set."""


class Discover(Protocol[K, S]):
    """An async iterable of endpoint changes; ends when the set can no longer change."""

    def __aiter__(self) -> AsyncIterator[Change[K, S]]:
        """Iterate over the changes, starting with the current endpoints as inserts."""
        ...


def diff(old: Mapping[K, S], new: Mapping[K, S]) -> list[Change[K, S]]:
    """The changes that turn endpoint set ``old`` into ``new``: removals first, then inserts.

    A key whose service is a different object in ``new`` is re-inserted.
    """
    changes: list[Change[K, S]] = [Remove(key) for key in old if key not in new]
    changes.extend(
        Insert(key, service)
        for key, service in new.items()
        if key not in old or old[key] is not service
    )
    return changes


@attrs.frozen
class StaticDiscover(Generic[K, S]):
    """A fixed endpoint set: one insert per endpoint, then the iteration ends.

    Attributes:
        endpoints: Key to service. Use :meth:`of` for a plain list.
    """

    endpoints: Mapping[K, S]

    @classmethod
    def of(cls, services: Iterable[S]) -> StaticDiscover[int, S]:
        """Endpoints keyed by their position in ``services``."""
        return StaticDiscover(dict(enumerate(services)))

    async def __aiter__(self) -> AsyncIterator[Change[K, S]]:
        for key, service in self.endpoints.items():
            yield Insert(key, service)


class WatchReceiver(Protocol[T_co]):
    """The receiving side of a watch channel: the latest value, and a wait for the next.

    ``runtime.sync.watch`` receivers have this shape.
    """

    def borrow(self) -> T_co:
        """The latest value."""
        ...

    async def changed(self) -> object:
        """Wait until a value newer than the one last seen is sent (and mark it seen).

        Raises:
            trio.EndOfChannel: the sender is gone; no value will come.
        """
        ...


@attrs.frozen
class WatchDiscover(Generic[K, S]):
    """Endpoints from a watch channel whose value is the whole set, ``{key: service}``.

    Each new value is compared with the previous one; the differences become changes. The
    iteration ends when the channel's sender is gone.

    Attributes:
        receiver: A watch receiver of ``Mapping[key, service]``.
    """

    receiver: WatchReceiver[Mapping[K, S]]

    async def __aiter__(self) -> AsyncIterator[Change[K, S]]:
        current: dict[K, S] = {}
        while True:
            latest = dict(self.receiver.borrow())
            for change in diff(current, latest):
                yield change
            current = latest
            try:
                await self.receiver.changed()
            except (trio.EndOfChannel, trio.BrokenResourceError):
                return


Resolver: TypeAlias = Callable[[str, int], Awaitable[Iterable[Address]]]
"""``async resolve(host, port) -> addresses``; raises ``OSError`` when the lookup fails."""


async def resolve_tcp(host: str, port: int) -> list[Address]:
    """Resolve ``host`` for TCP with ``trio.socket.getaddrinfo``: the default resolver.

    Raises:
        OSError: the lookup failed (``socket.gaierror`` is one).
    """
    infos = await trio.socket.getaddrinfo(host, port, type=trio.socket.SOCK_STREAM)
    return [(str(info[4][0]), int(info[4][1])) for info in infos]


@attrs.frozen
class DnsDiscover(Generic[S]):
    """Endpoints from DNS: ``host`` re-resolved every ``interval`` seconds.

    Each address becomes an endpoint keyed by the address, built by ``make_service``. Lookups
    that fail are logged on ``runtime.service.discover`` and keep the last known set; a lookup
    that succeeds with no addresses empties it. The iteration never ends.

    Attributes:
        host: The name to resolve.
        port: The port every endpoint uses.
        make_service: Builds the service for one address.
        interval: Seconds between lookups. Default 30: DNS-driven pools change on the scale of
            minutes, and a lookup per endpoint set per second would be waste.
        resolve: The resolver; defaults to :func:`resolve_tcp`. Tests pass a fake.
    """

    host: str
    port: int
    make_service: Callable[[Address], S]
    interval: float = attrs.field(default=30.0, validator=positive)
    resolve: Resolver = resolve_tcp

    async def __aiter__(self) -> AsyncIterator[Change[Address, S]]:
        current: dict[Address, S] = {}
        while True:
            addresses = await self._lookup()
            if addresses is not None:
                for address in [known for known in current if known not in addresses]:
                    del current[address]
                    yield Remove(address)
                for address in sorted(addresses - current.keys()):
                    service = self.make_service(address)
                    current[address] = service
                    yield Insert(address, service)
            await sleep(self.interval)

    async def _lookup(self) -> set[Address] | None:
        try:
            return set(await self.resolve(self.host, self.port))
        except OSError as exc:
            logger.warning(
                "DNS lookup of %s port %d failed (%s); keeping the last known endpoints and "
                "trying again in %s s",
                self.host,
                self.port,
                exc,
                self.interval,
            )
            return None
