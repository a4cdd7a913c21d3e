"""The simulated world: hosts, the links between them, faults, and the trace."""

from __future__ import annotations

import functools
import hashlib
import heapq
import ipaddress
import math
import random
import socket
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from types import TracebackType
from typing import Any, Literal

import attrs
import trio

from ... import _trio_internals
from ._datagram import SimUdpSocket
from ._stream import RTO, SYN_RETRIES, SimConnection, SimConnector, SimListener, _Flow

_LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})
_ANY = frozenset({"0.0.0.0", "::", ""})
_non_negative = attrs.validators.ge(0.0)
_probability = [attrs.validators.ge(0.0), attrs.validators.le(1.0)]


@attrs.frozen
class LinkConfig:
    """How a link between two hosts carries bytes (both directions alike).

    Attributes:
        latency: One-way delay in seconds.
        jitter: Extra delay drawn from ``[0, jitter)`` per segment (segments still arrive
            in order: a stream never reorders).
        bandwidth: Bytes per second each way; None is unlimited.
        loss: Probability that a segment is lost. A lost segment of a stream is sent again
            after :data:`~runtime.testing.sim.RTO` (so it arrives late, never not at all); a
            lost datagram is gone.
        reorder: Datagrams only: probability that one is held back by three more latencies,
            so that later ones overtake it (streams never reorder).
        duplicate: Datagrams only: probability that one is delivered twice.
    """

    latency: float = attrs.field(default=0.0005, validator=_non_negative)
    jitter: float = attrs.field(default=0.0, validator=_non_negative)
    bandwidth: float | None = attrs.field(
        default=None, validator=attrs.validators.optional(attrs.validators.gt(0.0))
    )
    loss: float = attrs.field(default=0.0, validator=_probability)
    reorder: float = attrs.field(default=0.0, validator=_probability)
    duplicate: float = attrs.field(default=0.0, validator=_probability)


class Link:
    """The link between two hosts: its config, whether it is partitioned, and its queue."""

    def __init__(self, a: Host, b: Host, config: LinkConfig) -> None:
        self.hosts = (a, b)
        self.config = config
        self.partitioned = False
        self.busy_until: dict[str, float] = {}  # per direction, for the bandwidth

    def __repr__(self) -> str:
        a, b = self.hosts
        return (
            f"<Link {a.name}<->{b.name} {self.config}{' partitioned' if self.partitioned else ''}>"
        )


