"""HTTP/1.1 hello-world throughput and idle memory: our server against Python's usual servers.

What runs:

* Servers, each a fresh process pinned to core 0 with ``taskset``, each answering ``GET /``
  with 200 ``Hello, world!`` (text/plain, content-length 13):

  - ``ours`` is ``examples/http_hello.py`` (the real HTTP server: router, limits, timeouts,
    drain), parser h11; ``ours-auto`` is the same with ``--parser auto`` (httptools when
    installed), labelled "ours (auto)".
  - ``trio-h11`` is plain ``trio.serve_tcp`` + h11 written the straightforward way, one task
    per connection (``benchmarks/_http_servers.py``): the baseline our abstractions must beat.
  - ``hypercorn-trio``: hypercorn's trio worker (``--worker-class trio``, in-process with
    ``--workers 0``) serving a tiny ASGI app (``benchmarks._http_servers:app``).
  - ``uvicorn-h11``: uvicorn with ``--http h11 --loop asyncio``; ``uvicorn-httptools``:
    ``--http httptools --loop uvloop``; same ASGI app, ``--no-access-log``.

  Peers get ``--backlog 2048`` (hypercorn's default of 100 drops SYNs when 512 connections
  open at once) and a 300 s keep-alive timeout (so the idle connections of the memory test stay
  open). A peer whose packages are missing is skipped with a message.
* The load client, ``wrk -t1`` (Debian's ``wrk``), pinned to core 1, at each concurrency
  (``--conns``, default 64,512); each run is preceded by an unrecorded ``--warmup`` run. A tiny
  Lua ``done()`` hook prints wrk's summary as JSON (no per-request Lua: wrk stays on its fast
  path). wrk's CPU time (this process's children's rusage around the run) is reported; above
  ~70% of its core the benchmark warns that wrk may be setting the pace. wrk's socket errors
  (connect, read, write, timeout) and non-2xx/3xx responses are reported; timeouts are printed
  as a banner, and at 512 connections there must be none.
* Interleaved rounds (``--rounds``, default 5): each round runs every server once, in a
  rotating order; the table shows medians over rounds, and the ratio lines give the ratio of
  the medians (and each round's own ratio, for the spread), with PASS or MISS against the
  issue's targets.
* Idle memory: ``--memory-conns`` (default 2,000) keep-alive connections to each server, each
  having sent one ``GET /`` and read its answer, held idle. The server's VmRSS is read after a
  warm-up request on one connection, then after every answer has been read (re-read until two
  readings 50 ms apart agree, at most 1 s), and KB per connection is printed. Each connection
  then gets a second ``GET /``, which proves the server kept them all open.

Targets (from the issue), medians of the rounds, in one run: ours (h11) >= 4x hypercorn-trio,
>= 1.3x uvicorn-h11, >= 1.2x plain trio + h11, at each concurrency; ours (auto) >= 1.0x
uvicorn-httptools (stretch); no wrk timeouts at 512 connections; ours <= 4.5 KB RSS per idle
keep-alive connection.

Run (needs ``apt-get install -y wrk``; uvicorn, hypercorn[trio], httptools, uvloop from the
project's benchmark dependencies):
    python benchmarks/http.py                      # the full run, ~10 minutes on 2 cores
    python benchmarks/http.py --smoke              # every code path in ~15 s (the tests)
    python benchmarks/http.py --rounds 3 --duration 3 --conns 64 --servers ours,uvicorn-h11
    python benchmarks/http.py --profile /tmp/http.prof   # cProfile ours under wrk, top functions
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import os
import platform
import pstats
import re
import resource
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
EXAMPLE = ROOT / "examples" / "http_hello.py"
ASGI_APP = "benchmarks._http_servers:app"  # imported from ROOT, see _http_servers.py

WRK_CPU_WARN = 70.0  # % of one core: above it wrk may be setting the pace
RSS_TARGET_KB = 4.5  # ours, KB of RSS per idle keep-alive connection
NO_TIMEOUTS_AT = 512  # wrk timeouts at this concurrency are a MISS
START_TIMEOUT = 60.0  # seconds for a server to print its address
REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
BODY = b"Hello, world!"

# wrk's done() hook: the summary as one JSON line (wrk's Lua is LuaJIT: %d truncates numbers)
WRK_LUA = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "WRK_JSON {\\"requests\\": %d, \\"duration_us\\": %d, \\"bytes\\": %d, " ..
    "\\"connect\\": %d, \\"read\\": %d, \\"write\\": %d, \\"timeout\\": %d, \\"status\\": %d, " ..
    "\\"p50_us\\": %d, \\"p99_us\\": %d, \\"max_us\\": %d}\\n",
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.timeout, e.status,
    latency:percentile(50), latency:percentile(99), latency.max))
end
"""

