"""Metrics on vs off: the hot path does not slow down when metrics are on and scraped.

What runs:

* Two pairs of servers (``benchmarks/_metrics_servers.py``), each a fresh process pinned to
  core 0 with ``taskset``:

  - ``echo``: ``examples/echo_server.py``'s handler on ``runtime.net.serve``. Off: nothing
    else in the runtime. On: the same plus ``serve_admin`` on another loopback port, its
    ``/metrics`` scraped during the whole run. The echo path records nothing per message; the
    collectors read the layers' ``statistics()`` at scrape time, and that cost is measured.
  - ``http``: ``examples/http_hello.py``'s Router on ``runtime.http.serve``. Off:
    ``HttpConfig(metrics=False)``. On: ``HttpConfig(metrics=True)`` (the default: every
    request is recorded per route) plus ``serve_admin``, scraped. This is where the
    per-request cost lives.
* The scraper, beside every "on" run: a small separate process (``_metrics_servers.py
  --scrape``) pinned to core 1 with the load client, GETting ``/metrics`` every
  ``--interval`` (1 s: fifteen times Prometheus' default of 15 s; ``--interval 0.1`` is the
  stress case, where each scrape's cost shows) on one keep-alive
  connection, from before the load starts until after it ends. Each answer must be a 200
  that declares the ``runtime_`` families; the scrapes are counted and printed, and a failed
  scrape turns the verdict into a MISS. For http it also compares the server's own count of
  requests (``runtime_http_requests_total`` at the last scrape) with wrk's, which shows that
  the recording was on.
* The load clients, pinned to core 1: for echo, ``benchmarks/echo_client.c`` as
  ``benchmarks/echo.py`` builds and runs it (64 connections, 64 B messages, one in flight on
  each; the same loud Python fallback without a C compiler); for http, ``wrk -t1 -c64`` as
  ``benchmarks/http.py`` runs it, after an unrecorded warm-up run. The clients' CPU is printed,
  with a warning above ~70% of their core, where the client may be setting the pace.
* Interleaved rounds (``--rounds``, default 5): each round runs off and on once, in an
  alternating order; the tables show medians over rounds, and the ratio lines give the ratio
  of the medians (and each round's own ratio, for the spread).
* Paired runs (as in ``benchmarks/echo.py``), ``--rounds`` of them per case: the off and the
  on server on core 0 *at the same time*, each with its own client on core 1 (the scraper
  beside them). A slow spell of the shared machine then hits both alike, and the ratio of
  their rates is the ratio of their CPU cost per message or request. For echo the clients'
  summed CPU is printed: above ~70% of core 1 they may be dividing it, which pulls the ratio
  toward 1.0x. ``--no-paired`` skips them.

Target (from the issue), medians of the rounds, in one run: echo with metrics on >= 0.95x of
metrics off (the acceptance); the same 0.95x for http, the per-request recording's case. The
last lines print PASS or MISS for each, interleaved and paired.

Run (http needs ``apt-get install -y wrk``; echo a C compiler):
    python benchmarks/metrics.py                 # the full run, ~3 minutes
    python benchmarks/metrics.py --smoke         # every code path in a few seconds (CI)
Options: --rounds 5 --conns 64 --interval 1 --echo-duration 2 --echo-warmup 0.5
--http-duration 5 --http-warmup 1 --cases echo,http --client auto|c|python --no-paired.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
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

SERVERS = "benchmarks._metrics_servers"  # run with -m from ROOT, see its docstring
TARGET = 0.95  # metrics on / off, req/s or msgs/s, for echo (the acceptance) and http
START_TIMEOUT = 60.0  # seconds for a server to print its lines, or the scraper its first
# Every scrape must declare these (``# TYPE`` lines): the runtime's collector answered.
REQUIRED = [
    "runtime_tasks_alive",
    "runtime_timers_pending",
    "runtime_reactor_registered_fds",
    "runtime_server_connections_active",
    "runtime_http_requests_total",
    "runtime_http_request_duration_seconds",
]
RECORDED = 'runtime_http_requests_total{method="GET",route="/",server="http_hello",status="200"}'
LABELS = {"off": "metrics off", "on": "metrics on + scraped"}

Result = dict[str, Any]


# -- the processes ---------------------------------------------------------------------------


def read_lines(proc: subprocess.Popen[bytes], count: int, deadline: float) -> list[str]:
    """The first ``count`` lines ``proc`` prints, or fewer if it exits or the deadline passes.

    Reads the pipe's bytes (a buffered readline after select can miss a second line that came
    in the same chunk as the first)."""
    assert proc.stdout is not None
    fd, data = proc.stdout.fileno(), b""
    while data.count(b"\n") < count:
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        chunk = os.read(fd, 4096) if ready else b""
        if not chunk:
            break
        data += chunk
    return data.decode(errors="replace").splitlines()[:count]


def port_of(line: str, prefix: str) -> int | None:
    if not line.startswith(prefix):
        return None
    return int(line.rsplit(":", 1)[1].split("/")[0])


class Server:
    """One server of ``benchmarks/_metrics_servers.py``, serving when the constructor returns.

    Attributes:
        impl: Its ``benchmarks/http.py`` Impl (``run_wrk`` names ``impl.label`` in errors).
        port: Where it serves.
        admin_port: Where its admin endpoint is, or None for the "off" variants.
    """

    def __init__(self, server_pin: list[str], case: str, variant: str) -> None:
        key = f"{case}-{variant}"
        argv = (sys.executable, "-m", SERVERS, "--impl", key, "--port", "0")
        self.impl = http_bench.Impl(key, f"{case}, {LABELS[variant]}", argv, (), True)
        self.stderr = tempfile.TemporaryFile()  # noqa: SIM115 (closed in stop())
        self.proc = subprocess.Popen(
            [*server_pin, *argv], cwd=ROOT, stdout=subprocess.PIPE, stderr=self.stderr
        )
        scheme = "tcp" if case == "echo" else "http"
        lines = read_lines(self.proc, 2 if variant == "on" else 1, time.monotonic() + 60)
        port = port_of(lines[0] if lines else "", f"listening on {scheme}://")
        admin = port_of(lines[1] if len(lines) > 1 else "", "admin on http://")
        if port is None or (variant == "on" and admin is None):
            self.proc.kill()
            self.proc.wait()
            tail = self.stderr_tail()
            self.close()
            raise RuntimeError(f"{key} server did not start: {lines!r}\n{tail}")
        self.port = port
        self.admin_port = admin

    def cpu_seconds(self) -> float:
        """User + system CPU time the server has used so far."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stderr_tail(self, lines: int = 15) -> str:
        self.stderr.seek(0)
        return "\n".join(self.stderr.read().decode(errors="replace").splitlines()[-lines:])

    def close(self) -> None:
        assert self.proc.stdout is not None
        self.proc.stdout.close()
        self.stderr.close()

    def stop(self) -> int:
        """SIGTERM (it drains), then wait; kill after 15 s. Returns the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.returncode != 0:
            print(f"  WARNING: {self.impl.label} exited with status {self.proc.returncode}:")
            print("    " + self.stderr_tail().replace("\n", "\n    "))
        self.close()
        return self.proc.returncode


class Scraper:
    """The scraper process of one "on" run, scraping once the constructor returns."""

    def __init__(self, client_pin: list[str], port: int, interval: float, http: bool) -> None:
        argv = [*client_pin, sys.executable, "-m", SERVERS, "--interval", f"{interval:g}"]
        argv += ["--scrape", f"http://127.0.0.1:{port}/metrics"]
        for family in REQUIRED if http else REQUIRED[:4]:
            argv += ["--require", family]
        if http:
            argv += ["--report", RECORDED]
        self.stderr = tempfile.TemporaryFile()  # noqa: SIM115 (closed in stop())
        self.started = time.monotonic()
        self.proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=self.stderr)
        if read_lines(self.proc, 1, self.started + START_TIMEOUT) != ["scraping"]:
            summary = self.stop()
            raise RuntimeError(f"the scraper of port {port} never scraped: {summary}")

    def stop(self) -> Result:
        """SIGTERM, then its counts, with ``cpu_pct``: its CPU use over its life."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            stdout, _ = self.proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            stdout, _ = self.proc.communicate()
        elapsed = time.monotonic() - self.started
        self.stderr.seek(0)
        err = self.stderr.read().decode(errors="replace").strip()
        self.stderr.close()
        lines = stdout.decode().strip().splitlines()
        if self.proc.returncode != 0 or not lines:
            raise RuntimeError(f"the scraper failed (status {self.proc.returncode}): {err}")
        summary: Result = json.loads(lines[-1])
        summary["cpu_pct"] = 100 * summary["cpu_s"] / elapsed
        return summary


