"""What the simulator costs: the same topology in the simulator and on real loopback TCP.

The topology of ``examples/sim_topology.py``: a client, the proxy (``serve_proxy``) and three
``HttpServer`` upstreams, all in this process, ``--requests`` GETs from 20 client tasks. Three
shapes, interleaved over ``--rounds`` rounds, the median of each reported:

  sim+faults: in the simulator, with the partition of web1 and the kill of web2 (the test's
              scenario: its wall time is what the acceptance asks to report);
  sim:        in the simulator, no faults;
  loopback:   the same production objects on this machine's TCP (127.0.0.1), no faults.

The ratio ``sim / loopback`` is what the simulated network costs over the kernel's (the
simulator runs the same HTTP and proxy code, plus its own delivery of every segment). All of
it runs in one process on one core (``taskset -c 0`` when there is one to pin): no load client
is involved, so there is no client CPU to report.

Run: python benchmarks/sim.py [--requests N] [--rounds R]
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import os
import statistics
import sys
import time
from pathlib import Path
from types import ModuleType

HERE = Path(__file__).resolve().parent
if __package__ in (None, ""):
    # Run as a script, benchmarks/ is sys.path[0], where http.py (the benchmark) shadows the
    # standard library's http, which prometheus-client imports: take benchmarks/ off the path.
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]

import trio  # noqa: E402

import runtime  # noqa: E402
from runtime.http import Client, HttpConfig, HttpServer, Request, Response  # noqa: E402
from runtime.net import TcpListener  # noqa: E402
from runtime.proxy import parse_config, serve_proxy  # noqa: E402

EXAMPLE = HERE.parent / "examples" / "sim_topology.py"


def _topology() -> ModuleType:
    spec = importlib.util.spec_from_file_location("example_sim_topology", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def loopback(requests: int, concurrency: int = 20) -> int:
    """The topology on 127.0.0.1 with no faults; returns how many GETs got a 200."""
    config = runtime.RuntimeConfig(handle_signals=False, shutdown_grace=1.0)
    ok = 0
    async with runtime.open_runtime(config), trio.open_nursery() as nursery:
        ports = []
        for n in (1, 2, 3):
            name = f"web{n}"

            async def handler(request: Request, name: str = name) -> Response:
                return Response.text(f"{name} {request.target}\n")

            listener = TcpListener.bind("127.0.0.1", 0)
            ports.append(listener.port)
            await nursery.start(HttpServer(handler, [listener], HttpConfig(name=name)).serve)
        text = _topology().PROXY_CONFIG
        text = text.replace('"0.0.0.0:8080"', '"127.0.0.1:0"').replace(
            '"127.0.0.1:9901"', '"127.0.0.1:0"'
        )
        text = text.replace(
            '["web1:9000", "web2:9000", "web3:9000"]',
            "[" + ", ".join(f'"127.0.0.1:{port}"' for port in ports) + "]",
        )
        app = await nursery.start(functools.partial(serve_proxy, parse_config(text)))
        url = f"http://127.0.0.1:{app.ports['web']}"
        numbers = iter(range(requests))
        async with Client() as client:

            async def worker() -> None:
                nonlocal ok
                for n in numbers:
                    response = await client.get(f"{url}/{n}")
                    ok += response.status == 200

            async with trio.open_nursery() as workers:
                for _ in range(concurrency):
                    workers.start_soon(worker)
        nursery.cancel_scope.cancel()
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000, help="GETs per run (1000)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (3)")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity") and len(os.sched_getaffinity(0)) > 1:
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core, as taskset -c 0
    topology = _topology()
    print(
        f"{args.requests} GETs, client -> proxy -> 3 upstreams, {args.rounds} interleaved "
        f"rounds (python {sys.version.split()[0]}, trio {trio.__version__})"
    )
    times: dict[str, list[float]] = {"sim+faults": [], "sim": [], "loopback": []}
    simulated = 0.0
    for _ in range(args.rounds):
        start = time.perf_counter()
        outcome = topology.run_sync(7, args.requests)
        times["sim+faults"].append(time.perf_counter() - start)
        simulated = outcome.simulated_seconds
        assert outcome.statuses == {"200": args.requests}, outcome.failures
        start = time.perf_counter()
        outcome = topology.run_sync(7, args.requests, faults=False)
        times["sim"].append(time.perf_counter() - start)
        assert outcome.statuses == {"200": args.requests}, outcome.failures
        start = time.perf_counter()
        ok = trio.run(loopback, args.requests)
        times["loopback"].append(time.perf_counter() - start)
        assert ok == args.requests, ok
    medians = {name: statistics.median(values) for name, values in times.items()}
    for name, value in medians.items():
        print(f"  {name:<11} {value * 1000:8.1f} ms wall (median)")
    print(f"  sim+faults covered {simulated:.3f} s of simulated time")
    print(f"ratio sim / loopback = {medians['sim'] / medians['loopback']:.2f}")
    print(f"ratio sim+faults / loopback = {medians['sim+faults'] / medians['loopback']:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