Result = dict[str, Any]


# -- the servers -----------------------------------------------------------------------------


@attrs.frozen
class Impl:
    """One server under test: how to start it and what it needs."""

    key: str
    label: str
    argv: tuple[str, ...]
    modules: tuple[str, ...]  # importable in this interpreter, or the server is skipped
    must_exit_cleanly: bool = False  # ours drains on SIGTERM and exits 0


def _uvicorn(http: str, loop: str) -> tuple[str, ...]:
    return (
        *(sys.executable, "-m", "uvicorn", "--http", http, "--loop", loop),
        *("--host", "127.0.0.1", "--port", "0", "--no-access-log"),
        *("--timeout-keep-alive", "300", "--backlog", "2048", ASGI_APP),
    )


IMPLS = {
    impl.key: impl
    for impl in (
        Impl(
            "ours",
            "ours (h11)",
            (sys.executable, str(EXAMPLE), "--port", "0", "--parser", "h11"),
            ("trio", "h11"),
            must_exit_cleanly=True,
        ),
        Impl(
            "ours-auto",
            "ours (auto)",
            (sys.executable, str(EXAMPLE), "--port", "0", "--parser", "auto"),
            ("trio", "h11"),
            must_exit_cleanly=True,
        ),
        Impl(
            "trio-h11",
            "trio-h11",
            (sys.executable, "-m", "benchmarks._http_servers", "--port", "0"),
            ("trio", "h11"),
        ),
        Impl(
            "hypercorn-trio",
            "hypercorn-trio",
            (
                *(sys.executable, "-m", "hypercorn", "--worker-class", "trio", "--workers", "0"),
                *("--bind", "127.0.0.1:0", "--keep-alive", "300", "--backlog", "2048"),
                ASGI_APP,
            ),
            ("hypercorn", "trio"),
        ),
        Impl("uvicorn-h11", "uvicorn-h11", _uvicorn("h11", "asyncio"), ("uvicorn", "h11")),
        Impl(
            "uvicorn-httptools",
            "uvicorn-httptools",
            _uvicorn("httptools", "uvloop"),
            ("uvicorn", "httptools", "uvloop"),
        ),
    )
}

# (ours, peer, target): ratio of median requests/s; the last one is a stretch goal
TARGETS = [
    ("ours", "hypercorn-trio", 4.0, ""),
    ("ours", "uvicorn-h11", 1.3, ""),
    ("ours", "trio-h11", 1.2, ""),
    ("ours-auto", "uvicorn-httptools", 1.0, ", stretch"),
]
RATIO_NAMES = {"ours": "ours/h11", "ours-auto": "ours/auto"}


def missing_modules(impl: Impl) -> list[str]:
    return [m for m in impl.modules if importlib.util.find_spec(m) is None]


def addr_port(text: str) -> int | None:
    """The port of the first ``http://HOST:PORT`` in a server's output (our listening line,
    uvicorn's "Uvicorn running on", hypercorn's "Running on")."""
    match = re.search(r"http://[\w.\[\]:-]*?:(\d+)\b", text)
    return int(match.group(1)) if match else None


