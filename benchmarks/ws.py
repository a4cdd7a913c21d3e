"""WebSocket echo throughput: our server against trio-websocket and websockets (asyncio).

What runs:

* Servers, each a fresh process pinned to core 0 with ``taskset``: ``ours`` is the project's
  own ``examples/ws_echo.py`` (the real HTTP server and ``websocket_endpoint``);
  ``trio-websocket`` is ``trio_websocket.serve_websocket`` and ``websockets`` is the
  ``websockets`` package's asyncio server (``benchmarks/_ws_servers.py``). A peer whose package
  is missing is skipped with a message (``pip install websockets``).
* The load client, pinned to core 1: ``benchmarks/ws_client.c``, compiled here with the system
  compiler (``cc -O2``, cached under ``benchmarks/.build/``). One process, epoll, N connections,
  each upgraded with a real handshake, then exactly one masked binary message in flight each
  (send, wait for the whole echo and check it, send the next). It reports its own CPU time:
  above ~70% of its core the benchmark warns that the client may be shaping the result.
  There is no fallback client: without a C compiler the benchmark stops.
* Interleaved rounds (``--rounds``, default 5): each round runs every server once, in a
  rotating order; the table shows medians over rounds, the ratio lines the ratio of the
  medians (and each round's own ratio, for the spread).

Targets, 64 connections, 64 B messages, medians of the rounds, in one run: ours >= 1.5x
trio-websocket; stretch: ours >= 1.0x websockets. The last lines print PASS or MISS.

Run:
    python benchmarks/ws.py                 # the full run, ~2 minutes
    python benchmarks/ws.py --smoke         # every code path in a few seconds (CI)
Options: --duration 2 --warmup 0.5 --rounds 5 --conns 64 --sizes 64,16384 --impls ours,...
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
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

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
EXAMPLE = ROOT / "examples" / "ws_echo.py"
# run with -m from ROOT: as a script, benchmarks/http.py would shadow the stdlib http
SERVERS = "benchmarks._ws_servers"
CLIENT_SRC = HERE / "ws_client.c"
BUILD = HERE / ".build"

CLIENT_CPU_WARN = 70.0  # % of one core: above it the client may be setting the pace
TARGET = 1.5  # ours / trio-websocket at 64 B
STRETCH = 1.0  # ours / websockets at 64 B
IMPLS = {  # key: (argv, module that must be importable)
    "ours": ([sys.executable, str(EXAMPLE), "--port", "0"], "trio"),
    "trio-websocket": (
        [sys.executable, "-m", SERVERS, "--impl", "trio-websocket", "--port", "0"],
        "trio_websocket",
    ),
    "websockets": (
        [sys.executable, "-m", SERVERS, "--impl", "websockets", "--port", "0"],
        "websockets",
    ),
}

Result = dict[str, Any]


def pin_prefixes() -> tuple[list[str], list[str], str]:
    """The prefixes that pin a server to core 0 and a client to core 1 (empty if impossible)."""
    if not shutil.which("taskset"):
        return [], [], "WARNING: taskset not found, servers and clients are not pinned"
    try:
        allowed = os.sched_getaffinity(0)
    except (AttributeError, OSError):
        allowed = set(range(os.cpu_count() or 1))
    if not {0, 1} <= allowed:
        return [], [], f"WARNING: cores 0 and 1 are not both available ({sorted(allowed)})"
    probe = subprocess.run(["taskset", "-c", "1", "true"], capture_output=True, check=False)
    if probe.returncode != 0:
        return [], [], "WARNING: taskset failed, servers and clients are not pinned"
    return ["taskset", "-c", "0"], ["taskset", "-c", "1"], "server on core 0, client on core 1"


def build_client() -> tuple[Path | None, str]:
    """Compile ws_client.c once per source version (cached under .build/)."""
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if not cc:
        return None, "no C compiler (cc) found"
    flags = ["-O2", "-Wall"]
    digest = hashlib.sha256(CLIENT_SRC.read_bytes() + " ".join([cc, *flags]).encode()).hexdigest()
    binary = BUILD / f"ws_client-{digest[:12]}"
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
    tmp.replace(binary)
    return binary, f"native C client {binary.relative_to(ROOT)} (built now, {cc} -O2)"


class Server:
    """One echo server process, started and listening when the constructor returns."""

    def __init__(self, impl: str, pin: list[str]) -> None:
        self.impl = impl
        self.stderr = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 (closed in stop())
        self.proc = subprocess.Popen(
            [*pin, *IMPLS[impl][0]],
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            text=True,
            cwd=ROOT,
        )
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], 60)
        line = self.proc.stdout.readline().strip() if ready else ""
        if not line.startswith("listening on ws://"):
            self.proc.kill()
            self.proc.wait()
            self.proc.stdout.close()
            tail = self.stderr_tail()
            self.stderr.close()
            raise RuntimeError(f"{impl} server did not start: {line!r}\n{tail}")
        self.port = int(line.rsplit(":", 1)[1])

    @property
    def pid(self) -> int:
        return self.proc.pid

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stderr_tail(self, lines: int = 15) -> str:
        self.stderr.seek(0)
        return "\n".join(self.stderr.read().splitlines()[-lines:])

    def stop(self) -> None:
        """SIGTERM (ours drains and must exit 0), then wait; kill after 15 s."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        assert self.proc.stdout is not None
        self.proc.stdout.close()
        if self.impl == "ours" and self.proc.returncode != 0:
            print(f"  WARNING: ours exited with status {self.proc.returncode}:")
            print("    " + self.stderr_tail().replace("\n", "\n    "))
        self.stderr.close()