# -- one run ---------------------------------------------------------------------------------


@attrs.frozen
class Bench:
    """What every run of this invocation shares."""

    server_pin: list[str]
    client_pin: list[str]
    echo: echo.Setup
    http: http_bench.Setup | None  # None without wrk
    conns: int
    interval: float
    echo_duration: float
    http_duration: int


def run_once(bench: Bench, case: str, variant: str) -> Result:
    """One server under its load client (and, for "on", its scraper), in a fresh process."""
    server = Server(bench.server_pin, case, variant)
    scraper: Scraper | None = None
    try:
        if case == "http":
            http_bench.check_hello(server.port)  # one request more than wrk makes
        if server.admin_port is not None:
            scraper = Scraper(bench.client_pin, server.admin_port, bench.interval, case == "http")
        result = load_echo(bench, server) if case == "echo" else load_http(bench, server)
    finally:
        scrape = scraper.stop() if scraper is not None else None
        server.stop()
    result["scrape"] = scrape
    return result


def load_echo(bench: Bench, server: Server) -> Result:
    r = echo.load(bench.echo, server, bench.conns, 64, bench.echo_duration)  # type: ignore[arg-type]
    return {
        "rate": r["msgs_per_s"],
        "p50_us": r["p50_us"],
        "p99_us": r["p99_us"],
        "client_cpu": r["client_cpu_pct"],
        "server_cpu": r["server_cpu_pct"],
        "errors": int(r["errors"]),
    }