class Server:
    """One server process, listening and answering ``GET /`` correctly when constructed."""

    def __init__(self, setup: Setup, impl: Impl, prefix: Sequence[str] = ()) -> None:
        self.impl = impl
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 (closed in stop())
        argv = list(impl.argv)
        if prefix:  # e.g. -m cProfile -o FILE: between the interpreter and the script
            argv = [argv[0], *prefix, *argv[1:]]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            [*setup.server_pin, *argv],
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        try:
            self.port = self._wait_listening()
            self._check_hello()
        except BaseException:
            self.kill()
            raise

    def _check_hello(self) -> None:
        try:
            check_hello(self.port)
        except (OSError, RuntimeError, ValueError) as exc:
            raise RuntimeError(f"{self.impl.label}: GET / failed: {exc}\n{self.tail()}") from exc

    def _wait_listening(self) -> int:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            port = addr_port(self.output())
            if port is not None:
                return port
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)  # polling a log file for the address line; bounded by the deadline
        raise RuntimeError(
            f"{self.impl.label} did not start (status {self.proc.poll()}):\n{self.tail()}"
        )

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def tail(self, lines: int = 15) -> str:
        return "\n".join(self.output().splitlines()[-lines:])

    def cpu_seconds(self) -> float:
        """User + system CPU time the server has used so far."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rss_kb(self) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RuntimeError(f"no VmRSS for {self.impl.label} (pid {self.proc.pid})")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.log.close()

    def stop(self) -> int:
        """SIGTERM (ours drains), then wait; kill after 15 s. Returns the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        status = self.proc.returncode
        if self.impl.must_exit_cleanly and status != 0:
            print(f"  WARNING: {self.impl.label} exited with status {status}:")
            print("    " + self.tail().replace("\n", "\n    "))
        self.log.close()
        return status


# -- a tiny blocking HTTP client, for checks and the memory test ------------------------------


def read_response(sock: socket.socket, buf: bytearray) -> tuple[int, bytes]:
    """Read one response (Content-Length framed) from ``sock``; ``buf`` keeps any excess.

    Returns:
        (status code, body).
    """
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("the server closed the connection before answering")
        buf += chunk
    head, _, _ = bytes(buf).partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    end = len(head) + 4 + length
    while len(buf) < end:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("the server closed the connection in a response body")
        buf += chunk
    body = bytes(buf[len(head) + 4 : end])
    del buf[:end]
    return status, body


def get(sock: socket.socket) -> None:
    sock.sendall(REQUEST)
    status, body = read_response(sock, bytearray())
    if status != 200 or body != BODY:
        raise RuntimeError(f"GET / answered {status} {body[:40]!r}, not 200 {BODY!r}")