class Host:
    """One simulated machine: an address, listeners, connections and the tasks it runs.

    A host is a :class:`~runtime.net.abc.Network`: pass it where production code takes a
    ``network`` (``serve_proxy(config, network=host)``), or take its :meth:`bind` and
    :meth:`connector` for a Server or a Client.

    Attributes:
        name: The host's name; it resolves to :attr:`address` in the sim's DNS.
        address: Its IPv4 address (``10.0.0.N`` unless given).
        up: False between :meth:`Sim.kill` and :meth:`Sim.restart`.
    """

    def __init__(self, sim: Sim, name: str, address: str, main: Any) -> None:
        self.sim = sim
        self.name = name
        self.address = address
        self.up = True
        self.main = main
        self._listeners: dict[int, SimListener] = {}
        self._connections: dict[int, SimConnection] = {}  # ordered: kills go in one order
        self._scopes: list[trio.CancelScope] = []
        self._udp: dict[int, SimUdpSocket] = {}
        self._next_port = 49152

    def __repr__(self) -> str:
        return f"<Host {self.name} {self.address}{'' if self.up else ' down'}>"

    # -- Network --------------------------------------------------------------------------

    def bind(self, host: str = "0.0.0.0", port: int = 0, *, backlog: int = 128) -> SimListener:
        """Listen on ``port`` (0 picks one) of this host.

        ``host`` is this host's address, its name, a wildcard (``0.0.0.0``, ``::``) or
        loopback: all of them mean this host.

        Raises:
            OSError: ``EADDRINUSE``, or ``EADDRNOTAVAIL`` for another host's address.
        """
        if host not in _ANY and host not in _LOOPBACK and host not in (self.address, self.name):
            raise OSError(99, f"cannot bind {host}: not an address of host {self.name}")
        if not self.up:
            raise OSError(100, f"host {self.name} is down")
        if port == 0:
            port = self._ephemeral_port()
        if port in self._listeners:
            raise OSError(98, f"{self.name}:{port}: address already in use")
        listener = SimListener(self, self.address, port, backlog)
        self._listeners[port] = listener
        self.sim._record(f"listen {self.address}:{port}")
        return listener

    def connector(self, *, connect_timeout: float | None = None) -> SimConnector:
        """A Connector that connects from this host."""
        return SimConnector(self, connect_timeout)

    def udp_bind(self, host: str = "0.0.0.0", port: int = 0) -> SimUdpSocket:
        """A datagram socket on ``port`` of this host (0 picks one).

        Raises:
            OSError: ``EADDRINUSE``, or another host's address.
        """
        if host not in _ANY and host not in _LOOPBACK and host not in (self.address, self.name):
            raise OSError(99, f"cannot bind {host}: not an address of host {self.name}")
        if port == 0:
            port = self._ephemeral_port()
            while port in self._udp:
                port = self._ephemeral_port()
        if port in self._udp:
            raise OSError(98, f"{self.name}:{port}/udp: address already in use")
        sock = SimUdpSocket(self, port)
        self._udp[port] = sock
        return sock

    # -- tasks ----------------------------------------------------------------------------

    def start_soon(self, async_fn: Callable[..., Awaitable[Any]], *args: Any) -> None:
        """Run ``async_fn(*args)`` on this host: :meth:`Sim.kill` cancels it."""
        self.sim._nursery.start_soon(self._run, async_fn, args)

    async def start(self, async_fn: Callable[..., Awaitable[Any]], *args: Any) -> Any:
        """Like ``nursery.start``: run ``async_fn(*args, task_status=...)`` on this host and
        return what it reports once started."""
        return await self.sim._nursery.start(self._run_started, async_fn, args)

    async def _run(self, async_fn: Callable[..., Awaitable[Any]], args: tuple[Any, ...]) -> None:
        scope = trio.CancelScope()
        self._scopes.append(scope)
        try:
            with scope:
                await async_fn(*args)
        finally:
            self._scopes.remove(scope)

    async def _run_started(
        self,
        async_fn: Callable[..., Awaitable[Any]],
        args: tuple[Any, ...],
        task_status: trio.TaskStatus[Any],
    ) -> None:
        scope = trio.CancelScope()
        self._scopes.append(scope)
        try:
            with scope:
                await async_fn(*args, task_status=task_status)
        finally:
            self._scopes.remove(scope)

    # -- bookkeeping ----------------------------------------------------------------------

    def _ephemeral_port(self) -> int:
        while self._next_port in self._listeners:
            self._next_port += 1
        port = self._next_port
        self._next_port = 49152 if port >= 65535 else port + 1
        return port

    def _unbind(self, listener: SimListener) -> None:
        if self._listeners.get(listener.port) is listener:
            del self._listeners[listener.port]

    def _forget(self, connection: SimConnection) -> None:
        self._connections.pop(id(connection), None)

    def _adopt(self, connection: SimConnection) -> None:
        self._connections[id(connection)] = connection


class Restarted:
    """What :meth:`Sim.restart` returns: await it for the value the host's ``main`` started
    with."""

    def __init__(self) -> None:
        self._event = trio.Event()
        self._value: Any = None

    def _set(self, value: Any) -> None:
        self._value = value
        self._event.set()

    async def _wait(self) -> Any:
        await self._event.wait()
        return self._value

    def __await__(self) -> Any:
        return self._wait().__await__()


