"""The production proxy, HTTP client and servers inside the simulator, with faults.

``examples/sim_topology.py`` builds the world: a client host, the proxy (``serve_proxy`` as
``python -m runtime proxy`` runs it) and three upstreams running ``HttpServer``. Midway the
proxy's link to web1 is partitioned and web2 is killed; later the partition heals and web2 is
restarted. Every GET must get its own 200, and one seed must give one trace.
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path
from types import ModuleType

import pytest
import trio

from runtime.http import Client
from runtime.proxy import parse_config, serve_proxy
from runtime.testing.sim import Sim

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "sim_topology.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("example_sim_topology", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


topology = _load()


def test_a_thousand_requests_survive_a_partition_and_a_kill_with_one_trace_per_seed() -> None:
    first = topology.run_sync(7, 1000)
    assert first.statuses == {"200": 1000}, first.failures
    assert set(first.served_by) == {"web1", "web2", "web3"}
    events = " ".join(first.trace)
    for fault in ("partition proxy web1", "kill web2", "repair proxy web1", "restart web2"):
        assert fault in events
    assert "rst 10.0.0.5:9000>" in events  # the kill reset web2's connections
    again = topology.run_sync(7, 1000)
    assert again.trace == first.trace  # byte for byte
    assert again.trace_digest == first.trace_digest
    assert topology.run_sync(8, 1000).trace_digest != first.trace_digest


@pytest.mark.sim_seeds(200)
async def test_sweep_of_seeds_every_get_is_answered(sim_seed: int) -> None:
    outcome = await topology.run(sim_seed, 50, concurrency=5)
    assert outcome.statuses == {"200": 50}, outcome.failures


TWO_DOWN = topology.PROXY_CONFIG.replace(
    'endpoints = ["web1:9000", "web2:9000", "web3:9000"]',
    'endpoints = ["web1:9000", "web2:9000", "web3:9000"]\nfailure_threshold = 1000',
)


@pytest.mark.sim_seeds(3)
async def test_regression_a_retry_goes_to_an_endpoint_it_has_not_failed_on(sim: Sim) -> None:
    """Found by the simulator: with web1 partitioned away and web2 dead, the proxy's
    retries drew endpoints at random, so a GET whose three tries drew the two bad ones
    failed with 502 though web3 was up. A try now avoids the endpoints its request failed
    on while another is ready. (The breakers are held off here, so that only the retry's
    choice can save the request.)"""
    client_host, proxy_host = sim.add_host("client"), sim.add_host("proxy")
    webs = [sim.add_host(f"web{n}") for n in (1, 2, 3)]
    for web in webs:
        await web.start(topology.serve_web, web)
    config = parse_config(TWO_DOWN)
    assert config.upstreams[0].failure_threshold == 1000
    await proxy_host.start(functools.partial(serve_proxy, config, network=proxy_host))
    sim.partition("proxy", "web1")
    sim.kill("web2")
    answers: list[int] = []
    async with Client(connector=client_host.connector(connect_timeout=5.0)) as client:
        for n in range(60):
            response = await client.get(f"http://proxy:8080/{n}")
            answers.append(response.status)
            assert response.body == f"web3 /{n}\n".encode() or response.status != 200
    assert answers == [200] * 60
    assert trio.current_time() > 0  # the tries took simulated time, none of it real
