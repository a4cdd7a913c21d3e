"""Reverse proxy: the latency it adds at a fixed rate, and its throughput, against its peers.

What runs:

* The upstream: ``examples/http_hello.py`` (our HTTP server, parser h11), one process for the
  whole run, answering ``GET /`` with 200 ``Hello, world!``.
* The proxies under test, each a fresh process per round, each forwarding every path to that
  upstream over keep-alive connections, with access logging off (a log line per request
  would measure the logger, not the proxy):

  - ``ours``: ``python -m runtime proxy --config FILE``, a temp config with one listener on
    port 0, one route ``/``, one upstream (the upstream's endpoint), ``access_log = false``
    and the admin endpoint on port 0.
  - ``nginx``: ``nginx -g 'daemon off;'``, one worker, ``access_log off``, an ``upstream``
    block with ``keepalive 64`` (HTTP/1.1 to the upstream).
  - ``haproxy``: ``haproxy -db``, mode http, ``http-reuse always``, no log.
  - ``mitmproxy``: ``mitmdump -q --mode reverse:http://UPSTREAM``, from its own virtualenv in
    ``benchmarks/.build/mitmproxy-venv`` (created with ``python3 -m venv`` and ``pip install
    mitmproxy`` on first use, then reused: it pins h11/wsproto versions of its own).

  A peer that can't be found or installed is skipped with a message naming the install
  command. ``direct`` is the upstream itself, no proxy: the baseline.
* How the three processes share the two cores (``--upstream-core``):

  - ``split`` (the default): the proxy under test has core 0 to itself (``taskset -c 0``);
    the upstream and the load tool share core 1. The proxy is the system under test, and the
    rest is its surroundings, as when a reverse proxy runs on its own machine in front of
    servers on others. ``direct`` is the upstream alone on core 1, called by the load tool.
  - ``shared``: the upstream and the proxy share core 0, the load tool has core 1. Then a
    request waits for whichever of the two has the core to yield it, on the way in and on
    the way out: this layout measures how two busy processes take turns on one core as much
    as the proxy (on some days even haproxy, at a tenth of a core, added about 0.9 ms at
    the median).

  The CPU of the load tool and of the upstream is printed, with a warning above ~70% of its
  core for the load tool, where it may be setting the pace. In ``split`` the upstream and wrk
  together fill core 1 in the throughput runs of the fast proxies (and ``direct``): those
  figures are then the upstream's ceiling, not the proxy's.
* Added latency: ``--rate-conns`` (10) ``h2load --h1 -t1 -c1 --rps 100`` processes, i.e.
  ``--rate`` (default 1,000) requests/s in all, each connection paced by h2load with at most
  one request in flight, the processes started ~1 ms apart so the connections' ticks spread
  over the period (one h2load with ``-c10`` fires all ten on the same tick: bursts of ten),
  for ``--latency-duration`` seconds after ``--latency-warmup`` seconds, against the upstream
  directly and through each proxy. h2load times a request from when it sends it, so a
  request that waited for its connection's previous one is timed from then (coordinated
  omission, as in wrk; at this rate the proxies that keep up rarely queue). p50 and p99
  come from h2load's per-request logs (``--log-file``); the added p50/p99 of a proxy is its
  latency minus the direct one (medians over rounds of each).
* Maximum throughput: ``wrk -t1 -c64`` as ``benchmarks/http.py`` runs it (an unrecorded
  warm-up run, then ``--duration`` seconds; errors and non-2xx counted), through each proxy
  and directly; ratios ours/mitmproxy (target), ours/nginx and ours/haproxy (reported).
* Interleaved rounds (``--rounds``, default 3): each round runs every target once, in a
  rotating order; the tables show medians over rounds.

Targets (from the issue), medians of the rounds: ours adds <= 1 ms at p50 and <= 5 ms at p99
at 1,000 requests/s; ours >= 2x mitmproxy's throughput.

Run (needs ``apt-get install -y wrk nghttp2-client``; the peers ``apt-get install -y
nginx-light haproxy``; mitmproxy's venv needs the network once):
    python benchmarks/proxy.py                        # the full run, ~3 minutes on 2 cores
    python benchmarks/proxy.py --smoke --proxies ours # every path of ours in ~15 s (the test)
    python benchmarks/proxy.py --rounds 5 --duration 5 --proxies ours,nginx
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if __package__ in (None, ""):
    # Run as a script, benchmarks/ is sys.path[0], where http.py (the benchmark) shadows the
    # standard library's http; import the benchmarks as a package from the root instead.
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
    sys.path.insert(0, str(ROOT))

from benchmarks import echo  # noqa: E402
from benchmarks import http as http_bench  # noqa: E402

MITM_VENV = HERE / ".build" / "mitmproxy-venv"
MITM_CONF = HERE / ".build" / "mitmproxy-conf"  # its CA, made once, not in ~/.mitmproxy
CLIENT_CPU_WARN = http_bench.WRK_CPU_WARN
CORE_FULL_PCT = 90.0  # upstream + wrk on core 1 (split): the upstream is the ceiling
ADDED_P50_MS = 1.0
ADDED_P99_MS = 5.0
MITM_RATIO = 2.0

Result = dict[str, Any]


# -- the processes ---------------------------------------------------------------------------


class Proc(http_bench.Server):
    """A server from ``benchmarks/http.py``'s machinery; a peer that prints no address listens
    on ``port`` (chosen beforehand), and its CPU counts its worker processes too."""

    def __init__(self, setup: http_bench.Setup, impl: http_bench.Impl, port: int = 0) -> None:
        self.fixed_port = port
        super().__init__(setup, impl)

    def _wait_listening(self) -> int:
        if not self.fixed_port:
            return super()._wait_listening()
        deadline = time.monotonic() + http_bench.START_TIMEOUT
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                socket.create_connection(("127.0.0.1", self.fixed_port), timeout=1).close()
                return self.fixed_port
            except OSError:
                time.sleep(0.02)  # polling a peer's port; bounded by the deadline
        raise RuntimeError(
            f"{self.impl.label} did not start (status {self.proc.poll()}):\n{self.tail()}"
        )

    def cpu_seconds(self) -> float:
        """User + system CPU time of the process and its direct children (nginx's worker)."""
        total = 0.0
        for pid in [self.proc.pid, *children(self.proc.pid)]:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        return total


def children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@attrs.frozen
class Peer:
    """A proxy under test: how to find it, and how to write its config and command."""

    key: str
    label: str
    install: str  # the command that installs it, printed when it is missing


PEERS = {
    p.key: p
    for p in (
        Peer("ours", "ours", ""),
        Peer("nginx", "nginx", "apt-get install -y nginx-light   (or nginx)"),
        Peer("haproxy", "haproxy", "apt-get install -y haproxy"),
        Peer(
            "mitmproxy",
            "mitmproxy",
            f"python3 -m venv {MITM_VENV.relative_to(ROOT)} && "
            f"{(MITM_VENV / 'bin' / 'pip').relative_to(ROOT)} install mitmproxy",
        ),
    )
}


def mitmdump() -> str | None:
    """mitmdump from its own venv, created (and mitmproxy installed) on first use."""
    exe = MITM_VENV / "bin" / "mitmdump"
    if exe.exists():
        return str(exe)
    print(f"  creating {MITM_VENV.relative_to(ROOT)} and installing mitmproxy (once) ...")
    try:
        subprocess.run(["python3", "-m", "venv", str(MITM_VENV)], check=True, timeout=120)
        subprocess.run(
            [str(MITM_VENV / "bin" / "pip"), "install", "-q", "mitmproxy"],
            check=True,
            timeout=600,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        print(f"  mitmproxy install failed: {exc}")
        return None
    return str(exe) if exe.exists() else None


def find_peers(keys: Sequence[str]) -> dict[str, str]:
    """The executable of each peer asked for; a missing one is skipped, saying how to get it."""
    found: dict[str, str] = {}
    for key in keys:
        if key == "ours":
            found[key] = sys.executable
            continue
        exe = mitmdump() if key == "mitmproxy" else shutil.which(key, path=_sbin_path())
        if exe is None:
            print(f"  SKIP {key}: not found; install it: {PEERS[key].install}")
        else:
            found[key] = exe
    return found


def _sbin_path() -> str:
    return os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])