def load_http(bench: Bench, server: Server) -> Result:
    setup = bench.http
    assert setup is not None
    served = 1  # check_hello's
    if setup.warmup:
        warm = http_bench.run_wrk(setup, server, bench.conns, setup.warmup)  # type: ignore[arg-type]
        served += int(warm["requests"])
    r = http_bench.run_wrk(setup, server, bench.conns, bench.http_duration)  # type: ignore[arg-type]
    return {
        "rate": r["rps"],
        "p50_us": r["p50_us"],
        "p99_us": r["p99_us"],
        "client_cpu": r["wrk_cpu_pct"],
        "server_cpu": r["server_cpu_pct"],
        "errors": sum(int(r[kind]) for kind in (*http_bench.ERROR_KINDS, "status")),
        "served": served + int(r["requests"]),
    }


# -- one case: off and on, interleaved -------------------------------------------------------


@attrs.frozen
class Verdict:
    """A case's outcome: the ratio of the medians, and whether every scrape was good."""

    case: str
    ratio: float
    scrapes: int
    failed: int


def median_of(runs: list[Result]) -> Result:
    """The median of each figure over the rounds (a shared machine: one run can be off by
    30% either way, and a best-of would reward one lucky round)."""
    out: Result = {
        key: statistics.median(r[key] for r in runs)
        for key in ("rate", "p50_us", "p99_us", "client_cpu", "server_cpu")
    }
    out["client_cpu_max"] = max(r["client_cpu"] for r in runs)
    out["errors"] = [r["errors"] for r in runs]
    return out


