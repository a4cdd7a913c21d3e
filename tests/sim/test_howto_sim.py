"""The test shown in docs/how-to/test-distributed-failures.md (included from here)."""

from __future__ import annotations

import functools

import pytest

from runtime.http import Client, HttpServer, Request, Response
from runtime.proxy import parse_config, serve_proxy
from runtime.testing.sim import Host, Sim

CONFIG = """
[admin]
listen = "127.0.0.1:9901"

[[listeners]]
name = "web"
listen = "0.0.0.0:8080"

[[routes]]
listener = "web"
upstream = "backend"
per_try_timeout = 0.5
retries = 2

[[upstreams]]
name = "backend"
endpoints = ["a:9000", "b:9000"]
connect_timeout = 0.25
"""


async def hello(host: Host, *, task_status: object) -> None:
    async def answer(request: Request) -> Response:
        return Response.text(f"hello from {host.name}\n")

    server = HttpServer(answer, [host.bind("0.0.0.0", 9000)])
    await server.serve(task_status=task_status)  # type: ignore[arg-type]


@pytest.mark.sim_seeds(20)  # once per seed 0..19; --sim-seeds N overrides the count
async def test_a_dead_upstream_costs_no_request(sim: Sim) -> None:
    client_host, proxy = sim.add_host("client"), sim.add_host("proxy")
    for name in ("a", "b"):
        upstream = sim.add_host(name)
        await upstream.start(hello, upstream)
    # the production proxy, given a simulated host as its network
    config = parse_config(CONFIG)
    await proxy.start(functools.partial(serve_proxy, config, network=proxy))

    async with Client(connector=client_host.connector()) as client:
        for n in range(20):
            if n == 5:
                sim.kill("a")  # its tasks cancelled, its connections reset
            response = await client.get("http://proxy:8080/")
            assert response.status == 200
            if n > 5:
                assert response.body == b"hello from b\n"
