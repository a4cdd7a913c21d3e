"""Echo throughput and latency: the project's server against plain Trio, asyncio and uvloop.

Every server runs as its own process pinned to core 0; the same load client (asyncio
Protocols on uvloop, benchmarks/_loadgen.py) runs pinned to core 1. For each connection count
and message size it prints messages/s, p50 and p99 latency, the client's CPU use (a client
below ~90% CPU is not the bottleneck), and the ratios project / plain Trio and project /
asyncio; with several rounds interleaved, the median round. Then the project's and Trio's
servers run *paired*: both on core 0 at once, so that the noise of a shared machine hits both
alike, and their throughput ratio is the ratio of CPU cost per message. Last, server RSS per
idle connection with 10,000 connections held open.

Targets (issue 5): >= 1.5x plain Trio at 64 connections, >= 1.3x at 1,000; p50 at one
connection within 1.2x of plain Trio's; stretch: >= 1.0x asyncio streams; <= 8 KB of RSS
per idle connection.

Run: python benchmarks/echo.py [--duration 3] [--rounds 5] [--quick] [--conns 1,64]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SERVERS = HERE / "_echo_servers.py"
LOADGEN = HERE / "_loadgen.py"


def _pin(core: int) -> list[str]:
    if shutil.which("taskset") and (os.cpu_count() or 1) > 1:
        return ["taskset", "-c", str(core)]
    return []


def available_impls() -> list[str]:
    impls = ["runtime", "trio", "asyncio"]
    try:
        import uvloop  # noqa: F401

        impls.append("uvloop")
    except ImportError:
        pass
    return impls


class Server:
    def __init__(self, impl: str) -> None:
        self.impl = impl
        self.proc = subprocess.Popen(
            [*_pin(0), sys.executable, str(SERVERS), "--impl", impl, "--port", "0"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        if not line.startswith("listening on tcp://"):
            self.stop()
            raise RuntimeError(f"{impl} server did not start: {line!r}")
        self.port = int(line.rsplit(":", 1)[1])

    def rss_kb(self) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def load(port: int, conns: int, size: int, duration: float) -> dict[str, float]:
    out = subprocess.run(
        [
            *_pin(1),
            sys.executable,
            str(LOADGEN),
            "--port",
            str(port),
            "--conns",
            str(conns),
            "--size",
            str(size),
            "--duration",
            str(duration),
        ],
        capture_output=True,
        text=True,
        timeout=duration + 60,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def median_of(runs: list[dict[str, float]]) -> dict[str, float]:
    """The median of each figure over the rounds (these VMs have noisy neighbours: a single
    run can be 30% off either way, and a best-of would reward one lucky round)."""
    return {
        "msgs_per_s": statistics.median(r["msgs_per_s"] for r in runs),
        "p50_us": statistics.median(r["p50_us"] for r in runs),
        "p99_us": statistics.median(r["p99_us"] for r in runs),
        "client_cpu_pct": max(r["client_cpu_pct"] for r in runs),
    }


def throughput(duration: float, quick: bool, rounds: int, conns_filter: set[int] | None) -> None:
    impls = available_impls()
    cases = [(1, 64), (64, 64), (1000, 64), (1, 16384), (64, 16384), (1000, 16384)]
    if quick:
        cases = [(1, 64), (64, 64), (1000, 64)]
    if conns_filter:
        cases = [case for case in cases if case[0] in conns_filter]
    print(
        f"echo throughput, {duration:.0f}s per run, {rounds} rounds with the servers interleaved;"
        " the median round shown; server on core 0, client on core 1"
    )
    header = f"{'conns':>5} {'size':>6} {'impl':>8} {'msgs/s':>10} {'p50 us':>8} {'p99 us':>8}"
    print(header + f" {'client cpu':>10} {'vs trio':>8} {'vs asyncio':>10}")
    for conns, size in cases:
        runs: dict[str, list[dict[str, float]]] = {impl: [] for impl in impls}
        for _ in range(rounds):
            for impl in impls:
                server = Server(impl)
                try:
                    runs[impl].append(load(server.port, conns, size, duration))
                finally:
                    server.stop()
        results = {impl: median_of(impl_runs) for impl, impl_runs in runs.items()}
        for impl in impls:
            r = results[impl]
            vs_trio = r["msgs_per_s"] / results["trio"]["msgs_per_s"]
            vs_asyncio = r["msgs_per_s"] / results["asyncio"]["msgs_per_s"]
            print(
                f"{conns:>5} {size:>6} {impl:>8} {r['msgs_per_s']:>10.0f} {r['p50_us']:>8.0f} "
                f"{r['p99_us']:>8.0f} {r['client_cpu_pct']:>9.0f}% {vs_trio:>8.2f} "
                f"{vs_asyncio:>10.2f}"
            )
        ours, trio_r = results["runtime"], results["trio"]
        summary = (
            f"  -> runtime/trio throughput {ours['msgs_per_s'] / trio_r['msgs_per_s']:.2f}x, "
            f"p50 {ours['p50_us'] / trio_r['p50_us']:.2f}x of trio's"
        )
        if max(r["client_cpu_pct"] for r in results.values()) >= 90:
            summary += "  (WARNING: client CPU >= 90%: the client may be the bottleneck)"
        print(summary, flush=True)


def paired(duration: float, rounds: int, conns_list: list[int]) -> None:
    """Both servers on core 0 at the same time, each with its own client on core 1.

    The kernel shares core 0 between the two servers, so a slow spell of the (shared, noisy)
    machine hits both alike, and the throughput ratio is the ratio of CPU cost per message.
    Latency means nothing here (each server waits for the other's time slices); the latency
    figures come from the interleaved runs above.
    """
    print(
        f"\npaired runs: runtime and trio servers both on core 0 at once, {duration:.0f}s,"
        f" {rounds} rounds, 64 B messages"
    )
    for conns in conns_list:
        ratios: list[float] = []
        cpu = 0.0
        for _ in range(rounds):
            servers = {impl: Server(impl) for impl in ("runtime", "trio")}
            try:
                procs = {
                    impl: subprocess.Popen(
                        [
                            *_pin(1),
                            *(sys.executable, str(LOADGEN), "--port", str(server.port)),
                            *("--conns", str(conns), "--size", "64", "--duration", str(duration)),
                        ],
                        stdout=subprocess.PIPE,
                        text=True,
                    )
                    for impl, server in servers.items()
                }
                out = {
                    impl: json.loads(proc.communicate(timeout=duration + 60)[0].splitlines()[-1])
                    for impl, proc in procs.items()
                }
            finally:
                for server in servers.values():
                    server.stop()
            ratios.append(out["runtime"]["msgs_per_s"] / out["trio"]["msgs_per_s"])
            cpu = max(cpu, out["runtime"]["client_cpu_pct"] + out["trio"]["client_cpu_pct"])
        shown = ", ".join(f"{r:.2f}" for r in ratios)
        median = statistics.median(ratios)
        print(
            f"  {conns:>5} conns: runtime/trio {median:.2f}x (median of {shown});"
            f" both clients together used {cpu:.0f}% of core 1"
        )


def idle_memory(count: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, count + 256)), hard))
    print(f"\nserver RSS per idle connection, {count} connections held open")
    for impl in ("runtime", "trio"):
        server = Server(impl)
        socks: list[socket.socket] = []
        try:
            time.sleep(0.3)
            before = server.rss_kb()
            for _ in range(count):
                s = socket.create_connection(("127.0.0.1", server.port))
                socks.append(s)
            # one round trip on the last connection: every earlier one has been accepted
            socks[-1].sendall(b"x")
            socks[-1].recv(1)
            after = server.rss_kb()
            per = (after - before) * 1024 / count
            print(f"{impl:>8}: {before} KB -> {after} KB, {per:.0f} B per connection")
        finally:
            for s in socks:
                s.close()
            server.stop()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--duration", type=float, default=3.0)
    p.add_argument("--quick", action="store_true", help="64-byte messages only")
    p.add_argument("--rounds", type=int, default=5, help="runs per server, interleaved")
    p.add_argument("--conns", default="", help="only these connection counts, e.g. 1,64")
    p.add_argument("--idle-connections", type=int, default=10_000, help="0 skips the RSS test")
    args = p.parse_args()
    conns_filter = {int(c) for c in args.conns.split(",") if c}
    throughput(args.duration, args.quick, args.rounds, conns_filter or None)
    paired_conns = [c for c in (64, 1000) if not conns_filter or c in conns_filter]
    paired(args.duration, args.rounds, paired_conns)
    if args.idle_connections:
        idle_memory(args.idle_connections)


if __name__ == "__main__":
    main()