class SimResolver(trio.abc.HostnameResolver):
    """``trio.socket.getaddrinfo`` answered from the sim's DNS (installed while it runs)."""

    def __init__(self, sim: Sim) -> None:
        self._sim = sim

    async def getaddrinfo(
        self,
        host: bytes | None,
        port: bytes | str | int | None,
        family: int = 0,
        type: int = 0,
        proto: int = 0,
        flags: int = 0,
    ) -> list[
        tuple[
            Literal[socket.AddressFamily.AF_INET],
            socket.SocketKind,
            int,
            str,
            tuple[str, int],
        ]
        | tuple[
            Literal[socket.AddressFamily.AF_INET6],
            socket.SocketKind,
            int,
            str,
            tuple[str, int, int, int] | tuple[int, bytes],
        ]
    ]:
        await trio.lowlevel.checkpoint()
        name = (host or b"localhost").decode("idna")
        addresses = self._sim.lookup(name)
        if not addresses:
            raise socket.gaierror(socket.EAI_NONAME, f"{name}: name unknown to the simulation")
        number = int(port) if port not in (None, b"", "") else 0
        kind = socket.SocketKind(type) if type else socket.SOCK_STREAM
        return [
            (socket.AF_INET, kind, proto or socket.IPPROTO_TCP, "", (address, number))
            for address in addresses
        ]

    async def getnameinfo(
        self, sockaddr: tuple[str, int] | tuple[str, int, int, int], flags: int
    ) -> tuple[str, str]:
        await trio.lowlevel.checkpoint()
        for host in self._sim.hosts.values():
            if host.address == sockaddr[0]:
                return host.name, str(sockaddr[1])
        return sockaddr[0], str(sockaddr[1])


