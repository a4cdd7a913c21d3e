"""DNS discovery end to end: the proxy follows a name that a DNS server on loopback answers.

The DNS server is written here (:class:`DnsServer`): UDP on 127.0.0.1, A records from a
mutable dict the test edits, AAAA answered empty, NXDOMAIN for a name it does not know, built
with dnspython (not our code). The endpoints are our own HTTP servers on 127.0.0.2, .3 and .4
(Linux routes all of 127/8 to ``lo``), all on one port, as a fleet behind one DNS name is;
each answers with its own address so a test can tell which one served.

The proxy re-resolves every ``INTERVAL`` seconds of real time (its lookups run in a worker
thread against a real socket, so the MockClock has no say). A test that waits for a change
polls the upstream's ``balance.statistics()`` under a bounded deadline.
"""

from __future__ import annotations

import logging
import socket
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import dns.exception
import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest
import trio

from runtime.http import Client, HttpServer, Request, Response, Router
from runtime.net import TcpListener
from runtime.proxy import ProxyApp, parse_config, serve_proxy
from runtime.rt import open_runtime

GUARD = 10.0  # a hang guard for a whole test, not a speed claim
SETTLE = 3.0  # the longest a test waits for the proxy to see a DNS change (15 intervals)
INTERVAL = 0.2  # dns_interval: seconds between the proxy's lookups
LATENCY = 0.05  # what ``/slow`` takes: longer than PeakEWMA's default RTT for a new endpoint
NAME = "fleet.test"
HOSTS = ("127.0.0.2", "127.0.0.3", "127.0.0.4")


class DnsServer:
    """A DNS server on 127.0.0.1 (UDP, port picked by the system) answering from ``records``.

    ``records`` maps a name (no final dot, lower case) to its IPv4 addresses: a known name
    gets its A records (none if the list is empty) and an empty AAAA answer; an unknown name
    gets NXDOMAIN. With ``answering`` False the server reads queries and drops them, as a
    server behind a dead link looks; ``close()`` stops it and frees its port.

    Attributes:
        records: The zone, edited by the test as it runs.
        answering: Whether queries get answers.
        queries: Queries received, answered or not.
        port: The UDP port it listens on (set once started).
    """

    def __init__(self) -> None:
        self.records: dict[str, list[str]] = {}
        self.answering = True
        self.queries = 0
        self.port = 0
        self._scope = trio.CancelScope()

    async def serve(self, *, task_status: trio.TaskStatus[DnsServer]) -> None:
        with self._scope, trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            await sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
            task_status.started(self)
            while True:
                wire, peer = await sock.recvfrom(4096)
                self.queries += 1
                reply = self.answer(wire) if self.answering else None
                if reply is not None:
                    await sock.sendto(reply, peer)

    def answer(self, wire: bytes) -> bytes | None:
        """The response to one query in wire format (None: not a query we can parse)."""
        try:
            query = dns.message.from_wire(wire)
        except dns.exception.DNSException:
            return None
        response = dns.message.make_response(query)
        for question in query.question:
            addresses = self.records.get(question.name.to_text(omit_final_dot=True).lower())
            if addresses is None:
                response.set_rcode(dns.rcode.NXDOMAIN)
            elif question.rdtype == dns.rdatatype.A and addresses:
                rrset = dns.rrset.from_text(question.name, 1, "IN", "A", *addresses)
                response.answer.append(rrset)
        return response.to_wire()

    def close(self) -> None:
        self._scope.cancel()


@asynccontextmanager
async def dns_server() -> AsyncIterator[DnsServer]:
    async with trio.open_nursery() as nursery:
        server: DnsServer = await nursery.start(DnsServer().serve)
        yield server
        server.close()


class Fleet:
    """Our HTTP servers on ``HOSTS``, one port for all, each answering with its address.

    ``served`` counts the requests each host got. A request for ``/hold`` sets
    ``entered[host]`` and waits for ``release`` before it answers; one for ``/slow`` takes
    ``LATENCY`` seconds.
    """

    def __init__(self) -> None:
        self.port = 0
        self.served: Counter[str] = Counter()
        self.entered = {host: trio.Event() for host in HOSTS}
        self.release = trio.Event()
        self.servers: dict[str, HttpServer] = {}

    def handler(self, host: str) -> Any:
        async def handle(request: Request) -> Response:
            self.served[host] += 1
            if request.path == "/hold":
                self.entered[host].set()
                await self.release.wait()
            elif request.path == "/slow":
                await trio.sleep(LATENCY)
            return Response.text(f"{host}\n")

        return handle

    def endpoint(self, host: str) -> str:
        return f"{host}:{self.port}"