def load(
    client: list[str], server: Server, conns: int, size: int, duration: float, warmup: float
) -> Result:
    """One client run; adds the server's CPU use over the whole run as ``server_cpu_pct``."""
    cpu0, t0 = server.cpu_seconds(), time.monotonic()
    argv = [*client, "--port", str(server.port), "--conns", str(conns), "--size", str(size)]
    argv += ["--duration", str(duration), "--warmup", str(warmup)]
    proc = subprocess.run(
        argv, capture_output=True, text=True, timeout=duration + warmup + 120, check=False
    )
    cpu, elapsed = server.cpu_seconds() - cpu0, time.monotonic() - t0
    lines = proc.stdout.strip().splitlines()
    if not lines:
        raise RuntimeError(f"ws_client printed nothing (status {proc.returncode}): {proc.stderr}")
    result: Result = json.loads(lines[-1])
    result["server_cpu_pct"] = 100 * cpu / elapsed
    return result


def ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")


def throughput(
    client: list[str],
    pin: list[str],
    impls: list[str],
    cases: list[tuple[int, int]],
    duration: float,
    warmup: float,
    rounds: int,
) -> dict[tuple[int, int], dict[str, list[Result]]]:
    print(
        f"\nwebsocket echo: {duration:g} s per run after {warmup:g} s of warm-up, {rounds} "
        "round(s), servers interleaved (rotating order) in each round; medians over rounds"
    )
    print(
        f"{'conns':>5} {'size':>6} {'impl':>15} {'msgs/s':>9} {'p50 us':>8} {'p99 us':>8} "
        f"{'client cpu':>10} {'srv cpu':>7} {'errors':>6}"
    )
    table: dict[tuple[int, int], dict[str, list[Result]]] = {}
    for conns, size in cases:
        runs: dict[str, list[Result]] = {impl: [] for impl in impls}
        for r in range(rounds):
            shift = r % len(impls)
            for impl in impls[shift:] + impls[:shift]:
                server = Server(impl, pin)
                try:
                    runs[impl].append(load(client, server, conns, size, duration, warmup))
                finally:
                    server.stop()
        for impl in impls:
            rs = runs[impl]
            cpu = statistics.median(x["client_cpu_pct"] for x in rs)
            errors = [int(x["errors"]) for x in rs]
            print(
                f"{conns:>5} {size:>6} {impl:>15} "
                f"{statistics.median(x['msgs_per_s'] for x in rs):>9.0f} "
                f"{statistics.median(x['p50_us'] for x in rs):>8.0f} "
                f"{statistics.median(x['p99_us'] for x in rs):>8.0f} "
                f"{cpu:>9.0f}% {statistics.median(x['server_cpu_pct'] for x in rs):>6.0f}% "
                f"{'0' if not any(errors) else '/'.join(map(str, errors)):>6}"
            )
            worst = max(x["client_cpu_pct"] for x in rs)
            if worst > CLIENT_CPU_WARN:
                print(
                    f"  WARNING: the client used up to {worst:.0f}% of its core: it may be "
                    "setting the pace"
                )
            if any(errors):
                print(f"  WARNING: {impl}: connection errors, last: {rs[-1]['last_error']!r}")
        table[conns, size] = runs
    return table