def check_hello(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        get(sock)


# -- setup -----------------------------------------------------------------------------------


@attrs.frozen
class Setup:
    """How this invocation runs its processes."""

    server_pin: list[str]
    client_pin: list[str]
    wrk: str
    lua: Path
    warmup: int
    wrk_timeout: float


def pin_prefixes() -> tuple[list[str], list[str], str]:
    """The command prefixes that pin a server to core 0 and wrk to core 1, and a note."""
    if not shutil.which("taskset"):
        return [], [], "WARNING: taskset not found, servers and wrk are not pinned"
    try:
        allowed = os.sched_getaffinity(0)
    except (AttributeError, OSError):
        allowed = set(range(os.cpu_count() or 1))
    if not {0, 1} <= allowed:
        return [], [], f"WARNING: cores 0 and 1 are not both ours ({sorted(allowed)}), unpinned"
    probe = subprocess.run(["taskset", "-c", "1", "true"], capture_output=True, check=False)
    if probe.returncode != 0:
        return [], [], "WARNING: taskset failed, servers and wrk are not pinned"
    return ["taskset", "-c", "0"], ["taskset", "-c", "1"], "servers on core 0, wrk on core 1"


def raise_file_limit(wanted: int) -> int:
    """Raise the soft RLIMIT_NOFILE toward the hard limit (servers inherit it).

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


# -- throughput ------------------------------------------------------------------------------


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_wrk(setup: Setup, server: Server, conns: int, duration: int) -> Result:
    """One wrk run; adds wrk's and the server's CPU use (% of one core over the run)."""
    argv = [*setup.client_pin, setup.wrk, "-t1", f"-c{conns}", f"-d{duration}s"]
    argv += ["--timeout", f"{setup.wrk_timeout:g}s", "-s", str(setup.lua)]
    argv.append(f"http://127.0.0.1:{server.port}/")
    # Only wrk is reaped in this window, so the children's rusage delta is wrk's CPU time.
    wrk0, srv0, t0 = children_cpu(), server.cpu_seconds(), time.monotonic()
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 60, check=False)
    elapsed = time.monotonic() - t0
    wrk_cpu, srv_cpu = children_cpu() - wrk0, server.cpu_seconds() - srv0
    lines = [line for line in proc.stdout.splitlines() if line.startswith("WRK_JSON ")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(
            f"wrk against {server.impl.label} failed (status {proc.returncode}):\n"
            f"{proc.stdout.strip()}\n{proc.stderr.strip()}"
        )
    result: Result = json.loads(lines[-1].removeprefix("WRK_JSON "))
    result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
    result["wrk_cpu_pct"] = 100 * wrk_cpu / elapsed
    result["server_cpu_pct"] = 100 * srv_cpu / elapsed
    return result


def measure(setup: Setup, impl: Impl, conns: int, duration: int) -> Result:
    server = Server(setup, impl)
    try:
        if setup.warmup:
            run_wrk(setup, server, conns, setup.warmup)
        return run_wrk(setup, server, conns, duration)
    finally:
        server.stop()


ERROR_KINDS = ("connect", "read", "write", "timeout")


def median_of(runs: list[Result]) -> Result:
    """Medians over the rounds (a shared machine: one run can be 30% off either way), error
    counts summed."""
    out: Result = {
        key: statistics.median(r[key] for r in runs)
        for key in ("rps", "p50_us", "p99_us", "wrk_cpu_pct", "server_cpu_pct")
    }
    out["wrk_cpu_max"] = max(r["wrk_cpu_pct"] for r in runs)
    for kind in (*ERROR_KINDS, "status"):
        out[kind] = sum(int(r[kind]) for r in runs)
    return out


def ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")


def throughput(
    setup: Setup, impls: list[Impl], conns_list: list[int], duration: int, rounds: int
) -> tuple[dict[int, dict[str, Result]], dict[int, dict[str, list[Result]]]]:
    """Every concurrency, ``rounds`` rounds, all servers interleaved in each round."""
    print(
        f"\nthroughput: wrk -t1, {duration} s per run after {setup.warmup} s of warm-up, "
        f"{rounds} round(s), servers interleaved (rotating order); medians over rounds, "
        "errors summed over rounds"
    )
    table: dict[int, dict[str, Result]] = {}
    all_runs: dict[int, dict[str, list[Result]]] = {}
    for conns in conns_list:
        runs: dict[str, list[Result]] = {impl.key: [] for impl in impls}
        for r in range(rounds):
            shift = r % len(impls)
            for impl in impls[shift:] + impls[:shift]:
                runs[impl.key].append(measure(setup, impl, conns, duration))
        all_runs[conns] = runs
        table[conns] = {key: median_of(impl_runs) for key, impl_runs in runs.items()}
        print_case(conns, impls, table[conns], runs)
    return table, all_runs


def print_case(
    conns: int, impls: list[Impl], results: dict[str, Result], runs: dict[str, list[Result]]
) -> None:
    print(
        f"\n{'conns':>5}  {'server':<18} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7} "
        f"{'wrk cpu':>7} {'srv cpu':>7}  {'connect/read/write/timeout':>26} {'non-2xx':>7}"
        f"  {'per-round req/s'}"
    )
    for impl in impls:
        r = results[impl.key]
        errors = "/".join(str(r[kind]) for kind in ERROR_KINDS)
        rounds = ", ".join(f"{run['rps']:.0f}" for run in runs[impl.key])
        print(
            f"{conns:>5}  {impl.label:<18} {r['rps']:>8.0f} {r['p50_us'] / 1000:>7.2f} "
            f"{r['p99_us'] / 1000:>7.2f} {r['wrk_cpu_pct']:>6.0f}% {r['server_cpu_pct']:>6.0f}%"
            f"  {errors:>26} {r['status']:>7}  {rounds}"
        )
    for impl in impls:
        r = results[impl.key]
        if r["timeout"]:
            print(
                f"  !!! TIMEOUTS: {impl.label} @{conns}: {r['timeout']} requests got no answer "
                "within wrk's --timeout -- its req/s and latency are suspect !!!"
            )
        if r["status"]:
            print(f"  !!! NON-2xx/3xx: {impl.label} @{conns}: {r['status']} responses !!!")
    worst = max(r["wrk_cpu_max"] for r in results.values())
    if worst > WRK_CPU_WARN:
        print(
            f"  WARNING: wrk used up to {worst:.0f}% of its core (> {WRK_CPU_WARN:.0f}%): it may "
            "be the bottleneck for the fastest servers; read their ratios as bounds"
        )
    print_ratios(conns, results, runs)


def print_ratios(conns: int, results: dict[str, Result], runs: dict[str, list[Result]]) -> None:
    for ours, peer, target, stretch in TARGETS:
        if ours not in results or peer not in results:
            continue
        value = ratio(results[ours]["rps"], results[peer]["rps"])
        per_round = [
            ratio(a["rps"], b["rps"]) for a, b in zip(runs[ours], runs[peer], strict=True)
        ]
        verdict = "PASS" if value >= target else "MISS"
        print(
            f"  {RATIO_NAMES[ours]} vs {peer} @{conns}: {value:.2f}x  "
            f"(target >= {target:g}x{stretch}: {verdict}; rounds: "
            f"{', '.join(f'{x:.2f}' for x in per_round)})"
        )
    if "ours" in results and "ours-auto" in results:
        value = ratio(results["ours-auto"]["rps"], results["ours"]["rps"])
        print(f"  ours/auto vs ours/h11 @{conns}: {value:.2f}x  (no target)")


# -- idle memory -----------------------------------------------------------------------------

BATCH = 50  # connections opened at once: well inside every listen backlog


def settled_rss(server: Server) -> int:
    """VmRSS once two readings 50 ms apart agree (at most 1 s: a bounded settle)."""
    last = server.rss_kb()
    for _ in range(20):
        time.sleep(0.05)
        now = server.rss_kb()
        if now == last:
            return now
        last = now
    return last


def get_on_all(socks: list[socket.socket]) -> None:
    """One ``GET /`` on each connection, BATCH at a time; every answer read and checked."""
    for i in range(0, len(socks), BATCH):
        batch = socks[i : i + BATCH]
        for sock in batch:
            sock.sendall(REQUEST)
        for sock in batch:
            status, body = read_response(sock, bytearray())
            if status != 200 or body != BODY:
                raise RuntimeError(f"GET / answered {status} {body[:40]!r}")


def open_connections(port: int, count: int) -> list[socket.socket]:
    socks: list[socket.socket] = []
    try:
        for _ in range(count):
            socks.append(socket.create_connection(("127.0.0.1", port), timeout=30))
            if len(socks) % BATCH == 0:
                get_on_all(socks[-BATCH:])
        get_on_all(socks[len(socks) - len(socks) % BATCH :])
    except BaseException:
        for sock in socks:
            sock.close()
        raise
    return socks


def idle_memory(setup: Setup, impls: list[Impl], count: int) -> dict[str, float]:
    """KB of server RSS per idle keep-alive connection, per server."""
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    room = soft - 256
    if count > room:
        print(f"\nWARNING: the file limit ({soft}) allows {room} connections, not {count}")
        count = room
    if count < 10:
        print("\nidle memory: skipped, too few file descriptors")
        return {}
    print(
        f"\nidle memory: {count} keep-alive connections per server, each answered one GET / and "
        "held idle; VmRSS before (after one warm-up request) and after"
    )
    per_conn: dict[str, float] = {}
    for impl in impls:
        server = Server(setup, impl)
        socks: list[socket.socket] = []
        try:
            warm = socket.create_connection(("127.0.0.1", server.port), timeout=30)
            socks.append(warm)
            get(warm)
            before = settled_rss(server)
            socks += open_connections(server.port, count)
            after = settled_rss(server)
            get_on_all(socks)  # all still open: the server kept every idle connection
        except (OSError, RuntimeError, ValueError) as exc:
            raise RuntimeError(f"{impl.label}, idle memory test: {exc}\n{server.tail()}") from exc
        finally:
            for sock in socks:
                sock.close()
            server.stop()
        per_conn[impl.key] = per = (after - before) / count
        target = f"  (target <= {RSS_TARGET_KB:g} KB)" if impl.key == "ours" else ""
        print(
            f"  {impl.label:<18} {before:>7} KB -> {after:>7} KB: "
            f"{per:.2f} KB per connection{target}"
        )
    return per_conn


# -- profile ---------------------------------------------------------------------------------


def profile(setup: Setup, path: Path, duration: int, conns: int, top: int) -> None:
    """cProfile ours (h11) under wrk; print the top functions, per request."""
    print(f"\nprofile: ours (h11) under cProfile, wrk -c{conns}, {duration} s -> {path}")
    server = Server(setup, IMPLS["ours"], prefix=["-m", "cProfile", "-o", str(path)])
    try:
        result = run_wrk(setup, server, conns, duration)
    finally:
        status = server.stop()
    if status != 0 or not path.exists():
        print(f"  the profiled server exited with {status} and wrote no profile")
        return
    served = int(result["requests"]) or 1
    print(
        f"  {served} requests, {result['rps']:.0f} req/s under the profiler; epoll's time "
        "includes time blocked, not only CPU"
    )
    stats: Any = pstats.Stats(str(path))
    rows = [(func, nc, tt, ct) for func, (_cc, nc, tt, ct, _callers) in stats.stats.items()]
    for title, key in (("tottime", 2), ("cumtime", 3)):
        print(f"\n  top {top} by {title}; per request = divided by {served} requests")
        print(
            f"  {'ncalls':>9} {'calls/req':>9} {'tottime':>8} {'us/req':>7} {'cumtime':>8}  where"
        )
        for func, nc, tt, ct in sorted(rows, key=lambda row: row[key], reverse=True)[:top]:
            filename, line, name = func
            where = f"{shorten(filename)}:{line}({name})" if line else name
            print(
                f"  {nc:>9} {nc / served:>9.2f} {tt:>8.3f} {tt / served * 1e6:>7.2f} "
                f"{ct:>8.3f}  {where}"
            )


def shorten(filename: str) -> str:
    for base in (str(ROOT) + os.sep, os.path.dirname(os.__file__) + os.sep):
        if filename.startswith(base):
            return filename[len(base) :]
    return filename.replace(sys.prefix + os.sep, "")


# -- targets and main ------------------------------------------------------------------------


def report_targets(
    table: dict[int, dict[str, Result]], rss: dict[str, float], caveat: str
) -> None:
    print(f"\ntargets (medians of the interleaved rounds){caveat}")
    for conns, results in table.items():
        for ours, peer, target, stretch in TARGETS:
            name = f"{RATIO_NAMES[ours]} vs {peer} @{conns}"
            if ours not in results or peer not in results:
                print(f"  SKIP  {name} (>= {target:g}x{stretch}): not measured")
                continue
            value = ratio(results[ours]["rps"], results[peer]["rps"])
            verdict = "PASS" if value >= target else "MISS"
            print(f"  {verdict}  {name}: {value:.2f}x (>= {target:g}x{stretch})")
    if NO_TIMEOUTS_AT in table:
        # The target is ours; the peers' timeouts are shown above, for the record.
        ours = {
            k: r["timeout"]
            for k, r in table[NO_TIMEOUTS_AT].items()
            if k.startswith("ours") and r["timeout"]
        }
        if ours:
            which = ", ".join(f"{IMPLS[k].label} {n}" for k, n in ours.items())
            print(f"  MISS  no wrk timeouts for ours @{NO_TIMEOUTS_AT}: TIMEOUTS: {which}")
        elif any(k.startswith("ours") for k in table[NO_TIMEOUTS_AT]):
            print(f"  PASS  no wrk timeouts for ours @{NO_TIMEOUTS_AT}")
    per = rss.get("ours")
    if per is None:
        print(f"  SKIP  ours RSS per idle connection (<= {RSS_TARGET_KB:g} KB): not measured")
    else:
        verdict = "PASS" if per <= RSS_TARGET_KB else "MISS"
        print(f"  {verdict}  ours RSS per idle connection: {per:.2f} KB (<= {RSS_TARGET_KB:g} KB)")


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


def versions() -> str:
    out = []
    for dist in ("h11", "httptools", "trio", "hypercorn", "uvicorn", "uvloop"):
        try:
            out.append(f"{dist} {importlib.metadata.version(dist)}")
        except importlib.metadata.PackageNotFoundError:
            out.append(f"{dist} (not installed)")
    return ", ".join(out)


def wrk_version(wrk: str) -> str:
    proc = subprocess.run([wrk, "--version"], capture_output=True, text=True, check=False)
    return (proc.stdout or proc.stderr).splitlines()[0].split(" Copyright")[0]


def choose_impls(spec: str) -> list[Impl]:
    keys = [k for k in spec.split(",") if k] or list(IMPLS)
    unknown = [k for k in keys if k not in IMPLS]
    if unknown:
        raise SystemExit(f"error: unknown server(s) {unknown}; choose from {', '.join(IMPLS)}")
    impls = []
    for key in keys:
        missing = missing_modules(IMPLS[key])
        if missing:
            print(
                f"  SKIP {IMPLS[key].label}: {', '.join(missing)} not installed "
                f"(pip install {' '.join(missing)})"
            )
        else:
            impls.append(IMPLS[key])
    return impls


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=f"servers (--servers): {', '.join(IMPLS)}",
    )
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default 5)")
    p.add_argument("--duration", type=int, default=5, help="seconds per wrk run (default 5)")
    p.add_argument(
        "--warmup", type=int, default=1, help="seconds of unrecorded wrk before each run (1)"
    )
    p.add_argument("--conns", default="64,512", help="wrk concurrencies (default 64,512)")
    p.add_argument("--servers", default="", help="comma-separated keys; default: all installed")
    p.add_argument(
        "--wrk-timeout", type=float, default=2.0, help="wrk --timeout in seconds (wrk's default 2)"
    )
    p.add_argument(
        "--memory-conns",
        type=int,
        default=2000,
        help="idle keep-alive connections for the RSS test (default 2000; 0 skips it)",
    )
    p.add_argument(
        "--smoke",
        action="store_true",
        help="every code path, tiny and fast: 1 round, 1 s, no warm-up, c=8, 50 memory conns",
    )
    p.add_argument(
        "--profile",
        type=Path,
        metavar="FILE",
        help="only cProfile ours (h11) under wrk at the first --conns and print top functions",
    )
    p.add_argument("--profile-top", type=int, default=25, help="functions listed (default 25)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.smoke:
        args.rounds, args.duration, args.warmup, args.conns = 1, 1, 0, "8"
        args.memory_conns = min(args.memory_conns, 50)
    conns_list = [int(c) for c in args.conns.split(",") if c]
    wrk = shutil.which("wrk")
    if wrk is None:
        print("error: wrk not found; install it: apt-get install -y wrk", file=sys.stderr)
        return 2
    server_pin, client_pin, pin_note = pin_prefixes()
    soft = raise_file_limit(2 * args.memory_conns + 512)
    print(f"HTTP benchmark on Python {platform.python_version()}, {os.cpu_count()} cores")
    print(f"  load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}; {pin_note}")
    print(f"  file limit {soft}; {source_version()}; {wrk_version(wrk)}")
    print(f"  {versions()}")
    impls = choose_impls(args.servers)
    with tempfile.TemporaryDirectory() as tmp:
        lua = Path(tmp) / "summary.lua"
        lua.write_text(WRK_LUA)
        setup = Setup(server_pin, client_pin, wrk, lua, args.warmup, args.wrk_timeout)
        if args.profile is not None:
            profile(setup, args.profile, args.duration, conns_list[0], args.profile_top)
            return 0
        table, _runs = throughput(setup, impls, conns_list, args.duration, args.rounds)
        rss = idle_memory(setup, impls, args.memory_conns) if args.memory_conns else {}
    caveat = " -- SMOKE RUN: tiny counts, the figures mean nothing" if args.smoke else ""
    report_targets(table, rss, caveat)
    return 0


if __name__ == "__main__":
    sys.exit(main())