def bind_fleet() -> list[TcpListener]:
    """A listener on each of ``HOSTS``, all on one port (another try if a host has it)."""
    for _ in range(5):
        first = TcpListener.bind(HOSTS[0], 0)
        listeners = [first]
        try:
            listeners += [TcpListener.bind(host, first.port) for host in HOSTS[1:]]
        except OSError:
            for listener in listeners:
                listener.socket.close()
            continue
        return listeners
    raise RuntimeError(f"no port was free on all of {', '.join(HOSTS)}")


@asynccontextmanager
async def fleet() -> AsyncIterator[Fleet]:
    the_fleet = Fleet()
    listeners = bind_fleet()
    the_fleet.port = listeners[0].port
    async with trio.open_nursery() as nursery:
        for host, listener in zip(HOSTS, listeners, strict=True):
            router = Router()
            router.route("GET", "/{path:path}", the_fleet.handler(host))
            router.route("GET", "/", the_fleet.handler(host))
            server = the_fleet.servers[host] = HttpServer(router, [listener])
            await nursery.start(server.serve)
        yield the_fleet
        the_fleet.release.set()
        nursery.cancel_scope.cancel()


def config_text(dns_port: int, port: int, retries: int = 2) -> str:
    return f"""
access_log = false
[admin]
listen = "127.0.0.1:0"

[[listeners]]
name = "web"
listen = "127.0.0.1:0"

[[routes]]
listener = "web"
upstream = "x"
retries = {retries}

[[upstreams]]
name = "x"
dns = "{NAME}:{port}"
dns_interval = {INTERVAL}
resolver = "127.0.0.1:{dns_port}"
"""


@asynccontextmanager
async def proxy(text: str) -> AsyncIterator[tuple[ProxyApp, str]]:
    config = parse_config(text)
    async with open_runtime() as rt, trio.open_nursery() as nursery:
        app: ProxyApp = await nursery.start(serve_proxy, config)
        yield app, f"http://127.0.0.1:{app.ports['web']}"
        rt.shutdown()


@asynccontextmanager
async def setup(*hosts: str) -> AsyncIterator[tuple[DnsServer, Fleet, ProxyApp, str, Client]]:
    """The DNS server with ``NAME`` resolving to ``hosts``, the fleet, the proxy following
    ``NAME``, and a client; the proxy has found ``hosts`` when this yields."""
    async with AsyncExitStack() as stack:
        dns_ = await stack.enter_async_context(dns_server())
        dns_.records[NAME] = list(hosts)
        the_fleet = await stack.enter_async_context(fleet())
        text = config_text(dns_.port, the_fleet.port)
        app, url = await stack.enter_async_context(proxy(text))
        client = await stack.enter_async_context(Client())
        await wait_for_endpoints(app, {the_fleet.endpoint(h) for h in hosts})
        yield dns_, the_fleet, app, url, client


def endpoints(app: ProxyApp) -> set[str]:
    return {e.key for e in app.proxy.upstreams["x"].balance.statistics().endpoints}


async def wait_for_endpoints(app: ProxyApp, expected: set[str]) -> None:
    """Poll the pool until its endpoints are ``expected`` (fails after ``SETTLE`` s)."""
    with trio.move_on_after(SETTLE):
        while endpoints(app) != expected:
            await trio.sleep(INTERVAL / 4)
    assert endpoints(app) == expected, f"the pool did not follow DNS within {SETTLE} s"


async def get(client: Client, url: str) -> tuple[int, str]:
    response = await client.get(url)
    assert isinstance(response.body, bytes)
    return response.status, response.body.decode()


async def test_the_pool_follows_the_names_addresses_as_they_come_and_go() -> None:
    a, b, c = HOSTS
    with trio.fail_after(GUARD):
        async with setup(a) as (dns_, the_fleet, app, url, client):
            assert [await get(client, url) for _ in range(10)] == [(200, f"{a}\n")] * 10

            dns_.records[NAME] = [a, b, c]
            await wait_for_endpoints(app, {the_fleet.endpoint(h) for h in (a, b, c)})
            # PeakEWMA rates an endpoint that has not answered yet at its default RTT (30 ms):
            # against endpoints that answer faster than that it loses every draw of p2c, and
            # sequential requests would never reach it. Requests slower than that try each
            # new endpoint at its first draw.
            seen: set[str] = set()
            for _ in range(40):
                status, body = await get(client, f"{url}/slow")
                assert status == 200
                seen.add(body.strip())
                if seen == {a, b, c}:
                    break
            assert seen == {a, b, c}

            dns_.records[NAME] = [a, c]
            await wait_for_endpoints(app, {the_fleet.endpoint(h) for h in (a, c)})
            before = the_fleet.served[b]
            bodies = [await get(client, url) for _ in range(40)]
    assert {status for status, _ in bodies} == {200}
    assert {body.strip() for _, body in bodies} <= {a, c}
    assert the_fleet.served[b] == before  # no request reached the removed address