def compare(bench: Bench, case: str, rounds: int) -> Verdict:
    """``rounds`` rounds of off and on (alternating which goes first); prints the table."""
    runs: dict[str, list[Result]] = {"off": [], "on": []}
    for r in range(rounds):
        for variant in ("off", "on") if r % 2 == 0 else ("on", "off"):
            runs[variant].append(run_once(bench, case, variant))
    medians = {variant: median_of(variant_runs) for variant, variant_runs in runs.items()}
    print_table(case, runs, medians)
    scrapes = [run["scrape"] for run in runs["on"]]
    print_scrapes(scrapes)
    if case == "http":
        recorded = [s["reported"][RECORDED] or 0.0 for s in scrapes]
        print(
            "  recording on: the server's runtime_http_requests_total at the last scrape / the "
            "requests wrk completed (+1 check), per round: "
            + ", ".join(
                f"{n / run['served']:.3f}" for n, run in zip(recorded, runs["on"], strict=True)
            )
        )
    value = echo.ratio(medians["on"]["rate"], medians["off"]["rate"])
    per_round = [
        echo.ratio(on["rate"], off["rate"])
        for on, off in zip(runs["on"], runs["off"], strict=True)
    ]
    print(
        f"metrics on vs off, {case}: {value:.2f}x "
        f"(rounds: {', '.join(f'{x:.2f}' for x in per_round)})",
        flush=True,
    )
    return Verdict(case, value, sum(s["scrapes"] for s in scrapes), sum(s["bad"] for s in scrapes))


def print_table(case: str, runs: dict[str, list[Result]], medians: dict[str, Result]) -> None:
    unit = "msgs/s" if case == "echo" else "req/s"
    print(
        f"  {'':<22} {unit:>8} {'p50 us':>8} {'p99 us':>8} {'client cpu':>10} {'srv cpu':>7} "
        f"{'errors':>6}  per-round {unit}"
    )
    for variant, r in medians.items():
        rounds = ", ".join(f"{run['rate']:.0f}" for run in runs[variant])
        print(
            f"  {LABELS[variant]:<22} {r['rate']:>8.0f} {r['p50_us']:>8.0f} {r['p99_us']:>8.0f} "
            f"{r['client_cpu']:>9.0f}% {r['server_cpu']:>6.0f}% "
            f"{echo.fmt_errors(r['errors']):>6}  {rounds}"
        )
    worst = max(r["client_cpu_max"] for r in medians.values())
    if worst > echo.CLIENT_CPU_WARN:
        print(
            f"  WARNING: the load client used up to {worst:.0f}% of its core (> "
            f"{echo.CLIENT_CPU_WARN:.0f}%): it may be the bottleneck, read the ratio as a bound"
        )


def print_scrapes(scrapes: list[Result]) -> None:
    total, bad = sum(s["scrapes"] for s in scrapes), sum(s["bad"] for s in scrapes)
    print(
        f"  scraper: {total} scrapes over {len(scrapes)} run(s) "
        f"({', '.join(str(s['scrapes']) for s in scrapes)}), {total - bad} answered 200 with "
        f"every runtime_ family, {bad} failed; slowest "
        f"{max(s['slowest_ms'] for s in scrapes):.1f} ms, "
        f"{max(s['bytes'] for s in scrapes) / 1024:.1f} KB each, "
        f"{statistics.median(s['cpu_pct'] for s in scrapes):.1f}% of core 1"
    )
    for s in scrapes:
        if s["bad"]:
            print(f"  !!! SCRAPES FAILED: {s['bad']} of {s['scrapes']}, last: {s['last_failure']}")


# -- paired runs: off and on at the same time ------------------------------------------------


def client_argv(bench: Bench, case: str, port: int, duration: float) -> list[str]:
    if case == "echo":
        return bench.echo.client_argv(port, bench.conns, 64, duration)
    setup = bench.http
    assert setup is not None
    argv = [*setup.client_pin, setup.wrk, "-t1", f"-c{bench.conns}", f"-d{duration:g}s"]
    argv += ["--timeout", f"{setup.wrk_timeout:g}s", "-s", str(setup.lua)]
    return [*argv, f"http://127.0.0.1:{port}/"]


def parse_paired(case: str, stdout: str, returncode: int, stderr: str) -> Result:
    """``rate`` and ``client_cpu`` from one client's output (wrk's CPU is not in it: NaN)."""
    if case == "echo":
        r = echo.parse_client_output(stdout, returncode, stderr)
        return {"rate": r["msgs_per_s"], "client_cpu": r["client_cpu_pct"]}
    lines = [line for line in stdout.splitlines() if line.startswith("WRK_JSON ")]
    if returncode != 0 or not lines:
        raise RuntimeError(f"wrk failed (status {returncode}):\n{stdout.strip()}\n{stderr}")
    r = json.loads(lines[-1].removeprefix("WRK_JSON "))
    return {"rate": r["requests"] / (r["duration_us"] / 1e6), "client_cpu": float("nan")}