def report(
    table: dict[tuple[int, int], dict[str, list[Result]]], target_conns: int, caveat: str
) -> None:
    print()
    lines: list[str] = []
    for (conns, size), runs in table.items():
        if "ours" not in runs:
            continue
        for peer, goal, kind in (
            ("trio-websocket", TARGET, "target"),
            ("websockets", STRETCH, "stretch"),
        ):
            if peer not in runs:
                continue
            ours = statistics.median(x["msgs_per_s"] for x in runs["ours"])
            theirs = statistics.median(x["msgs_per_s"] for x in runs[peer])
            value = ratio(ours, theirs)
            per_round = ", ".join(
                f"{ratio(a['msgs_per_s'], b['msgs_per_s']):.2f}"
                for a, b in zip(runs["ours"], runs[peer], strict=True)
            )
            label = f"{size}B" if size < 1024 else f"{size // 1024}KiB"
            print(f"ours vs {peer} @{label} ({conns} conns): {value:.2f}x  (rounds: {per_round})")
            if size == 64 and conns == target_conns:
                verdict = "PASS" if value >= goal else "MISS"
                lines.append(
                    f"ours vs {peer} @64B: {value:.2f}x  ({kind} >= {goal:.1f}x: {verdict})"
                    f"{caveat}"
                )
    print()
    for line in lines:
        print(line)


def source_version() -> str:
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


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--duration", type=float, default=2.0, help="seconds per run (default 2)")
    p.add_argument("--warmup", type=float, default=0.5, help="unrecorded seconds per run")
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default 5)")
    p.add_argument("--conns", type=int, default=64, help="connections (default 64)")
    p.add_argument("--sizes", default="64,16384", help="message sizes in bytes")
    p.add_argument("--impls", default="", help="comma-separated; default: all available")
    p.add_argument("--smoke", action="store_true", help="every code path, tiny and fast (CI)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.smoke:
        args.duration, args.warmup, args.rounds, args.conns = 0.2, 0.05, 1, 8
    server_pin, client_pin, pin_note = pin_prefixes()
    binary, client_note = build_client()
    if binary is None:
        print(f"error: the native WebSocket client is needed: {client_note}", file=sys.stderr)
        return 1
    print(f"websocket benchmark on Python {platform.python_version()}, {os.cpu_count()} cores")
    print(f"  load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}; {pin_note}")
    print(f"  {source_version()}; client: {client_note}")
    wanted = [i for i in args.impls.split(",") if i] or list(IMPLS)
    impls = []
    for impl in wanted:
        if impl not in IMPLS:
            print(f"error: unknown server {impl!r} (known: {', '.join(IMPLS)})", file=sys.stderr)
            return 1
        module = IMPLS[impl][1]
        if importlib.util.find_spec(module) is None:
            print(
                f"  SKIPPED {impl}: the {module!r} package is not installed (pip install {module})"
            )
            continue
        impls.append(impl)
    sizes = [int(s) for s in args.sizes.split(",") if s]
    cases = [(args.conns, size) for size in sizes]
    table = throughput(
        [*client_pin, str(binary)],
        server_pin,
        impls,
        cases,
        args.duration,
        args.warmup,
        args.rounds,
    )
    report(
        table,
        args.conns,
        " -- SMOKE RUN: tiny counts, the figures mean nothing" if args.smoke else "",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
