"""A client, the proxy and three upstreams, in a simulated network, with faults on the way.

Everything here is production code: ``runtime.http.HttpServer`` on the upstreams,
``runtime.proxy.serve_proxy`` on the proxy host, ``runtime.http.Client`` on the client host.
The only change is where their sockets come from: each is given a host of the
:class:`~runtime.testing.sim.Sim` as its network. Midway, the proxy's link to ``web1`` is
partitioned and ``web2`` is killed; later the partition heals and ``web2`` comes back.

Run it (a few seconds of wall time for minutes of simulated traffic)::

    python examples/sim_topology.py --seed 7 --requests 1000

It prints how many requests got which status, the simulated time and the trace's digest;
the same seed prints the same digest, every run.
"""

from __future__ import annotations

import argparse
import collections
import functools
from typing import Any

import attrs
import trio
import trio.testing

import runtime
from runtime.http import Client, HttpConfig, HttpServer, Request, Response
from runtime.proxy import parse_config, serve_proxy
from runtime.testing.sim import Host, LinkConfig, Sim

PROXY_CONFIG = """
[admin]
listen = "127.0.0.1:9901"

[[listeners]]
name = "web"
listen = "0.0.0.0:8080"

[[routes]]
listener = "web"
path_prefix = "/"
upstream = "backend"
timeout = 5.0
per_try_timeout = 0.5
retries = 2

[[upstreams]]
name = "backend"
endpoints = ["web1:9000", "web2:9000", "web3:9000"]
connect_timeout = 0.25
"""


async def serve_web(host: Host, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
    """An upstream: answers ``GET /n`` with its name and ``n``."""

    async def handler(request: Request) -> Response:
        return Response.text(f"{host.name} {request.target}\n")

    server = HttpServer(handler, [host.bind("0.0.0.0", 9000)], HttpConfig(name=host.name))
    await server.serve(task_status=task_status)


@attrs.frozen
class Outcome:
    """What one run of the topology gave."""

    statuses: dict[str, int]  # status (or error name): how many requests got it
    failures: tuple[str, ...]  # what each request that did not get its 200 got
    served_by: dict[str, int]  # upstream name: how many answers it gave
    simulated_seconds: float
    trace_lines: int
    trace_digest: str
    trace: tuple[str, ...]


async def run(
    seed: int, requests: int = 1000, *, concurrency: int = 20, faults: bool = True
) -> Outcome:
    """The topology with ``seed``: ``requests`` GETs from ``concurrency`` client tasks."""
    config = runtime.RuntimeConfig(handle_signals=False, shutdown_grace=1.0)
    statuses: collections.Counter[str] = collections.Counter()
    served_by: collections.Counter[str] = collections.Counter()
    failures: list[str] = []
    async with runtime.open_runtime(config):
        link = LinkConfig(latency=0.0005, jitter=0.0005)
        async with Sim(seed=seed, link=link) as sim:
            client_host = sim.add_host("client")
            proxy_host = sim.add_host("proxy")
            webs = [sim.add_host(f"web{n}", main=serve_web) for n in (1, 2, 3)]
            for web in webs:
                await web.start(serve_web, web)
            proxy_config = parse_config(PROXY_CONFIG)
            await proxy_host.start(
                functools.partial(serve_proxy, proxy_config, network=proxy_host)
            )
            start = trio.current_time()
            done = 0
            milestones = {
                requests * 2 // 10: lambda: sim.partition("proxy", "web1"),
                requests * 4 // 10: lambda: sim.kill("web2"),
            }
            healed = trio.Event()
            next_request = iter(range(requests))

            async with Client(connector=client_host.connector(connect_timeout=1.0)) as client:

                async def one(n: int) -> None:
                    try:
                        response = await client.get(f"http://proxy:8080/{n}")
                    except Exception as exc:  # counted: the caller says which
                        statuses[type(exc).__name__] += 1
                        failures.append(f"/{n}: {exc!r}")
                        return
                    answer = response.body.decode()
                    if response.status != 200:
                        statuses[str(response.status)] += 1
                        failures.append(f"/{n}: {response.status} {answer.strip()}")
                        return
                    name, target = answer.split()
                    if target != f"/{n}":  # someone else's answer: a desync
                        statuses["mismatched"] += 1
                        failures.append(f"/{n}: the answer to {target}")
                    else:
                        statuses["200"] += 1
                    served_by[name] += 1

                async def worker() -> None:
                    nonlocal done
                    for n in next_request:
                        await one(n)
                        done += 1
                        fault = milestones.pop(done, None) if faults else None
                        if fault is not None:
                            fault()
                        if faults and done == requests * 7 // 10:
                            healed.set()

                async def heal() -> None:
                    await healed.wait()
                    sim.repair("proxy", "web1")
                    await sim.restart("web2")

                async with trio.open_nursery() as nursery:
                    if faults:
                        nursery.start_soon(heal)
                    async with trio.open_nursery() as workers:
                        for _ in range(concurrency):
                            workers.start_soon(worker)
                    healed.set()
            elapsed = trio.current_time() - start
            trace = tuple(sim.trace)
            digest = sim.trace_digest()
    return Outcome(
        dict(statuses), tuple(failures), dict(served_by), elapsed, len(trace), digest, trace
    )


def run_sync(seed: int, requests: int = 1000, **kwargs: Any) -> Outcome:
    """:func:`run` in a Trio run of its own, under a jumping MockClock."""
    clock = trio.testing.MockClock(autojump_threshold=0)
    outcome: Outcome = trio.run(functools.partial(run, seed, requests, **kwargs), clock=clock)
    return outcome


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0, help="the world's seed (default 0)")
    parser.add_argument("--requests", type=int, default=1000, help="GETs to send (1000)")
    parser.add_argument("--no-faults", action="store_true", help="no partition, no kill")
    args = parser.parse_args()
    outcome = run_sync(args.seed, args.requests, faults=not args.no_faults)
    print(f"statuses: {dict(sorted(outcome.statuses.items()))}")
    print(f"served by: {dict(sorted(outcome.served_by.items()))}")
    print(f"simulated: {outcome.simulated_seconds:.3f} s, trace: {outcome.trace_lines} events")
    print(f"trace digest: {outcome.trace_digest}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