def proxy_impl(key: str, exe: str, upstream: int, tmp: Path) -> tuple[http_bench.Impl, int]:
    """The command (and its config files in ``tmp``) of proxy ``key`` in front of port
    ``upstream``, and the port it will listen on (0: it prints it)."""
    if key == "ours":
        config = tmp / "ours.toml"
        config.write_text(
            "access_log = false   # logging off for the benchmark\n"
            "[admin]\n"
            'listen = "127.0.0.1:0"\n'
            "[[listeners]]\n"
            'name = "web"\n'
            'listen = "127.0.0.1:0"\n'
            "[[routes]]\n"
            'listener = "web"\n'
            'upstream = "hello"\n'
            "[[upstreams]]\n"
            'name = "hello"\n'
            f'endpoints = ["127.0.0.1:{upstream}"]\n'
        )
        argv = (exe, "-m", "runtime", "proxy", "--config", str(config))
        return http_bench.Impl("ours", "ours", argv, (), must_exit_cleanly=True), 0
    port = free_port()
    if key == "nginx":
        prefix = tmp / "nginx"
        prefix.mkdir(exist_ok=True)
        config = prefix / "nginx.conf"
        temps = "\n".join(
            f"  {kind}_temp_path {prefix / kind};"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        config.write_text(
            "worker_processes 1;\n"
            f"error_log {prefix / 'error.log'} warn;\n"
            f"pid {prefix / 'nginx.pid'};\n"
            "events { worker_connections 4096; }\n"
            "http {\n"
            "  access_log off;\n"
            f"{temps}\n"
            f"  upstream hello {{ server 127.0.0.1:{upstream}; keepalive 64; }}\n"
            "  server {\n"
            f"    listen 127.0.0.1:{port};\n"
            "    location / {\n"
            "      proxy_pass http://hello;\n"
            "      proxy_http_version 1.1;\n"
            '      proxy_set_header Connection "";\n'
            "    }\n"
            "  }\n"
            "}\n"
        )
        argv = (exe, "-g", "daemon off;", "-c", str(config), "-p", str(prefix))
    elif key == "haproxy":
        config = tmp / "haproxy.cfg"
        config.write_text(
            "global\n"
            "  maxconn 4096\n"
            "  nbthread 1\n"
            "defaults\n"
            "  mode http\n"
            "  timeout connect 5s\n"
            "  timeout client 60s\n"
            "  timeout server 60s\n"
            "frontend web\n"
            f"  bind 127.0.0.1:{port}\n"
            "  default_backend hello\n"
            "backend hello\n"
            "  http-reuse always\n"
            f"  server up 127.0.0.1:{upstream}\n"
        )
        argv = (exe, "-f", str(config), "-db")
    else:
        MITM_CONF.mkdir(parents=True, exist_ok=True)
        argv = (
            *(exe, "-q", "--mode", f"reverse:http://127.0.0.1:{upstream}"),
            *("--listen-host", "127.0.0.1", "--listen-port", str(port)),
            *("--set", f"confdir={MITM_CONF}"),
        )
    return http_bench.Impl(key, PEERS[key].label, argv, ()), port


# -- the load --------------------------------------------------------------------------------


@attrs.frozen
class Load:
    """How this invocation loads the targets."""

    h2load: str
    rate: int
    rate_conns: int
    latency_duration: int
    latency_warmup: int


def percentile(sorted_values: list[int], pct: float) -> float:
    """Nearest-rank percentile of an already sorted list."""
    if not sorted_values:
        return float("nan")
    rank = max(1, -(-len(sorted_values) * pct // 100))
    return float(sorted_values[int(rank) - 1])


def run_h2load(setup: http_bench.Setup, load: Load, port: int, label: str) -> Result:
    """One constant-rate run; p50/p99 from h2load's per-request logs, in microseconds.

    ``rate_conns`` h2load processes, one connection each at ``rate / rate_conns`` requests/s,
    started about ``1 / rate`` apart: one h2load with many connections fires them all on the
    same tick (bursts of ``rate_conns`` every period), which measures a burst's queue, not a
    steady rate.
    """
    with tempfile.TemporaryDirectory() as tmp:
        procs = []
        cpu0, t0 = http_bench.children_cpu(), time.monotonic()
        for i in range(load.rate_conns):
            argv = [*setup.client_pin, load.h2load, "--h1", "-t1", "-c1"]
            argv += [f"--rps={load.rate / load.rate_conns:g}", f"-D{load.latency_duration}"]
            if load.latency_warmup:
                argv.append(f"--warm-up-time={load.latency_warmup}")
            argv += ["--log-file", f"{tmp}/{i}.tsv", f"http://127.0.0.1:{port}/"]
            out = open(f"{tmp}/{i}.out", "w+b")  # noqa: SIM115 (read and closed below)
            procs.append((subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT), out))
            time.sleep(1 / load.rate)  # spreads the connections' phases over the period
        deadline = time.monotonic() + load.latency_duration + load.latency_warmup + 60
        failed = []
        for proc, out in procs:
            try:
                status = proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                status = proc.wait()
            if status != 0:
                out.seek(0)
                failed.append(f"status {status}: {out.read().decode(errors='replace')[-2000:]}")
            out.close()
        elapsed = time.monotonic() - t0
        cpu = http_bench.children_cpu() - cpu0
        rows = [
            line.split("\t")
            for i in range(load.rate_conns)
            if Path(f"{tmp}/{i}.tsv").exists()
            for line in Path(f"{tmp}/{i}.tsv").read_text().splitlines()
            if line
        ]
    if failed or not rows:
        raise RuntimeError(f"h2load against {label} failed:\n" + "\n".join(failed))
    ok = sorted(int(r[2]) for r in rows if r[1].startswith("2"))
    return {
        "p50_us": percentile(ok, 50),
        "p99_us": percentile(ok, 99),
        "max_us": float(ok[-1]) if ok else float("nan"),
        "requests": len(rows),
        "bad": len(rows) - len(ok),  # non-2xx or failed
        "rps": len(rows) / load.latency_duration,
        "client_cpu_pct": 100 * cpu / elapsed,
    }


def measure(
    setup: http_bench.Setup,
    load: Load,
    target: str,
    exe: str,
    upstream: Proc,
    tmp: Path,
    conns: int,
    duration: int,
) -> tuple[Result, Result]:
    """Latency at the fixed rate, then wrk throughput, against one target (a fresh proxy)."""
    proxy: Proc | None = None
    if target != "direct":
        impl, port = proxy_impl(target, exe, upstream.port, tmp)
        proxy = Proc(setup, impl, port)
    served = proxy if proxy is not None else upstream
    try:
        up0, px0, t0 = upstream.cpu_seconds(), served.cpu_seconds(), time.monotonic()
        latency = run_h2load(setup, load, served.port, target)
        up1, px1, t1 = upstream.cpu_seconds(), served.cpu_seconds(), time.monotonic()
        latency["upstream_cpu_pct"] = 100 * (up1 - up0) / (t1 - t0)
        latency["proxy_cpu_pct"] = 100 * (px1 - px0) / (t1 - t0) if proxy is not None else 0.0
        if setup.warmup:
            http_bench.run_wrk(setup, served, conns, setup.warmup)
        up2, t2 = upstream.cpu_seconds(), time.monotonic()
        tput = http_bench.run_wrk(setup, served, conns, duration)
        tput["upstream_cpu_pct"] = 100 * (upstream.cpu_seconds() - up2) / (time.monotonic() - t2)
        tput["proxy_cpu_pct"] = tput["server_cpu_pct"] if proxy is not None else 0.0
    finally:
        if proxy is not None:
            proxy.stop()
    return latency, tput


def median(runs: list[Result], key: str) -> float:
    return float(statistics.median(r[key] for r in runs))


# -- main ------------------------------------------------------------------------------------


def run_rounds(
    setup: http_bench.Setup,
    load: Load,
    found: dict[str, str],
    conns: int,
    duration: int,
    rounds: int,
    upstream_setup: http_bench.Setup,
) -> tuple[list[str], dict[str, list[Result]], dict[str, list[Result]]]:
    targets = ["direct", *found]
    lat: dict[str, list[Result]] = {t: [] for t in targets}
    tput: dict[str, list[Result]] = {t: [] for t in targets}
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        upstream = Proc(upstream_setup, http_bench.IMPLS["ours"])
        try:
            for r in range(rounds):
                shift = r % len(targets)
                order = targets[shift:] + targets[:shift]
                print(f"  round {r + 1}/{rounds}: {', '.join(order)}", flush=True)
                for target in order:
                    a, b = measure(
                        setup, load, target, found.get(target, ""), upstream, tmp, conns, duration
                    )
                    lat[target].append(a)
                    tput[target].append(b)
        finally:
            upstream.stop()
    return targets, lat, tput


def print_tables(
    targets: list[str],
    lat: dict[str, list[Result]],
    tput: dict[str, list[Result]],
    conns: int,
    rate: int,
    split: bool,
) -> dict[str, float]:
    """The two tables; returns the headline figures (added latency, ratios) by name.

    ``split``: the upstream shares core 1 with wrk, and a target whose throughput run filled
    that core is flagged (its req/s is the upstream's ceiling, not the proxy's)."""
    print(
        f"\n{'target':<10} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7} {'+p50 ms':>8} "
        f"{'+p99 ms':>8} {'req/s':>6} {'bad':>4} {'h2load':>6} {'proxy':>6} {'upstr':>6}"
        "  per-round p50/p99 ms"
    )
    d50, d99 = median(lat["direct"], "p50_us"), median(lat["direct"], "p99_us")
    figures: dict[str, float] = {}
    for t in targets:
        runs = lat[t]
        p50, p99 = median(runs, "p50_us"), median(runs, "p99_us")
        added = "" if t == "direct" else f"{(p50 - d50) / 1000:>8.2f} {(p99 - d99) / 1000:>8.2f}"
        figures[f"{t} +p50"], figures[f"{t} +p99"] = (p50 - d50) / 1000, (p99 - d99) / 1000
        per = ", ".join(f"{x['p50_us'] / 1000:.2f}/{x['p99_us'] / 1000:.2f}" for x in runs)
        print(
            f"{t:<10} {p50 / 1000:>7.2f} {p99 / 1000:>7.2f} {median(runs, 'max_us') / 1000:>7.2f} "
            f"{added or ' ' * 17:>17} {median(runs, 'rps'):>6.0f} "
            f"{sum(x['bad'] for x in runs):>4} {median(runs, 'client_cpu_pct'):>5.0f}% "
            f"{median(runs, 'proxy_cpu_pct'):>5.0f}% {median(runs, 'upstream_cpu_pct'):>5.0f}%  "
            f"{per}"
        )
    for t in targets:
        if min(x["rps"] for x in lat[t]) < 0.9 * rate:
            print(
                f"  !!! RATE SHORT: {t} got {min(x['rps'] for x in lat[t]):.0f} req/s of the "
                f"{rate} asked for in a round: it did not keep up (or h2load did not pace; "
                "keep --rate / --rate-conns <= 100 or so per connection) !!!"
            )
        if sum(x["bad"] for x in lat[t]):
            print(f"  !!! {t}: {sum(x['bad'] for x in lat[t])} failed or non-2xx requests !!!")
    print(
        f"\nthroughput: wrk -t1 -c{conns}; medians over rounds, errors summed; cpu = % of one core"
    )
    print(
        f"{'target':<10} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'wrk':>5} {'proxy':>6} "
        f"{'upstr':>6}  {'conn/read/write/timeout':>23} {'non-2xx':>7}  per-round req/s"
    )
    for t in targets:
        runs = tput[t]
        errors = "/".join(str(sum(int(x[k]) for x in runs)) for k in http_bench.ERROR_KINDS)
        print(
            f"{t:<10} {median(runs, 'rps'):>8.0f} {median(runs, 'p50_us') / 1000:>7.2f} "
            f"{median(runs, 'p99_us') / 1000:>7.2f} {median(runs, 'wrk_cpu_pct'):>4.0f}% "
            f"{median(runs, 'proxy_cpu_pct'):>5.0f}% {median(runs, 'upstream_cpu_pct'):>5.0f}%  "
            f"{errors:>23} {sum(int(x['status']) for x in runs):>7}  "
            + ", ".join(f"{x['rps']:.0f}" for x in runs)
        )
        figures[f"{t} rps"] = median(runs, "rps")
        if sum(int(x["timeout"]) for x in runs):
            print(f"  !!! TIMEOUTS: {t}: its req/s and latency are suspect !!!")
    full = [
        t
        for t in targets
        if t not in ("direct", "ours")
        and median(tput[t], "wrk_cpu_pct") + median(tput[t], "upstream_cpu_pct") >= CORE_FULL_PCT
    ]
    if split and full:
        print(
            f"  note: core 1 (the upstream and wrk) was full (>= {CORE_FULL_PCT:.0f}%) for "
            f"{', '.join(full)}: there the upstream sets the pace, so ours' ratios to those"
            " peers are upper bounds"
        )
    worst_wrk = max(x["wrk_cpu_pct"] for runs in tput.values() for x in runs)
    worst_h2 = max(x["client_cpu_pct"] for runs in lat.values() for x in runs)
    if worst_wrk > CLIENT_CPU_WARN:
        print(
            f"  WARNING: wrk used up to {worst_wrk:.0f}% of its core (> {CLIENT_CPU_WARN:.0f}%):"
            " it may be setting the pace for the fastest targets; read their ratios as bounds"
        )
    if worst_h2 > CLIENT_CPU_WARN:
        print(
            f"  WARNING: h2load used up to {worst_h2:.0f}% of its core: latencies may be its own"
        )
    if "ours" in targets:
        for peer in ("mitmproxy", "nginx", "haproxy"):
            if peer in targets:
                per_round = [
                    http_bench.ratio(a["rps"], b["rps"])
                    for a, b in zip(tput["ours"], tput[peer], strict=True)
                ]
                value = http_bench.ratio(figures["ours rps"], figures[f"{peer} rps"])
                figures[f"ours/{peer}"] = value
                print(
                    f"  ours/{peer}: {value:.2f}x  (rounds: "
                    f"{', '.join(f'{x:.2f}' for x in per_round)})"
                )
    return figures


def report_targets(figures: dict[str, float], caveat: str) -> None:
    print(f"\ntargets (medians of the interleaved rounds){caveat}")
    checks = [
        ("ours added p50 @ fixed rate", "ours +p50", ADDED_P50_MS, "<=", " ms"),
        ("ours added p99 @ fixed rate", "ours +p99", ADDED_P99_MS, "<=", " ms"),
        ("ours/mitmproxy throughput", "ours/mitmproxy", MITM_RATIO, ">=", "x"),
    ]
    for name, key, target, op, unit in checks:
        if key not in figures:
            print(f"  SKIP  {name} ({op} {target:g}{unit}): not measured")
            continue
        value = figures[key]
        ok = value <= target if op == "<=" else value >= target
        print(f"  {'PASS' if ok else 'MISS'}  {name}: {value:.2f}{unit} ({op} {target:g}{unit})")
    for peer in ("nginx", "haproxy"):
        key = f"ours/{peer}"
        if key in figures:
            print(f"  INFO  {key} throughput: {figures[key]:.2f}x (reported, no target)")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    p.add_argument("--duration", type=int, default=3, help="seconds per wrk run (default 3)")
    p.add_argument("--warmup", type=int, default=1, help="seconds of unrecorded wrk (1)")
    p.add_argument("--conns", type=int, default=64, help="wrk connections (default 64)")
    p.add_argument("--rate", type=int, default=1000, help="h2load requests/s in all (1000)")
    p.add_argument(
        "--rate-conns", type=int, default=10, help="h2load processes, one connection each (10)"
    )
    p.add_argument(
        "--latency-duration", type=int, default=4, help="seconds of h2load measured (4)"
    )
    p.add_argument("--latency-warmup", type=int, default=1, help="h2load's warm-up seconds (1)")
    p.add_argument(
        "--proxies",
        default=",".join(PEERS),
        help=f"comma-separated, default all: {','.join(PEERS)}",
    )
    p.add_argument(
        "--upstream-core",
        choices=("shared", "split"),
        default="split",
        help="split (default): the upstream on the load tool's core 1; shared: on core 0",
    )
    p.add_argument("--wrk-timeout", type=float, default=2.0, help="wrk --timeout seconds (2)")
    p.add_argument(
        "--smoke",
        action="store_true",
        help="every code path, tiny and fast: 1 round, 1 s runs, no warm-ups, wrk -c8",
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.smoke:
        args.rounds, args.duration, args.warmup, args.conns = 1, 1, 0, 8
        args.latency_duration, args.latency_warmup = 1, 0
    keys = [k for k in args.proxies.split(",") if k]
    unknown = [k for k in keys if k not in PEERS]
    if unknown:
        raise SystemExit(f"error: unknown proxies {unknown}; choose from {', '.join(PEERS)}")
    wrk, h2load = shutil.which("wrk"), shutil.which("h2load")
    if wrk is None or h2load is None:
        print(
            "error: wrk and h2load are needed; install them: "
            "apt-get install -y wrk nghttp2-client",
            file=sys.stderr,
        )
        return 2
    server_pin, client_pin, pin_note = echo.pin_prefixes()
    soft = http_bench.raise_file_limit(4096)
    print(f"reverse proxy benchmark on Python {platform.python_version()}, {os.cpu_count()} cores")
    print(f"  load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}; file limit {soft}")
    print(f"  {http_bench.source_version()}; {http_bench.wrk_version(wrk)}")
    if server_pin and args.upstream_core == "split":
        print(
            "  how the three processes share the two cores (--upstream-core split): the proxy"
            " under test alone on core 0; the upstream (examples/http_hello.py) and the load"
            " tool (h2load or wrk) on core 1"
        )
    elif server_pin:
        print(
            "  how the three processes share the two cores (--upstream-core shared): the"
            " upstream (examples/http_hello.py) and the proxy under test on core 0, the load"
            " tool (h2load or wrk) on core 1"
        )
    else:
        print(f"  {pin_note}: the upstream, the proxy and the load tool share every core")
    print("  access logging is off in every proxy (ours: access_log = false)")
    found = find_peers(keys)
    load = Load(h2load, args.rate, args.rate_conns, args.latency_duration, args.latency_warmup)
    with tempfile.TemporaryDirectory() as tmp:
        lua = Path(tmp) / "summary.lua"
        lua.write_text(http_bench.WRK_LUA)
        setup = http_bench.Setup(server_pin, client_pin, wrk, lua, args.warmup, args.wrk_timeout)
        print(
            f"\nadded latency: {args.rate_conns} x h2load --h1 -t1 -c1 --rps "
            f"{args.rate / args.rate_conns:g} ({args.rate} req/s in all, at most one in flight "
            f"per connection, started ~1 ms apart), {args.latency_duration} s after "
            f"{args.latency_warmup} s of warm-up; then wrk -t1 -c{args.conns} for "
            f"{args.duration} s after {args.warmup} s; "
            f"{args.rounds} round(s), targets interleaved (rotating order)"
        )
        upstream_setup = setup
        if args.upstream_core == "split":
            upstream_setup = attrs.evolve(setup, server_pin=client_pin)
        targets, lat, tput = run_rounds(
            setup, load, found, args.conns, args.duration, args.rounds, upstream_setup
        )
    print(
        "\nlatency at the fixed rate (medians over rounds; +p50/+p99 = through the proxy minus "
        "direct; bad = failed or non-2xx; cpu = % of one core)"
    )
    figures = print_tables(
        targets, lat, tput, args.conns, args.rate, args.upstream_core == "split"
    )
    caveat = " -- SMOKE RUN: tiny counts, the figures mean nothing" if args.smoke else ""
    report_targets(figures, caveat)
    return 0


if __name__ == "__main__":
    sys.exit(main())
