"""mini-redis against redis-server, driven by redis-benchmark, in one invocation.

What runs:

* Two servers, each pinned to core 0 with ``taskset`` and started once for the whole run on
  a free port: ``examples/mini_redis/server.py`` ("mini-redis", ours) and Debian's
  ``redis-server --save '' --appendonly no`` (the native limit: C, one thread, epoll). Each
  answers a PING before it is measured; ours must exit 0 on SIGTERM at the end.
* The load client, ``redis-benchmark -c 50 -n N -q --csv`` (Debian's redis-tools), pinned to
  core 1, one invocation per test (``-t ping``, which runs PING_INLINE and PING_MBULK, then
  ``-t set``, ``-t get``), unpipelined and with ``-P 16``. Its CPU time (this process's
  children's rusage around each run) is reported as a share of its core; above ~70% the
  benchmark warns that the client may be setting the pace.
* Interleaved rounds (``--rounds``, default 5): in each round every test of every mode runs
  against both servers, in an order that alternates from one round to the next. The tables
  show medians over the rounds; the ratios are ratios of medians, with each round's own ratio
  for the spread.

Targets (issue 17): mini-redis >= 0.25x redis-server unpipelined (stretch 0.35x), on every
test; mini-redis pipelined (-P 16) >= 3x its own unpipelined figure.

Run (needs ``apt-get install -y redis-tools redis-server``):
    python benchmarks/redis.py                   # the full run: -n 100000, 5 rounds, ~3 min
    python benchmarks/redis.py --smoke           # every code path in a few seconds (the tests)
    python benchmarks/redis.py --py-spy /tmp/mr.txt   # profile ours under load, top functions
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if __package__ in (None, ""):
    # Run as a script, benchmarks/ is sys.path[0], where http.py (the benchmark) shadows the
    # standard library's http; import the benchmarks as a package from the root instead.
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
    sys.path.insert(0, str(ROOT))

from benchmarks import http as http_bench  # noqa: E402
from benchmarks import proxy as proxy_bench  # noqa: E402

EXAMPLE = ROOT / "examples" / "mini_redis" / "server.py"
CLIENT_CPU_WARN = http_bench.WRK_CPU_WARN
CONNS = 50
PIPELINE = 16
TESTS = ("ping", "set", "get")  # -t arguments; "ping" reports PING_INLINE and PING_MBULK
UNPIPELINED_TARGET = 0.25
UNPIPELINED_STRETCH = 0.35
PIPELINED_GAIN_TARGET = 3.0

Result = dict[str, Any]


# -- the servers -------------------------------------------------------------------------------


class RedisServer(proxy_bench.Proc):
    """A server on a port chosen beforehand (``proxy.Proc``), checked with a PING."""

    def _check_hello(self) -> None:
        with socket.create_connection(("127.0.0.1", self.port), timeout=30) as sock:
            sock.sendall(b"PING\r\n")
            reply = sock.recv(64)
        if reply != b"+PONG\r\n":
            raise RuntimeError(f"{self.impl.label}: PING answered {reply!r}\n{self.tail()}")


def impls(port_ours: int, port_redis: int, redis_server: str) -> list[http_bench.Impl]:
    return [
        http_bench.Impl(
            "ours",
            "mini-redis",
            (sys.executable, str(EXAMPLE), "--port", str(port_ours)),
            ("trio",),
            must_exit_cleanly=True,
        ),
        http_bench.Impl(
            "redis",
            "redis-server",
            (
                *(redis_server, "--port", str(port_redis), "--bind", "127.0.0.1"),
                *("--save", "", "--appendonly", "no", "--protected-mode", "no"),
            ),
            (),
        ),
    ]


# -- one run -----------------------------------------------------------------------------------


def run_benchmark(
    setup: http_bench.Setup,
    tool: str,
    server: RedisServer,
    test: str,
    requests: int,
    pipeline: int,
) -> dict[str, Result]:
    """One redis-benchmark run of ``test``; a result per reported test (PING gives two)."""
    argv = [*setup.client_pin, tool, "-p", str(server.port), "-c", str(CONNS)]
    argv += ["-n", str(requests), "-P", str(pipeline), "-t", test, "-q", "--csv"]
    # Only redis-benchmark is reaped in this window: the children's rusage delta is its CPU.
    cpu0, srv0, t0 = http_bench.children_cpu(), server.cpu_seconds(), time.monotonic()
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False)
    elapsed = time.monotonic() - t0
    cpu, srv = http_bench.children_cpu() - cpu0, server.cpu_seconds() - srv0
    rows = [row for row in csv.reader(io.StringIO(proc.stdout)) if row and row[0] != "test"]
    if proc.returncode != 0 or not rows:
        raise RuntimeError(
            f"redis-benchmark -t {test} against {server.impl.label} failed "
            f"(status {proc.returncode}):\n{proc.stdout.strip()}\n{proc.stderr.strip()}\n"
            f"{server.tail()}"
        )
    results = {}
    for row in rows:
        results[row[0]] = {
            "rps": float(row[1]),
            "p50_ms": float(row[4]) if len(row) > 4 else float("nan"),
            "client_cpu_pct": 100 * cpu / elapsed,
            "server_cpu_pct": 100 * srv / elapsed,
        }
    return results


# -- rounds ------------------------------------------------------------------------------------

Runs = dict[int, dict[str, dict[str, list[Result]]]]  # pipeline -> test -> server -> rounds


def run_rounds(
    setup: http_bench.Setup,
    tool: str,
    servers: dict[str, RedisServer],
    requests: int,
    rounds: int,
    pipelines: list[int],
) -> Runs:
    runs: Runs = {p: {} for p in pipelines}
    keys = list(servers)
    for r in range(rounds):
        order = keys if r % 2 == 0 else keys[::-1]
        print(f"  round {r + 1}/{rounds}: {' then '.join(servers[k].impl.label for k in order)}")
        for pipeline in pipelines:
            for test in TESTS:
                for key in order:
                    got = run_benchmark(setup, tool, servers[key], test, requests, pipeline)
                    for name, result in got.items():
                        runs[pipeline].setdefault(name, {}).setdefault(key, []).append(result)
    return runs


def median(results: list[Result], field: str) -> float:
    return statistics.median(r[field] for r in results)


def print_tables(runs: Runs, servers: dict[str, RedisServer]) -> None:
    worst_cpu = 0.0
    for pipeline, tests in runs.items():
        print(f"\n-P {pipeline}, -c {CONNS}: requests/s (medians over rounds)")
        print(
            f"  {'test':<12} {'server':<13} {'req/s':>9} {'p50 ms':>7} {'client cpu':>10} "
            f"{'srv cpu':>7}  per-round req/s"
        )
        for name, by_server in tests.items():
            for key, results in by_server.items():
                worst_cpu = max(worst_cpu, *(r["client_cpu_pct"] for r in results))
                rounds = ", ".join(f"{r['rps']:.0f}" for r in results)
                print(
                    f"  {name:<12} {servers[key].impl.label:<13} {median(results, 'rps'):>9.0f} "
                    f"{median(results, 'p50_ms'):>7.3f} "
                    f"{median(results, 'client_cpu_pct'):>9.0f}% "
                    f"{median(results, 'server_cpu_pct'):>6.0f}%  {rounds}"
                )
    if worst_cpu > CLIENT_CPU_WARN:
        print(
            f"  WARNING: redis-benchmark used up to {worst_cpu:.0f}% of its core "
            f"(> {CLIENT_CPU_WARN:.0f}%): it may set the pace for the faster server; read "
            "those ratios as bounds"
        )


def report_targets(runs: Runs, caveat: str) -> None:
    print(f"\nratios and targets (medians of the interleaved rounds){caveat}")
    plain = runs.get(1, {})
    for name, by_server in plain.items():
        if "ours" not in by_server or "redis" not in by_server:
            continue
        value = http_bench.ratio(
            median(by_server["ours"], "rps"), median(by_server["redis"], "rps")
        )
        per_round = [
            http_bench.ratio(a["rps"], b["rps"])
            for a, b in zip(by_server["ours"], by_server["redis"], strict=True)
        ]
        verdict = "PASS" if value >= UNPIPELINED_TARGET else "MISS"
        stretch = "met" if value >= UNPIPELINED_STRETCH else "not met"
        print(
            f"  {verdict}  mini-redis/redis-server {name} -P 1: {value:.2f}x "
            f"(>= {UNPIPELINED_TARGET}x; stretch {UNPIPELINED_STRETCH}x {stretch}; rounds: "
            f"{', '.join(f'{x:.2f}' for x in per_round)}; "
            f"median of the rounds' ratios {statistics.median(per_round):.2f}x)"
        )
    piped = runs.get(PIPELINE, {})
    for name, by_server in piped.items():
        if "redis" in by_server and "ours" in by_server:
            value = http_bench.ratio(
                median(by_server["ours"], "rps"), median(by_server["redis"], "rps")
            )
            print(
                f"        mini-redis/redis-server {name} -P {PIPELINE}: {value:.2f}x (no target)"
            )
        if "ours" in by_server and name in plain and "ours" in plain[name]:
            gain = http_bench.ratio(
                median(by_server["ours"], "rps"), median(plain[name]["ours"], "rps")
            )
            verdict = "PASS" if gain >= PIPELINED_GAIN_TARGET else "MISS"
            print(
                f"  {verdict}  mini-redis {name} -P {PIPELINE} / -P 1: {gain:.2f}x "
                f"(>= {PIPELINED_GAIN_TARGET}x)"
            )


# -- profile -----------------------------------------------------------------------------------


def profile(
    setup: http_bench.Setup, tool: str, server: RedisServer, out: Path, requests: int, top: int
) -> None:
    """py-spy on ours during unpipelined runs of every test; the top functions by own time."""
    spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if spy is None:
        print("  py-spy not found (pip install py-spy): no profile")
        return
    recorder = subprocess.Popen(
        [spy, "record", "--pid", str(server.proc.pid), "--format", "raw", "-o", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        for test in TESTS:
            run_benchmark(setup, tool, server, test, requests, 1)
    finally:
        recorder.send_signal(2)  # SIGINT: py-spy writes its file and exits
        _, err = recorder.communicate(timeout=60)
    if not out.exists():
        print(f"  py-spy wrote no profile: {err.decode(errors='replace').strip()}")
        return
    own: dict[str, int] = {}
    total = 0
    for line in out.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        frame = stack.rsplit(";", 1)[-1]
        own[frame] = own.get(frame, 0) + int(count)
        total += int(count)
    print(f"\nprofile ({total} samples, py-spy -> {out}); top {top} by own time:")
    for frame, count in sorted(own.items(), key=lambda kv: kv[1], reverse=True)[:top]:
        print(f"  {100 * count / total:5.1f}%  {frame.replace(str(ROOT) + os.sep, '')}")


# -- main --------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--requests", "-n", type=int, default=100_000, help="per run (100000)")
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default 5)")
    p.add_argument("--no-pipeline", action="store_true", help="skip the -P 16 runs")
    p.add_argument("--smoke", action="store_true", help="tiny: 1 round, -n 2000")
    p.add_argument("--py-spy", type=Path, metavar="FILE", help="only profile ours under load")
    p.add_argument("--top", type=int, default=25, help="functions listed by --py-spy")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.smoke:
        args.rounds, args.requests = 1, 2000
    tool, redis_server = shutil.which("redis-benchmark"), shutil.which("redis-server")
    if tool is None or redis_server is None:
        print(
            "error: redis-benchmark and redis-server are needed: "
            "apt-get install -y redis-tools redis-server",
            file=sys.stderr,
        )
        return 2
    server_pin, client_pin, pin_note = http_bench.pin_prefixes()
    pin_note = pin_note.replace("wrk", "redis-benchmark")
    version = subprocess.run([redis_server, "--version"], capture_output=True, text=True)
    print(f"Redis benchmark on Python {platform.python_version()}, {os.cpu_count()} cores")
    print(f"  load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}; {pin_note}")
    print(f"  {http_bench.source_version()}; {version.stdout.strip()}")
    setup = http_bench.Setup(server_pin, client_pin, "", Path(), 0, 0.0)
    ports = proxy_bench.free_port(), proxy_bench.free_port()
    servers: dict[str, RedisServer] = {}
    statuses: dict[str, int] = {}
    try:
        for impl, port in zip(impls(*ports, redis_server), ports, strict=True):
            servers[impl.key] = RedisServer(setup, impl, port)
        if args.py_spy is not None:
            profile(setup, tool, servers["ours"], args.py_spy, args.requests, args.top)
            return 0
        pipelines = [1] if args.no_pipeline else [1, PIPELINE]
        print(
            f"\nredis-benchmark -c {CONNS} -n {args.requests} -q, -t {','.join(TESTS)} one at a "
            f"time, -P {' and -P '.join(map(str, pipelines))}; {args.rounds} round(s), servers "
            "alternating"
        )
        runs = run_rounds(setup, tool, servers, args.requests, args.rounds, pipelines)
    finally:
        for key, server in servers.items():
            statuses[key] = server.stop()
    print_tables(runs, servers)
    caveat = " -- SMOKE RUN: tiny counts, the figures mean nothing" if args.smoke else ""
    report_targets(runs, caveat)
    if statuses.get("ours", 0) != 0:
        print(f"  FAIL  mini-redis exited with status {statuses['ours']} after SIGTERM")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