async def test_a_request_in_flight_to_a_removed_endpoint_completes() -> None:
    a, b, _ = HOSTS
    with trio.fail_after(GUARD):
        async with setup(a) as (dns_, the_fleet, app, url, client):
            held: list[tuple[int, str]] = []
            async with trio.open_nursery() as nursery:

                async def hold() -> None:
                    held.append(await get(client, f"{url}/hold"))

                nursery.start_soon(hold)
                await the_fleet.entered[a].wait()

                dns_.records[NAME] = [b]
                await wait_for_endpoints(app, {the_fleet.endpoint(b)})
                later = [await get(client, url) for _ in range(10)]
                assert held == []  # still waiting on its removed endpoint
                the_fleet.release.set()
    assert held == [(200, f"{a}\n")]
    assert later == [(200, f"{b}\n")] * 10
    assert the_fleet.served[a] == 1  # only the held request


async def test_a_removed_endpoint_s_connections_are_closed_once_drained() -> None:
    a, b, _ = HOSTS
    with trio.fail_after(GUARD):
        async with setup(a) as (dns_, the_fleet, app, url, client):
            assert await get(client, url) == (200, f"{a}\n")
            server = the_fleet.servers[a].server
            assert server.statistics().active == 1  # the proxy's pooled connection

            dns_.records[NAME] = [b]
            await wait_for_endpoints(app, {the_fleet.endpoint(b)})
            with trio.move_on_after(SETTLE):
                while server.statistics().active:
                    await trio.sleep(INTERVAL / 4)
            active = server.statistics().active
    assert active == 0, f"{active} connection(s) to the removed endpoint still open"


@pytest.mark.parametrize("outage", ["drops queries", "closed"])
async def test_a_dns_outage_keeps_the_last_known_endpoints(
    outage: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="runtime.service.discover")
    a, b, _ = HOSTS
    with trio.fail_after(GUARD):
        async with setup(a, b) as (dns_, the_fleet, app, url, client):
            if outage == "closed":
                dns_.close()
            else:
                dns_.answering = False
            with trio.move_on_after(SETTLE):
                while not warnings(caplog):
                    status, _ = await get(client, url)
                    assert status == 200
                    await trio.sleep(INTERVAL / 4)
            logged = warnings(caplog)
            after = [await get(client, url) for _ in range(20)]
            pool = endpoints(app)
    assert logged, f"no warning on runtime.service.discover within {SETTLE} s"
    assert NAME in logged[0] and "keeping the last known endpoints" in logged[0]
    assert {status for status, _ in after} == {200}
    assert pool == {the_fleet.endpoint(a), the_fleet.endpoint(b)}


async def test_a_shutdown_does_not_wait_for_a_dns_lookup_that_gets_no_answer() -> None:
    a, _, _ = HOSTS
    with trio.fail_after(GUARD):
        async with setup(a) as (dns_, _, _, _, _):
            dns_.answering = False
            asked = dns_.queries
            with trio.move_on_after(SETTLE):
                while dns_.queries == asked:  # a lookup is now waiting for its answer
                    await trio.sleep(INTERVAL / 4)
            assert dns_.queries > asked
            started = time.monotonic()
        took = time.monotonic() - started  # the proxy's shutdown, then the fleet's
    assert took < 1.0, f"the shutdown took {took:.2f} s"


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "runtime.service.discover" and r.levelno == logging.WARNING
    ]


@pytest.mark.parametrize("answer", ["NXDOMAIN", "no A records"])
async def test_a_name_without_addresses_empties_the_pool_and_requests_get_a_fast_503(
    answer: str,
) -> None:
    a, _, _ = HOSTS
    with trio.fail_after(GUARD):
        async with setup(a) as (dns_, the_fleet, app, url, client):
            assert await get(client, url) == (200, f"{a}\n")
            if answer == "NXDOMAIN":
                del dns_.records[NAME]
            else:
                dns_.records[NAME] = []
            await wait_for_endpoints(app, set())
            started = time.monotonic()
            response = await client.get(url)
            elapsed = time.monotonic() - started
    assert response.status == 503 and isinstance(response.body, bytes)
    assert response.headers.get("retry-after") == "1"
    assert b"no ready endpoint" in response.body
    assert elapsed < 1.0  # no wait for an endpoint: the retries' short backoffs at most
    assert the_fleet.served[a] == 1