class Sim:
    """A deterministic simulated network of named hosts, driven by one seeded RNG.

    Open it inside a Trio run (under ``trio.testing.MockClock(autojump_threshold=0)`` for
    determinism and speed)::

        async with Sim(seed=7) as sim:
            web = sim.add_host("web")
            client = sim.add_host("client")
            listener = web.bind("0.0.0.0", 80)
            ...
            sim.partition(web, client)

    While it is open it seeds Python's global :mod:`random` and Trio's scheduler with
    ``seed``, and answers ``trio.socket.getaddrinfo`` from its DNS. Leaving it cancels every
    host's tasks.

    Attributes:
        seed: The seed of this world.
        rng: The world's generator (latency jitter, loss): every draw comes from it.
        trace: One line per delivery, connect and fault, in order, each with its time in
            seconds since the world opened.
        hosts: The hosts by name.
        seeded_scheduler: Whether Trio's scheduler could be seeded (see
            :func:`runtime._trio_internals.seed_scheduler`); without it a trace may differ
            between runs of one seed.
    """

    def __init__(self, seed: int = 0, *, link: LinkConfig | None = None) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        self.default_link = link or LinkConfig()
        self.trace: list[str] = []
        self.hosts: dict[str, Host] = {}
        self.dns: dict[str, list[str]] = {}
        self.seeded_scheduler = False
        self._links: dict[tuple[str, str], Link] = {}
        self._events: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = 0
        self._lot = trio.lowlevel.ParkingLot()
        self._held_flows: dict[int, _Flow] = {}
        self._stack: AsyncExitStack | None = None
        self._nursery_or_none: trio.Nursery | None = None
        self._next_address = 1
        self._t0 = 0.0

    # -- opening and closing --------------------------------------------------------------

    async def __aenter__(self) -> Sim:
        random.seed(self.seed)
        self._t0 = trio.current_time()  # the trace counts from here, whatever the clock says
        self.seeded_scheduler = _trio_internals.seed_scheduler(self.seed)
        stack = AsyncExitStack()
        await stack.__aenter__()
        try:
            nursery = await stack.enter_async_context(trio.open_nursery())
            stack.callback(nursery.cancel_scope.cancel)
            previous = trio.socket.set_custom_hostname_resolver(SimResolver(self))
            stack.callback(trio.socket.set_custom_hostname_resolver, previous)
            self._nursery_or_none = nursery
            nursery.start_soon(self._deliver_forever)
        except BaseException:
            await stack.__aexit__(None, None, None)
            raise
        self._stack = stack
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        assert self._stack is not None
        stack, self._stack = self._stack, None
        return await stack.__aexit__(exc_type, exc, tb)

    @property
    def _nursery(self) -> trio.Nursery:
        if self._nursery_or_none is None:
            raise RuntimeError("open the Sim first: async with Sim(seed) as sim")
        return self._nursery_or_none

    # -- hosts and DNS --------------------------------------------------------------------

    def add_host(
        self,
        name: str,
        *,
        address: str | None = None,
        main: Callable[..., Awaitable[Any]] | None = None,
    ) -> Host:
        """A new host, reachable by ``name`` and by its address.

        Args:
            name: Its name (in the sim's DNS).
            address: Its IPv4 address; ``10.0.0.N`` in the order hosts are added by default.
            main: What the host runs at :meth:`restart`: ``await main(host,
                task_status=...)``, as ``nursery.start`` runs a function.
        """
        if name in self.hosts:
            raise ValueError(f"a host named {name!r} exists")
        if address is None:
            address = f"10.0.{self._next_address // 250}.{self._next_address % 250 + 1}"
            self._next_address += 1
        ipaddress.ip_address(address)  # a literal address, or ValueError
        host = Host(self, name, address, main)
        self.hosts[name] = host
        self.dns[name] = [address]
        self._record(f"host {name} {address}")
        return host

    def lookup(self, name: str) -> list[str]:
        """The addresses ``name`` resolves to (a literal address resolves to itself)."""
        try:
            ipaddress.ip_address(name)
            return [name]
        except ValueError:
            return list(self.dns.get(name, ()))

    def _host_at(self, source: Host, address: str) -> Host | None:
        if address in _LOOPBACK:
            return source
        for host in self.hosts.values():
            if host.address == address:
                return host
        return None

    # -- links and faults -----------------------------------------------------------------

    def link(self, a: Host | str, b: Host | str) -> Link:
        """The link between ``a`` and ``b`` (made with the default config at first use)."""
        first, second = sorted((self._host(a).name, self._host(b).name))
        key = (first, second)
        link = self._links.get(key)
        if link is None:
            link = Link(self.hosts[first], self.hosts[second], self.default_link)
            self._links[key] = link
        return link

    def _host(self, host: Host | str) -> Host:
        return host if isinstance(host, Host) else self.hosts[host]

    def _link_of(self, a: Link | Host | str, b: Host | str | None) -> Link:
        if isinstance(a, Link):
            if b is not None:
                raise TypeError("pass a Link, or two hosts")
            return a
        if b is None:
            raise TypeError("pass a Link, or two hosts")
        return self.link(a, b)

    def partitioned(self, a: Host, b: Host) -> bool:
        """Whether nothing gets from ``a`` to ``b`` now."""
        return a is not b and self.link(a, b).partitioned

    def partition(self, a: Link | Host | str, b: Host | str | None = None) -> None:
        """Cut the link between two hosts (or the :class:`Link` given): segments and
        connects between them are held (TCP retries them) until :meth:`repair`."""
        link = self._link_of(a, b)
        link.partitioned = True
        self._record(f"partition {link.hosts[0].name} {link.hosts[1].name}")

    def repair(self, a: Link | Host | str | None = None, b: Host | str | None = None) -> None:
        """Heal a partition (between two hosts, of a :class:`Link`, or with no arguments every
        one): what it held is sent again, in order."""
        if a is None and b is None:
            for link in [link for link in self._links.values() if link.partitioned]:
                self.repair(link)
            return
        assert a is not None
        link = self._link_of(a, b)
        link.partitioned = False
        self._record(f"repair {link.hosts[0].name} {link.hosts[1].name}")
        ends = {link.hosts[0].name, link.hosts[1].name}
        for key, flow in list(self._held_flows.items()):
            if {flow.src.host.name, flow.dst.host.name} == ends:
                del self._held_flows[key]
                flow.release()

    def slow(
        self,
        a: Link | Host | str,
        b: Host | str | None = None,
        *,
        latency: float | None = None,
        jitter: float | None = None,
        bandwidth: float | None = None,
        loss: float | None = None,
        reorder: float | None = None,
        duplicate: float | None = None,
    ) -> LinkConfig:
        """Change the config of the link between two hosts (or of the :class:`Link` given):
        only what is given, see :class:`LinkConfig`. Returns the new config. Segments already
        on the wire keep the times they were given."""
        link = self._link_of(a, b)
        changes = {
            key: value
            for key, value in (
                ("latency", latency),
                ("jitter", jitter),
                ("bandwidth", bandwidth),
                ("loss", loss),
                ("reorder", reorder),
                ("duplicate", duplicate),
            )
            if value is not None
        }
        link.config = attrs.evolve(link.config, **changes)
        self._record(f"slow {link.hosts[0].name} {link.hosts[1].name} {link.config}")
        return link.config

    def kill(self, host: Host | str) -> None:
        """The host dies: its tasks are cancelled, its connections reset, its listeners
        gone; until :meth:`restart` connects to it time out."""
        target = self._host(host)
        if not target.up:
            return
        target.up = False
        self._record(f"kill {target.name}")
        for scope in list(target._scopes):
            scope.cancel()
        for listener in list(target._listeners.values()):
            listener.close()
        for connection in list(target._connections.values()):
            connection._kill()
        target._connections.clear()
        for sock in list(target._udp.values()):
            sock.close()

    def restart(self, host: Host | str) -> Restarted:
        """Bring a killed host back and start its ``main`` again, now.

        Returns:
            An awaitable: ``await sim.restart(host)`` waits until ``main`` has reported that
            it started, and gives what it reported (None without a ``main``). Not awaiting
            it is fine too: the host is up and its ``main`` is starting either way.
        """
        target = self._host(host)
        if target.up:
            raise RuntimeError(f"host {target.name} is up: kill it first")
        target.up = True
        target._next_port = 49152
        self._record(f"restart {target.name}")
        restarted = Restarted()
        if target.main is None:
            restarted._set(None)
            return restarted
        main = target.main

        async def boot() -> None:
            restarted._set(await target.start(main, target))

        self._nursery.start_soon(boot)
        return restarted

    # -- the trace ------------------------------------------------------------------------

    def _record(self, event: str) -> None:
        self.trace.append(f"{trio.current_time() - self._t0:.6f} {event}")

    def trace_text(self) -> str:
        """The trace, one event per line."""
        return "\n".join(self.trace) + "\n"

    def trace_digest(self) -> str:
        """A SHA-256 of :meth:`trace_text`: equal for two runs of one seed."""
        return hashlib.sha256(self.trace_text().encode()).hexdigest()

    # -- delivery -------------------------------------------------------------------------

    def _schedule(self, when: float, action: Callable[[], None]) -> None:
        self._seq += 1
        first = self._events[0][0] if self._events else math.inf
        heapq.heappush(self._events, (when, self._seq, action))
        if when < first:
            self._lot.unpark_all()

    def _arrival(self, src: Host, dst: Host, segment: bytes | str, after: float) -> float:
        now = trio.current_time()
        if src is dst:
            return max(now, after)
        link = self.link(src, dst)
        config = link.config
        depart = now
        if config.bandwidth is not None and isinstance(segment, bytes):
            direction = src.name
            depart = (
                max(now, link.busy_until.get(direction, 0.0)) + len(segment) / config.bandwidth
            )
            link.busy_until[direction] = depart
        arrive = depart + config.latency
        if config.jitter:
            arrive += self.rng.random() * config.jitter
        while config.loss and self.rng.random() < config.loss:
            arrive += max(RTO, 2 * config.latency)  # lost: the retransmission arrives
        return max(arrive, after)

    def _send_datagram(self, sock: SimUdpSocket, data: bytes, address: tuple[str, int]) -> None:
        source = sock.host
        label = f"{source.address}:{sock.port}>{address[0]}:{address[1]}"
        addresses = self.lookup(address[0]) if address[0] not in _LOOPBACK else [source.address]
        target = self._host_at(source, addresses[0]) if addresses else None
        if target is None:
            self._record(f"udp {label} {len(data)}B: no such host, dropped")
            return
        config = None if source is target else self.link(source, target).config
        rng = self.rng
        copies = 2 if config is not None and config.duplicate > rng.random() else 1
        for _ in range(copies):
            arrive = trio.current_time()
            if config is not None:
                if config.loss > rng.random():
                    self._record(f"udp {label} {len(data)}B: lost")
                    continue
                arrive += config.latency + rng.random() * config.jitter
                if config.reorder > rng.random():
                    arrive += 3 * config.latency  # held back: later datagrams overtake it
            self._schedule(
                arrive,
                functools.partial(self._land, sock, target, address[1], data, label),
            )

    def _land(self, sock: SimUdpSocket, target: Host, port: int, data: bytes, label: str) -> None:
        receiver = target._udp.get(port)
        if not target.up or self.partitioned(sock.host, target) or receiver is None:
            self._record(f"udp {label} {len(data)}B: dropped")
        elif receiver._arrive(data, sock.address):
            self._record(f"udp {label} {len(data)}B")
        else:
            self._record(f"udp {label} {len(data)}B: receive queue full, dropped")

    async def _deliver_forever(self) -> None:
        events = self._events
        while True:
            now = trio.current_time()
            while events and events[0][0] <= now:
                _, _, action = heapq.heappop(events)
                action()
            deadline = events[0][0] if events else math.inf
            with trio.CancelScope(deadline=deadline):
                await self._lot.park()

    async def _connect(self, source: Host, name: str, port: int) -> SimConnection:
        addresses = self.lookup(name) if name not in _LOOPBACK else [source.address]
        if not addresses:
            raise socket.gaierror(socket.EAI_NONAME, f"{name}: name unknown to the simulation")
        address = addresses[0]
        target = self._host_at(source, address)
        local_port = source._ephemeral_port()
        label = f"{source.address}:{local_port}>{address}:{port}"
        for wait in (*SYN_RETRIES, None):
            sent = trio.current_time()
            self._record(f"syn {label}")
            reachable = target is not None and target.up and not self.partitioned(source, target)
            if reachable and target is not None:
                one_way = self._arrival(source, target, b"", 0.0) - sent
                await trio.sleep(one_way)
                reachable = target.up and not self.partitioned(source, target) and source.up
                listener = target._listeners.get(port) if reachable else None
                if reachable and listener is None:
                    await trio.sleep(one_way)
                    self._record(f"refused {label}")
                    raise ConnectionRefusedError(111, f"connect to {name}:{port}: refused")
                if listener is not None:
                    client = SimConnection(source, (source.address, local_port), (address, port))
                    server = SimConnection(target, (address, port), (source.address, local_port))
                    client._outbound = server._inbound = _Flow(self, client, server)
                    server._outbound = client._inbound = _Flow(self, server, client)
                    if listener._offer(server):
                        target._adopt(server)
                        source._adopt(client)
                        try:
                            await trio.sleep(one_way)
                        except BaseException:
                            client.close()  # cancelled while the SYN-ACK travelled
                            raise
                        self._record(f"connected {label}")
                        return client
                    self._record(f"backlog full {label}")
            if wait is None:
                break
            await trio.sleep_until(sent + wait)
        self._record(f"connect timed out {label}")
        raise TimeoutError(110, f"connect to {name}:{port}: timed out")


__all__ = ["Host", "Link", "LinkConfig", "Restarted", "Sim", "SimResolver"]
