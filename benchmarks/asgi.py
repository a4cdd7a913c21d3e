"""ASGI hello-world throughput: our ``serve`` against hypercorn and uvicorn, same apps, one run.

What runs:

* Two apps, each answering ``GET /`` with 200 ``Hello, world!`` (text/plain, content-length
  13): ``raw``, a bare ASGI 3 callable (``benchmarks._http_servers:app``, the one
  ``benchmarks/http.py`` gives the peers), and ``starlette``, the same answer from a Starlette
  route (``benchmarks._asgi_apps:starlette_app``).
* Each app under every server, each a fresh process pinned to core 0:

  - ``ours``: ``python -m runtime serve APP`` (the adapter on the runtime's HTTP server, with
    its defaults: parser auto, i.e. httptools when installed; every limit and timeout on),
    ``--no-access-log``;
  - ``ours-h11``: the same with ``--http h11`` (for the record, no target);
  - ``hypercorn-trio``: hypercorn's trio worker (``--worker-class trio --workers 0``);
  - ``hypercorn-asyncio``: hypercorn's asyncio worker;
  - ``uvicorn-h11``: ``--http h11 --loop asyncio``; ``uvicorn-httptools``: ``--http httptools
    --loop uvloop``; both ``--no-access-log``.

  Every server gets a 300 s keep-alive and a backlog of 2048. A peer whose packages are
  missing is skipped with a message.
* The load client and the bookkeeping are ``benchmarks/http.py``'s (reused, not copied):
  ``wrk -t1`` pinned to core 1, an unrecorded warm-up run before each run, wrk's CPU reported
  (a warning above ~70% of its core), errors and non-2xx counted; interleaved rounds (every
  server once per round, in a rotating order), medians over rounds, ratios of the medians
  with each round's own ratio for the spread.

Targets (from the issue), on the raw app: ours >= 3x hypercorn-trio and >= 1.0x uvicorn-h11.
The Starlette rows are reported with their ratios, no target.

Run (needs ``apt-get install -y wrk``; starlette, uvicorn, hypercorn, httptools, uvloop from
the project's benchmark dependencies):
    python benchmarks/asgi.py                       # 3 rounds, 64 connections, ~5 minutes
    python benchmarks/asgi.py --smoke               # every code path in ~30 s (the tests)
    python benchmarks/asgi.py --apps raw --servers ours,uvicorn-h11 --rounds 5
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if __package__ in (None, ""):
    # Run as a script, benchmarks/ is sys.path[0], where http.py (the benchmark) shadows the
    # standard library's http; import the benchmarks as a package from the root instead.
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
    sys.path.insert(0, str(ROOT))

from benchmarks import http as http_bench  # noqa: E402

APPS = {
    "raw": "benchmarks._http_servers:app",
    "starlette": "benchmarks._asgi_apps:starlette_app",
}
PY = sys.executable
SERVERS: dict[str, tuple[str, tuple[str, ...], tuple[str, ...], bool]] = {
    # key: (label, argv before the app, modules needed, drains and exits 0 on SIGTERM)
    "ours": (
        "ours",
        (PY, "-m", "runtime", "serve", "--port", "0", "--no-access-log", "--log-level",
         "warning", "--timeout-keep-alive", "300", "--backlog", "2048"),
        ("trio", "httptools"),
        True,
    ),
    "ours-h11": (
        "ours (h11)",
        (PY, "-m", "runtime", "serve", "--port", "0", "--no-access-log", "--log-level",
         "warning", "--timeout-keep-alive", "300", "--backlog", "2048", "--http", "h11"),
        ("trio", "h11"),
        True,
    ),
    "hypercorn-trio": (
        "hypercorn-trio",
        (PY, "-m", "hypercorn", "--worker-class", "trio", "--workers", "0", "--bind",
         "127.0.0.1:0", "--keep-alive", "300", "--backlog", "2048"),
        ("hypercorn", "trio"),
        False,
    ),
    "hypercorn-asyncio": (
        "hypercorn-asyncio",
        (PY, "-m", "hypercorn", "--worker-class", "asyncio", "--workers", "0", "--bind",
         "127.0.0.1:0", "--keep-alive", "300", "--backlog", "2048"),
        ("hypercorn",),
        False,
    ),
    "uvicorn-h11": (
        "uvicorn-h11",
        (PY, "-m", "uvicorn", "--http", "h11", "--loop", "asyncio", "--host", "127.0.0.1",
         "--port", "0", "--no-access-log", "--timeout-keep-alive", "300", "--backlog", "2048"),
        ("uvicorn", "h11"),
        False,
    ),
    "uvicorn-httptools": (
        "uvicorn-httptools",
        (PY, "-m", "uvicorn", "--http", "httptools", "--loop", "uvloop", "--host",
         "127.0.0.1", "--port", "0", "--no-access-log", "--timeout-keep-alive", "300",
         "--backlog", "2048"),
        ("uvicorn", "httptools", "uvloop"),
        False,
    ),
}  # fmt: skip
# (app, ours, peer, target or None): the ratio of median requests/s
TARGETS = [
    ("raw", "ours", "hypercorn-trio", 3.0),
    ("raw", "ours", "uvicorn-h11", 1.0),
    ("raw", "ours", "hypercorn-asyncio", None),
    ("raw", "ours", "uvicorn-httptools", None),
    ("raw", "ours-h11", "uvicorn-h11", None),
    ("starlette", "ours", "hypercorn-trio", None),
    ("starlette", "ours", "uvicorn-h11", None),
    ("starlette", "ours", "hypercorn-asyncio", None),
    ("starlette", "ours", "uvicorn-httptools", None),
]


def impl(server: str, app: str) -> http_bench.Impl:
    label, argv, modules, drains = SERVERS[server]
    modules = (*modules, "starlette") if app == "starlette" else modules
    return http_bench.Impl(
        f"{server}/{app}", f"{label} {app}", (*argv, APPS[app]), modules, drains
    )


def choose(servers: list[str], apps: list[str]) -> list[http_bench.Impl]:
    chosen = []
    for app in apps:
        for server in servers:
            candidate = impl(server, app)
            missing = http_bench.missing_modules(candidate)
            if missing:
                print(f"  SKIP {candidate.label}: {', '.join(missing)} not installed")
            else:
                chosen.append(candidate)
    return chosen


def report(
    table: dict[int, dict[str, http_bench.Result]],
    runs: dict[int, dict[str, list[http_bench.Result]]],
    caveat: str,
) -> None:
    print(f"\nratios (medians of the interleaved rounds){caveat}")
    for conns, results in table.items():
        for app, ours, peer, target in TARGETS:
            a, b = f"{ours}/{app}", f"{peer}/{app}"
            name = f"{app}: {SERVERS[ours][0]} vs {SERVERS[peer][0]} @{conns}"
            if a not in results or b not in results:
                continue
            value = http_bench.ratio(results[a]["rps"], results[b]["rps"])
            rounds = ", ".join(
                f"{http_bench.ratio(x['rps'], y['rps']):.2f}"
                for x, y in zip(runs[conns][a], runs[conns][b], strict=True)
            )
            if target is None:
                print(f"  ----  {name}: {value:.2f}x (no target; rounds: {rounds})")
            else:
                verdict = "PASS" if value >= target else "MISS"
                print(f"  {verdict}  {name}: {value:.2f}x (>= {target:g}x; rounds: {rounds})")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=f"servers: {', '.join(SERVERS)}; apps: {', '.join(APPS)}",
    )
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    p.add_argument("--duration", type=int, default=5, help="seconds per wrk run (default 5)")
    p.add_argument("--warmup", type=int, default=1, help="seconds of unrecorded wrk first (1)")
    p.add_argument("--conns", default="64", help="wrk concurrencies (default 64)")
    p.add_argument("--servers", default=",".join(SERVERS), help="comma-separated keys")
    p.add_argument("--apps", default=",".join(APPS), help="comma-separated: raw, starlette")
    p.add_argument("--wrk-timeout", type=float, default=2.0, help="wrk --timeout (default 2 s)")
    p.add_argument("--smoke", action="store_true", help="every code path, tiny: 1 round, 1 s, c=8")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.smoke:
        args.rounds, args.duration, args.warmup, args.conns = 1, 1, 0, "8"
    servers = [s for s in args.servers.split(",") if s]
    apps = [a for a in args.apps.split(",") if a]
    unknown = [s for s in servers if s not in SERVERS] + [a for a in apps if a not in APPS]
    if unknown:
        print(f"error: unknown server(s) or app(s): {unknown}", file=sys.stderr)
        return 2
    wrk = shutil.which("wrk")
    if wrk is None:
        print("error: wrk not found; install it: apt-get install -y wrk", file=sys.stderr)
        return 2
    server_pin, client_pin, pin_note = http_bench.pin_prefixes()
    http_bench.raise_file_limit(2048)
    print(f"ASGI benchmark on Python {platform.python_version()}, {os.cpu_count()} cores")
    print(f"  load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}; {pin_note}")
    print(f"  {http_bench.source_version()}; {http_bench.wrk_version(wrk)}")
    print(f"  {http_bench.versions()}")
    impls = choose(servers, apps)
    conns_list = [int(c) for c in args.conns.split(",") if c]
    with tempfile.TemporaryDirectory() as tmp:
        lua = Path(tmp) / "summary.lua"
        lua.write_text(http_bench.WRK_LUA)
        setup = http_bench.Setup(server_pin, client_pin, wrk, lua, args.warmup, args.wrk_timeout)
        table, runs = http_bench.throughput(setup, impls, conns_list, args.duration, args.rounds)
    caveat = " -- SMOKE RUN: tiny counts, the figures mean nothing" if args.smoke else ""
    report(table, runs, caveat)
    return 0


if __name__ == "__main__":
    sys.exit(main())
