"""Echo throughput, latency and idle memory: the real Server against plain Trio and asyncio.

What runs:

* Servers, each a fresh process pinned to core 0 with ``taskset``: ``runtime`` is the
  project's own ``examples/echo_server.py`` (the real ``Server``: connection cap, idle timeout,
  drain on SIGTERM); ``trio`` is plain ``trio.serve_tcp``, the baseline; ``asyncio`` and
  ``uvloop`` are asyncio streams on either loop (``benchmarks/_echo_servers.py``). Add
  ``runtime-bare`` (``--impls``) to see a bare accept loop on the runtime's streams without the
  Server.
* The load client, pinned to core 1: ``benchmarks/echo_client.c``, compiled here with the
  system compiler (``cc -O2``, cached under ``benchmarks/.build/``). One process, epoll, N
  connections with exactly one message in flight each (send, wait for the whole echo, record
  the round trip, send the next). It costs a few microseconds per message, far below any
  Python server, and reports its own CPU time: above ~70% of its core the benchmark warns that
  the client may be shaping the result. Without a C compiler it falls back to the asyncio
  client in ``benchmarks/_loadgen.py`` and says loudly that its ratios are not comparable
  (a Python client batches differently and hides the servers' per-message cost).
* Interleaved rounds (``--rounds``, default 5): each round runs every implementation once, in
  a rotating order; the table shows the median over rounds of each figure, and the ratio
  lines give the ratio of the medians (and each round's own ratio, for the spread).
* Paired runs: the runtime and Trio servers on core 0 *at the same time*, each with its own
  client on core 1. A slow spell of the shared machine then hits both alike, and the
  throughput ratio is the ratio of CPU cost per message. Both clients share core 1; their
  summed CPU is printed, and above ~70% the core may be splitting its time between them,
  which pulls the ratio toward 1.0x.
* Idle memory: RSS per connection of the real Server and of plain Trio with 10,000
  connections open, each having echoed one byte (the file limit is raised to the hard limit;
  if that is too low, fewer connections are used, with a warning).

Targets (this replaces issue 5's numbers), with the native client, in one run, medians of 5
rounds: runtime >= 1.5x plain Trio at 64 and at 1,000 connections (64 B messages); RSS per
idle connection of the real Server <= 4 KB (4096 B); stretch: >= 1.0x asyncio streams at 64
and at 1,000 connections. The last lines print PASS or MISS for each.

Run:
    python benchmarks/echo.py                  # the full run, ~5 minutes
    python benchmarks/echo.py --smoke          # every code path in a few seconds (CI)
    python benchmarks/echo.py --profile /tmp/echo.prof   # cProfile the runtime server
Options: --duration 2 --rounds 5 --conns 64,1000 --quick (64 B only) --impls runtime,trio
--client auto|c|python --idle-connections 10000 (0 skips).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import pstats
import resource
import select
import shutil
import signal
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
EXAMPLE = ROOT / "examples" / "echo_server.py"
SERVERS = HERE / "_echo_servers.py"
LOADGEN = HERE / "_loadgen.py"
CLIENT_SRC = HERE / "echo_client.c"
BUILD = HERE / ".build"

CLIENT_CPU_WARN = 70.0  # % of one core: above it the client may be setting the pace
RSS_TARGET = 4096  # bytes per idle connection
THROUGHPUT_TARGET = 1.5  # runtime / plain Trio at 64 and 1,000 connections
STRETCH_TARGET = 1.0  # runtime / asyncio streams at 64 and 1,000 connections

Result = dict[str, Any]


# -- setup: pinning, file limit, the client --------------------------------------------------


def pin_prefixes() -> tuple[list[str], list[str], str]:
    """The command prefixes that pin a server to core 0 and a client to core 1.

    Returns:
        (server prefix, client prefix, a note saying what was done). Both prefixes are empty
        when pinning is not possible (no taskset, one core, or cores 0 and 1 not ours).
    """
    if not shutil.which("taskset"):
        return [], [], "WARNING: taskset not found, servers and clients are not pinned"
    try:
        allowed = os.sched_getaffinity(0)
    except (AttributeError, OSError):
        allowed = set(range(os.cpu_count() or 1))
    if not {0, 1} <= allowed:
        return (
            [],
            [],
            f"WARNING: cores 0 and 1 are not both available ({sorted(allowed)}), unpinned",
        )
    probe = subprocess.run(["taskset", "-c", "1", "true"], capture_output=True, check=False)
    if probe.returncode != 0:
        return [], [], "WARNING: taskset failed, servers and clients are not pinned"
    return ["taskset", "-c", "0"], ["taskset", "-c", "1"], "server on core 0, client on core 1"


def raise_file_limit(wanted: int) -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit; children inherit it.

    Returns:
        The soft limit now in force.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, wanted)
    if target > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return soft


def build_native_client() -> tuple[Path | None, str]:
    """Compile benchmarks/echo_client.c once per source version (cached under .build/).

    Returns:
        (the binary, or None if there is no compiler or the build failed; a note).
    """
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if not cc:
        return None, "no C compiler (cc) found"
    flags = ["-O2", "-Wall"]
    digest = hashlib.sha256(CLIENT_SRC.read_bytes() + " ".join([cc, *flags]).encode()).hexdigest()
    binary = BUILD / f"echo_client-{digest[:12]}"
    if binary.exists():
        return binary, f"native C client {binary.relative_to(ROOT)} (cached, {cc} -O2)"
    BUILD.mkdir(exist_ok=True)
    tmp = binary.with_name(f"{binary.name}.{os.getpid()}.tmp")
    proc = subprocess.run(
        [cc, *flags, "-o", str(tmp), str(CLIENT_SRC)], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        tmp.unlink(missing_ok=True)
        return None, f"{cc} failed to build {CLIENT_SRC.name}:\n{proc.stderr.strip()}"
    tmp.replace(binary)  # atomic: a concurrent build of the same source is harmless
    return binary, f"native C client {binary.relative_to(ROOT)} (built now, {cc} -O2)"


@attrs.frozen
class Setup:
    """How this invocation runs its processes."""

    server_pin: list[str]
    client_pin: list[str]
    native_client: Path | None
    warmup: float
    verbose_errors: bool = True

    @property
    def fallback(self) -> bool:
        return self.native_client is None

    def client_argv(self, port: int, conns: int, size: int, duration: float) -> list[str]:
        common = ["--port", str(port), "--conns", str(conns), "--size", str(size)]
        common += ["--duration", str(duration), "--warmup", str(self.warmup)]
        if self.native_client is not None:
            return [*self.client_pin, str(self.native_client), *common]
        return [*self.client_pin, sys.executable, str(LOADGEN), *common]


# -- servers ---------------------------------------------------------------------------------


def server_argv(impl: str, max_connections: int) -> list[str]:
    if impl == "runtime":
        return [
            *(sys.executable, str(EXAMPLE), "--host", "127.0.0.1", "--port", "0"),
            *("--max-connections", str(max_connections), "--grace", "5"),
        ]
    return [sys.executable, str(SERVERS), "--impl", impl, "--port", "0"]


class Server:
    """One echo server process, started and listening when the constructor returns."""

    def __init__(
        self, setup: Setup, impl: str, *, max_connections: int = 10_000, prefix: Sequence[str] = ()
    ) -> None:
        self.impl = impl
        self.stderr = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 (closed in stop())
        argv = server_argv(impl, max_connections)
        if prefix:  # e.g. python -m cProfile -o FILE: goes between the interpreter and script
            argv = [argv[0], *prefix, *argv[1:]]
        self.proc = subprocess.Popen(
            [*setup.server_pin, *argv], stdout=subprocess.PIPE, stderr=self.stderr, text=True
        )
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], 60)
        line = self.proc.stdout.readline().strip() if ready else ""
        if not line.startswith("listening on tcp://"):
            self.proc.kill()
            self.proc.wait()
            tail = self.stderr_tail()
            self.stderr.close()
            assert self.proc.stdout is not None
            self.proc.stdout.close()
            raise RuntimeError(f"{impl} server did not start: {line!r}\n{tail}")
        self.port = int(line.rsplit(":", 1)[1])
        self.returncode: int | None = None

    def cpu_seconds(self) -> float:
        """User + system CPU time the server has used so far."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rss_kb(self) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0

    def stderr_tail(self, lines: int = 15) -> str:
        self.stderr.seek(0)
        return "\n".join(self.stderr.read().splitlines()[-lines:])

    def stop(self) -> int:
        """SIGTERM (the runtime server drains), then wait; kill after 15 s. Returns the status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        assert self.proc.stdout is not None
        self.proc.stdout.close()
        self.returncode = self.proc.returncode
        if impl_must_exit_cleanly(self.impl) and self.returncode != 0:
            print(f"  WARNING: {self.impl} server exited with status {self.returncode}:")
            print("    " + self.stderr_tail().replace("\n", "\n    "))
        self.stderr.close()
        return self.returncode


def impl_must_exit_cleanly(impl: str) -> bool:
    # The runtime drains on SIGTERM and exits 0; plain trio.run dies of the signal by design.
    return impl.startswith("runtime")


# -- load ------------------------------------------------------------------------------------


def parse_client_output(stdout: str, returncode: int, stderr: str) -> Result:
    lines = stdout.strip().splitlines()
    if not lines:
        raise RuntimeError(f"load client printed nothing (status {returncode}): {stderr.strip()}")
    result: Result = json.loads(lines[-1])
    return result


def load(setup: Setup, server: Server, conns: int, size: int, duration: float) -> Result:
    """One client run against ``server``; adds the server's CPU use over the whole run
    (connect and warm-up included, so a little low) as ``server_cpu_pct``."""
    cpu0, t0 = server.cpu_seconds(), time.monotonic()
    proc = subprocess.run(
        setup.client_argv(server.port, conns, size, duration),
        capture_output=True,
        text=True,
        timeout=duration + setup.warmup + 120,
        check=False,
    )
    cpu, elapsed = server.cpu_seconds() - cpu0, time.monotonic() - t0
    result = parse_client_output(proc.stdout, proc.returncode, proc.stderr)
    result["server_cpu_pct"] = 100 * cpu / elapsed
    return result


def median_of(runs: list[Result]) -> Result:
    """The median of each figure over the rounds (these are shared machines: one run can be
    30% off either way, and a best-of would reward one lucky round)."""
    return {
        "msgs_per_s": statistics.median(r["msgs_per_s"] for r in runs),
        "p50_us": statistics.median(r["p50_us"] for r in runs),
        "p99_us": statistics.median(r["p99_us"] for r in runs),
        "client_cpu_pct": statistics.median(r["client_cpu_pct"] for r in runs),
        "client_cpu_max": max(r["client_cpu_pct"] for r in runs),
        "server_cpu_pct": statistics.median(r["server_cpu_pct"] for r in runs),
        "errors": [int(r["errors"]) for r in runs],
    }


def ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")


def fmt_errors(errors: list[int]) -> str:
    return "0" if not any(errors) else "/".join(str(e) for e in errors)


def throughput(
    setup: Setup, impls: list[str], cases: list[tuple[int, int]], duration: float, rounds: int
) -> dict[tuple[int, int], dict[str, Result]]:
    """Every case, ``rounds`` rounds, all implementations interleaved in each round."""
    print(
        f"\necho throughput: {duration:g} s per run after {setup.warmup:g} s of warm-up, "
        f"{rounds} round(s), implementations interleaved (rotating order) in each round; "
        "medians over rounds"
    )
    print(
        f"{'conns':>5} {'size':>6} {'impl':>12} {'msgs/s':>9} {'p50 us':>8} {'p99 us':>8} "
        f"{'client cpu':>10} {'srv cpu':>7} {'errors':>6} {'vs trio':>8} {'vs asyncio':>10}"
    )
    table: dict[tuple[int, int], dict[str, Result]] = {}
    for conns, size in cases:
        runs: dict[str, list[Result]] = {impl: [] for impl in impls}
        for r in range(rounds):
            shift = r % len(impls)
            for impl in impls[shift:] + impls[:shift]:
                server = Server(setup, impl, max_connections=max(10_000, conns + 64))
                try:
                    runs[impl].append(load(setup, server, conns, size, duration))
                finally:
                    server.stop()
        results = {impl: median_of(impl_runs) for impl, impl_runs in runs.items()}
        table[conns, size] = results
        print_case(conns, size, impls, results)
        print_ratio_line(runs, results)
        if setup.verbose_errors:
            for impl, impl_runs in runs.items():
                for i, run in enumerate(impl_runs):
                    if run["errors"]:
                        print(
                            f"  errors: {impl} round {i + 1}: {run['errors']} "
                            f"(connect: {run.get('connect_errors', '?')}, "
                            f"last: {run.get('last_error') or '?'})"
                        )
    return table


def print_case(conns: int, size: int, impls: list[str], results: dict[str, Result]) -> None:
    trio_rate = results["trio"]["msgs_per_s"] if "trio" in results else 0.0
    asyncio_rate = results["asyncio"]["msgs_per_s"] if "asyncio" in results else 0.0
    for impl in impls:
        r = results[impl]
        print(
            f"{conns:>5} {size:>6} {impl:>12} {r['msgs_per_s']:>9.0f} {r['p50_us']:>8.0f} "
            f"{r['p99_us']:>8.0f} {r['client_cpu_pct']:>9.0f}% {r['server_cpu_pct']:>6.0f}% "
            f"{fmt_errors(r['errors']):>6} "
            f"{ratio(r['msgs_per_s'], trio_rate):>8.2f} "
            f"{ratio(r['msgs_per_s'], asyncio_rate):>10.2f}"
        )
    worst = max(r["client_cpu_max"] for r in results.values())
    if worst > CLIENT_CPU_WARN:
        print(
            f"  WARNING: the load client used up to {worst:.0f}% of its core (> "
            f"{CLIENT_CPU_WARN:.0f}%): it may be the bottleneck, read these ratios as bounds"
        )


def print_ratio_line(runs: dict[str, list[Result]], results: dict[str, Result]) -> None:
    if "runtime" not in results or "trio" not in results:
        return
    ours = results["runtime"]
    line = (
        f"  -> ratio runtime/trio {ratio(ours['msgs_per_s'], results['trio']['msgs_per_s']):.2f}x"
    )
    per_round = [
        ratio(a["msgs_per_s"], b["msgs_per_s"])
        for a, b in zip(runs["runtime"], runs["trio"], strict=True)
    ]
    line += f" (rounds: {', '.join(f'{x:.2f}' for x in per_round)})"
    if "asyncio" in results:
        vs = ratio(ours["msgs_per_s"], results["asyncio"]["msgs_per_s"])
        line += f", runtime/asyncio {vs:.2f}x"
    line += f", p50 {ratio(ours['p50_us'], results['trio']['p50_us']):.2f}x of trio's"
    print(line, flush=True)


def paired(setup: Setup, duration: float, rounds: int, conns_list: list[int]) -> dict[int, float]:
    """Both servers on core 0 at once, each with its own client process on core 1."""
    print(
        f"\npaired runs: the runtime and trio servers both on core 0 at once, each with its own "
        f"client on core 1; {duration:g} s, {rounds} round(s), 64 B messages"
    )
    medians: dict[int, float] = {}
    for conns in conns_list:
        ratios: list[float] = []
        cpus: list[float] = []
        errors: list[str] = []
        for _ in range(rounds):
            servers = {impl: Server(setup, impl) for impl in ("runtime", "trio")}
            try:
                procs = {
                    impl: subprocess.Popen(
                        setup.client_argv(server.port, conns, 64, duration),
                        stdout=subprocess.PIPE,
                        stderr=subprocess.PIPE,
                        text=True,
                    )
                    for impl, server in servers.items()
                }
                out: dict[str, Result] = {}
                for impl, proc in procs.items():
                    stdout, stderr = proc.communicate(timeout=duration + setup.warmup + 120)
                    out[impl] = parse_client_output(stdout, proc.returncode, stderr)
            finally:
                for server in servers.values():
                    server.stop()
            ratios.append(ratio(out["runtime"]["msgs_per_s"], out["trio"]["msgs_per_s"]))
            cpus.append(out["runtime"]["client_cpu_pct"] + out["trio"]["client_cpu_pct"])
            errors.append(f"{out['runtime']['errors']}/{out['trio']['errors']}")
        medians[conns] = median = statistics.median(ratios)
        print(
            f"  {conns:>5} conns: ratio runtime/trio {median:.2f}x (rounds: "
            f"{', '.join(f'{r:.2f}' for r in ratios)}); both clients together used "
            f"{statistics.median(cpus):.0f}% of core 1 (max {max(cpus):.0f}%); "
            f"errors runtime/trio per round: {', '.join(errors)}"
        )
        if max(cpus) > CLIENT_CPU_WARN:
            print(
                "  WARNING: the two clients together used more than "
                f"{CLIENT_CPU_WARN:.0f}% of core 1: the kernel may be dividing that core "
                "between them, which pulls the ratio toward 1.0x"
            )
    if medians:
        print(
            "  (the clients share core 1 but each needs a few microseconds per message, a "
            "fraction of what a Python server needs, so while their sum stays well below "
            "100% neither waits for the other and they do not shape the ratio)"
        )
    return medians


def idle_memory(setup: Setup, count: int, impls: Sequence[str]) -> dict[str, float]:
    """RSS per connection with ``count`` connections open, in two states.

    "accepted": every connection accepted and its handler waiting for a first read (only the
    last connection has echoed, which proves the earlier ones were accepted). "used": then
    each connection echoes one byte and goes quiet, the state of an idle keep-alive
    connection, where lazily made per-connection state exists. The target reads "used".

    Returns:
        Bytes per connection in the "used" state, per implementation.
    """
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    room = soft - 256  # this process holds the client ends; the server as many again
    if count > room:
        print(
            f"\nWARNING: the file limit ({soft}, the hard limit) allows {max(room, 0)} "
            f"connections, not {count}; using {max(room, 0)}. Raise `ulimit -Hn` for the full run."
        )
        count = room
    if count < 10:
        print("idle memory: skipped, too few file descriptors")
        return {}
    print(
        f"\nserver RSS per idle connection, {count} connections held open, after one warm-up"
        " connection; accepted = handler waiting, used = each echoed 1 byte since"
    )
    per_conn: dict[str, float] = {}
    for impl in impls:
        server = Server(setup, impl, max_connections=count + 64)
        socks: list[socket.socket] = []
        try:
            warm = socket.create_connection(("127.0.0.1", server.port), timeout=30)
            socks.append(warm)
            round_trip([warm])
            before = server.rss_kb()
            for _ in range(count):
                socks.append(socket.create_connection(("127.0.0.1", server.port), timeout=30))
            round_trip(socks[-1:])
            accepted = server.rss_kb()
            round_trip(socks[1:-1])
            used = server.rss_kb()
        finally:
            for s in socks:
                s.close()
            server.stop()
        per_conn[impl] = per = (used - before) * 1024 / count
        print(
            f"  {impl:>12}: {before} KB -> accepted {accepted} KB -> used {used} KB: "
            f"{(accepted - before) * 1024 / count:.0f} B per connection accepted, "
            f"{per:.0f} B used"
        )
    if "runtime" in per_conn and "trio" in per_conn:
        print(
            f"  -> ratio runtime/trio {ratio(per_conn['runtime'], per_conn['trio']):.2f}x (used)"
        )
    return per_conn


def round_trip(socks: list[socket.socket]) -> None:
    for s in socks:
        s.sendall(b"x")
    for s in socks:
        if s.recv(1) != b"x":
            raise RuntimeError("idle-memory connection: the server did not echo")


# -- profile ---------------------------------------------------------------------------------


def profile(setup: Setup, path: Path, duration: float, conns: int, top: int) -> None:
    """cProfile the runtime server under the client; print per-message counts and times."""
    print(
        f"\nprofile: runtime server under cProfile, {conns} conns, 64 B, {duration:g} s -> {path}"
    )
    server = Server(setup, "runtime", prefix=["-m", "cProfile", "-o", str(path)])
    try:
        result = load(setup, server, conns, 64, duration)
    finally:
        status = server.stop()
    if status != 0 or not path.exists():
        print(f"  the profiled server exited with {status} and wrote no profile")
        return
    served = int(result.get("total_messages", result["messages"])) or 1
    print(
        f"  {served} messages served (warm-up included), {result['msgs_per_s']:.0f} msgs/s "
        f"under the profiler, server CPU {result['server_cpu_pct']:.0f}%, "
        f"errors {result['errors']}; epoll's tottime includes time blocked (idle or waiting "
        "for core 0), not only CPU"
    )
    stats: Any = pstats.Stats(str(path))
    rows = [(func, cc, nc, tt, ct) for func, (cc, nc, tt, ct, _callers) in stats.stats.items()]
    for title, key in (("tottime", 3), ("ncalls", 2)):
        print(f"\n  top {top} by {title}, per message = divided by {served} messages")
        print(
            f"  {'ncalls':>10} {'calls/msg':>9} {'tottime s':>9} {'tot us/msg':>10} "
            f"{'cumtime s':>9}  function"
        )
        for func, _cc, nc, tt, ct in sorted(rows, key=lambda row: row[key], reverse=True)[:top]:
            filename, line, name = func
            where = f"{shorten(filename)}:{line}({name})" if line else name
            print(
                f"  {nc:>10} {nc / served:>9.2f} {tt:>9.3f} {tt / served * 1e6:>10.2f} "
                f"{ct:>9.3f}  {where}"
            )


def shorten(filename: str) -> str:
    for base in (str(ROOT) + os.sep, os.path.dirname(os.__file__) + os.sep):
        if filename.startswith(base):
            return filename[len(base) :]
    return filename.replace(sys.prefix + os.sep, "")


# -- targets ---------------------------------------------------------------------------------


def report_targets(
    table: dict[tuple[int, int], dict[str, Result]],
    rss: dict[str, float],
    *,
    caveat: str,
) -> None:
    print(f"\ntargets (medians of the interleaved rounds){caveat}")

    def case_ratio(conns: int, peer: str) -> float | None:
        results = table.get((conns, 64))
        if not results or "runtime" not in results or peer not in results:
            return None
        return ratio(results["runtime"]["msgs_per_s"], results[peer]["msgs_per_s"])

    def verdict(name: str, value: float | None, goal: str, ok: bool, unit: str = "x") -> None:
        if value is None:
            print(f"  SKIP  {name} ({goal}): not measured in this run")
        else:
            print(f"  {'PASS' if ok else 'MISS'}  {name}: {value:.2f}{unit} ({goal})")

    for conns in (64, 1000):
        v = case_ratio(conns, "trio")
        goal = f">= {THROUGHPUT_TARGET}x"
        verdict(
            f"runtime/trio at {conns} conns", v, goal, v is not None and v >= THROUGHPUT_TARGET
        )
    per = rss.get("runtime")
    verdict(
        "runtime Server RSS per idle connection (used)",
        per,
        f"<= {RSS_TARGET} B",
        per is not None and per <= RSS_TARGET,
        unit=" B",
    )
    for conns in (64, 1000):
        v = case_ratio(conns, "asyncio")
        goal = f">= {STRETCH_TARGET}x, stretch"
        ok = v is not None and v >= STRETCH_TARGET
        verdict(f"runtime/asyncio at {conns} conns", v, goal, ok)


# -- main ------------------------------------------------------------------------------------


def source_version() -> str:
    """The commit measured, and whether runtime/ or examples/ differ from it."""
    try:
        head = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain", "runtime", "examples"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "not a git checkout"
    return f"commit {head}" + (" + UNCOMMITTED changes in runtime/ or examples/" if dirty else "")


def available_impls() -> list[str]:
    impls = ["runtime", "trio", "asyncio"]
    try:
        import uvloop  # noqa: F401

        impls.append("uvloop")
    except ImportError:
        pass
    return impls


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--duration", type=float, default=2.0, help="seconds per run (default 2)")
    p.add_argument("--warmup", type=float, default=0.5, help="unrecorded seconds per run")
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default 5)")
    p.add_argument("--quick", action="store_true", help="64-byte messages only")
    p.add_argument("--conns", default="", help="only these connection counts, e.g. 1,64")
    p.add_argument("--impls", default="", help="comma-separated; default: all available")
    p.add_argument("--client", choices=["auto", "c", "python"], default="auto")
    p.add_argument("--idle-connections", type=int, default=10_000, help="0 skips the RSS test")
    p.add_argument("--no-paired", action="store_true", help="skip the paired runs")
    p.add_argument("--smoke", action="store_true", help="every code path, tiny and fast (CI)")
    p.add_argument(
        "--profile",
        type=Path,
        metavar="FILE",
        help="only cProfile the runtime server at 64 conns and print the top functions",
    )
    p.add_argument("--profile-duration", type=float, default=5.0)
    p.add_argument("--profile-top", type=int, default=25)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.smoke:
        args.duration, args.warmup, args.rounds = 0.2, 0.05, 1
        args.idle_connections = min(args.idle_connections, 200)
        args.profile_duration, args.profile_top = 0.3, 5
    server_pin, client_pin, pin_note = pin_prefixes()
    soft = raise_file_limit(2 * args.idle_connections + 512)
    native, client_note = (
        (None, "python client requested") if args.client == "python" else (build_native_client())
    )
    if native is None and args.client == "c":
        print(f"error: --client c but {client_note}", file=sys.stderr)
        return 1
    setup = Setup(server_pin, client_pin, native, args.warmup)
    print(f"echo benchmark on Python {platform.python_version()}, {os.cpu_count()} cores")
    print(f"  load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}; {pin_note}")
    print(f"  file limit {soft}; {source_version()}")
    if setup.fallback:
        print(f"  client: PYTHON FALLBACK (benchmarks/_loadgen.py): {client_note}")
        print(
            "  WARNING: with the Python fallback client the ratios are NOT comparable with the"
            " targets or with native-client runs (install a C compiler)"
        )
    else:
        print(f"  client: {client_note}")

    if args.profile is not None or args.smoke:
        path = args.profile or Path(tempfile.gettempdir()) / f"echo-smoke-{os.getpid()}.prof"
        profile(setup, path, args.profile_duration, 8 if args.smoke else 64, args.profile_top)
        if args.smoke:
            path.unlink(missing_ok=True)
        else:
            return 0

    impls = [i for i in args.impls.split(",") if i] or available_impls()
    for needed in ("runtime", "trio"):
        if needed not in impls:
            impls.append(needed)
    conns_filter = {int(c) for c in args.conns.split(",") if c}
    cases = [(1, 64), (64, 64), (1000, 64), (64, 16384)]
    if args.quick:
        cases = [case for case in cases if case[1] == 64]
    if conns_filter:
        cases = [case for case in cases if case[0] in conns_filter]
    paired_conns = [c for c in (64, 1000) if not conns_filter or c in conns_filter]
    if args.smoke:
        cases = [(1, 64), (16, 16384)]
        paired_conns = [16]

    table = throughput(setup, impls, cases, args.duration, args.rounds)
    if not args.no_paired:
        paired(setup, args.duration, args.rounds, paired_conns)
    rss_impls = [i for i in impls if i in ("runtime", "runtime-bare", "trio")]
    rss = idle_memory(setup, args.idle_connections, rss_impls) if args.idle_connections else {}
    caveat = ""
    if args.smoke:
        caveat = " -- SMOKE RUN: tiny counts, the figures mean nothing"
    elif setup.fallback:
        caveat = " -- PYTHON FALLBACK CLIENT: not comparable"
    report_targets(table, rss, caveat=caveat)
    return 0


if __name__ == "__main__":
    sys.exit(main())