def load_both(
    bench: Bench, case: str, ports: dict[str, int], duration: float
) -> dict[str, Result]:
    procs = {
        variant: subprocess.Popen(
            client_argv(bench, case, port, duration),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for variant, port in ports.items()
    }
    out: dict[str, Result] = {}
    for variant, proc in procs.items():
        stdout, stderr = proc.communicate(timeout=duration + 120)
        out[variant] = parse_paired(case, stdout, proc.returncode, stderr)
    return out


def paired(bench: Bench, case: str, rounds: int) -> Verdict:
    """Both servers on core 0 at once, each with its own client on core 1: a slow spell of
    the shared machine hits both alike, and the ratio is the ratio of CPU cost per message."""
    ratios: list[float] = []
    cpus: list[float] = []
    scrapes: list[Result] = []
    duration = bench.echo_duration if case == "echo" else bench.http_duration
    for _ in range(rounds):
        servers = {variant: Server(bench.server_pin, case, variant) for variant in ("off", "on")}
        scraper: Scraper | None = None
        try:
            if case == "http":
                for server in servers.values():
                    http_bench.check_hello(server.port)
            on = servers["on"]
            assert on.admin_port is not None
            scraper = Scraper(bench.client_pin, on.admin_port, bench.interval, case == "http")
            ports = {variant: server.port for variant, server in servers.items()}
            if case == "http" and bench.http is not None and bench.http.warmup:
                load_both(bench, case, ports, bench.http.warmup)
            out = load_both(bench, case, ports, duration)
        finally:
            if scraper is not None:
                scrapes.append(scraper.stop())
            for server in servers.values():
                server.stop()
        ratios.append(echo.ratio(out["on"]["rate"], out["off"]["rate"]))
        cpus.append(out["on"]["client_cpu"] + out["off"]["client_cpu"])
    value = statistics.median(ratios)
    clients = ""
    if case == "echo":
        clients = (
            f"; both clients together used {statistics.median(cpus):.0f}% of core 1 "
            f"(max {max(cpus):.0f}%)"
        )
    print(
        f"  paired, metrics on vs off, {case}: {value:.2f}x (rounds: "
        f"{', '.join(f'{r:.2f}' for r in ratios)}){clients}"
    )
    print_scrapes(scrapes)
    if case == "echo" and max(cpus) > echo.CLIENT_CPU_WARN:
        print(
            f"  WARNING: the two clients together used more than {echo.CLIENT_CPU_WARN:.0f}% "
            "of core 1: the kernel may be dividing it between them, which pulls the ratio "
            "toward 1.0x"
        )
    return Verdict(case, value, sum(s["scrapes"] for s in scrapes), sum(s["bad"] for s in scrapes))


# -- targets and main ------------------------------------------------------------------------


def report_targets(verdicts: dict[str, Verdict], conns: int, caveat: str) -> None:
    print(f"\ntargets (medians of the rounds){caveat}")
    for key, why in (
        ("echo", ", the issue's acceptance"),
        ("http", ""),
        ("echo paired", ""),
        ("http paired", ""),
    ):
        case, _, how = key.partition(" ")
        name = f"metrics on vs off, {case} @{conns} conns, {how or 'interleaved'}"
        v = verdicts.get(key)
        if v is None:
            print(f"  SKIP  {name} (>= {TARGET:g}x{why}): not measured")
        elif v.failed:
            print(
                f"  MISS  {name}: {v.ratio:.2f}x (>= {TARGET:g}x{why}), but {v.failed} of "
                f"{v.scrapes} scrapes failed"
            )
        else:
            verdict = "PASS" if v.ratio >= TARGET else "MISS"
            print(f"  {verdict}  {name}: {v.ratio:.2f}x (>= {TARGET:g}x{why})")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default 5)")
    p.add_argument("--conns", type=int, default=64, help="connections (default 64)")
    p.add_argument("--interval", type=float, default=1.0, help="seconds between scrapes (1)")
    p.add_argument("--echo-duration", type=float, default=2.0, help="seconds per run (2)")
    p.add_argument("--echo-warmup", type=float, default=0.5, help="unrecorded seconds (0.5)")
    p.add_argument("--http-duration", type=int, default=5, help="seconds per wrk run (5)")
    p.add_argument("--http-warmup", type=int, default=1, help="seconds of warm-up wrk (1)")
    p.add_argument("--cases", default="echo,http", help="comma-separated (default echo,http)")
    p.add_argument("--client", choices=["auto", "c", "python"], default="auto")
    p.add_argument("--no-paired", action="store_true", help="skip the paired runs")
    p.add_argument("--smoke", action="store_true", help="every code path, tiny and fast (CI)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.smoke:
        args.rounds, args.conns = 1, 8
        args.echo_duration, args.echo_warmup = 0.3, 0.05
        args.http_duration, args.http_warmup = 1, 0
    cases = [c for c in args.cases.split(",") if c]
    if unknown := set(cases) - {"echo", "http"}:
        print(f"error: unknown case(s) {sorted(unknown)}; choose from echo, http", file=sys.stderr)
        return 2
    server_pin, client_pin, pin_note = echo.pin_prefixes()
    native, client_note = (
        (None, "python client requested")
        if args.client == "python"
        else echo.build_native_client()
    )
    if native is None and args.client == "c":
        print(f"error: --client c but {client_note}", file=sys.stderr)
        return 1
    wrk = shutil.which("wrk")
    print(f"metrics benchmark on Python {platform.python_version()}, {os.cpu_count()} cores")
    print(f"  load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}; {pin_note}")
    print(
        f"  {echo.source_version()}; prometheus-client "
        f"{importlib.metadata.version('prometheus-client')}; "
        f"{http_bench.wrk_version(wrk) if wrk else 'wrk NOT FOUND (apt-get install -y wrk)'}"
    )
    if native is None:
        print(f"  echo client: PYTHON FALLBACK (benchmarks/_loadgen.py): {client_note}")
        print("  WARNING: with the Python fallback client the echo ratio is NOT comparable")
    else:
        print(f"  echo client: {client_note}")
    print(f"  on = serve_admin on its own port, /metrics scraped every {args.interval:g} s")
    verdicts: dict[str, Verdict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        lua = Path(tmp) / "summary.lua"
        lua.write_text(http_bench.WRK_LUA)
        http_setup = None
        if wrk is not None:
            http_setup = http_bench.Setup(server_pin, client_pin, wrk, lua, args.http_warmup, 2.0)
        bench = Bench(
            server_pin,
            client_pin,
            echo.Setup(server_pin, client_pin, native, args.echo_warmup),
            http_setup,
            args.conns,
            args.interval,
            args.echo_duration,
            args.http_duration,
        )
        if "echo" in cases:
            print(
                f"\necho: {args.conns} connections, 64 B messages, {args.echo_duration:g} s per "
                f"run after {args.echo_warmup:g} s of warm-up; {args.rounds} round(s), off and "
                "on alternating; medians over rounds"
            )
            verdicts["echo"] = compare(bench, "echo", args.rounds)
            if not args.no_paired:
                verdicts["echo paired"] = paired(bench, "echo", args.rounds)
        if "http" in cases and http_setup is None:
            print("\nSKIP http: wrk not found (apt-get install -y wrk)")
        elif "http" in cases:
            print(
                f"\nhttp: GET / (hello), wrk -t1 -c{args.conns}, {args.http_duration} s per run "
                f"after {args.http_warmup} s of warm-up; {args.rounds} round(s), off and on "
                "alternating; medians over rounds"
            )
            verdicts["http"] = compare(bench, "http", args.rounds)
            if not args.no_paired:
                verdicts["http paired"] = paired(bench, "http", args.rounds)
    caveat = ""
    if args.smoke:
        caveat = " -- SMOKE RUN: tiny counts, the figures mean nothing"
    elif native is None:
        caveat = " -- PYTHON FALLBACK CLIENT: echo not comparable"
    report_targets(verdicts, args.conns, caveat)
    return 0


if __name__ == "__main__":
    sys.exit(main())
