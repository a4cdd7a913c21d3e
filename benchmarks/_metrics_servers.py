"""The servers that benchmarks/metrics.py compares, and its /metrics scraper.

--impl echo-off   ``examples/echo_server.py``'s handler on ``runtime.net.serve`` (the same
                  ``ServerConfig`` as the example), nothing else in the runtime
--impl echo-on    the same, plus ``serve_admin`` on another loopback port
--impl http-off   ``examples/http_hello.py``'s router on ``runtime.http.serve`` with
                  ``HttpConfig(metrics=False)``: no per-request recording
--impl http-on    the same with ``HttpConfig(metrics=True)`` (the default), plus ``serve_admin``

Each prints ``listening on tcp://HOST:PORT`` (echo) or ``listening on http://HOST:PORT``
(http), then for the -on variants ``admin on http://HOST:PORT``, all once serving. SIGINT or
SIGTERM drains (the admin last, as the runtime does it) and the process exits 0. Run from the
repository root with ``-m`` (never with benchmarks/ on ``sys.path``: there ``http.py``, the
benchmark, would shadow the standard library's ``http``)::

    python -m benchmarks._metrics_servers --impl http-on --port 0

``--scrape URL`` is the scraper instead: it GETs URL every ``--interval`` seconds (a first
time at once) on one keep-alive connection, as Prometheus does, and checks that each answer
is a 200 whose text declares every ``--require`` family (``# TYPE NAME ...``). It prints
``scraping`` after the first good scrape. On SIGINT or SIGTERM it scrapes a last time and
prints one JSON line of counts: scrapes, ok, bad, the last failure, the slowest scrape, its
CPU use, and the value of every ``--report`` sample (a sample name with its labels, as in the
text) in the last good scrape.
"""

from __future__ import annotations

import argparse
import functools
import http.client
import json
import re
import resource
import signal
import sys
import time
import urllib.parse
from types import FrameType

IMPLS = ("echo-off", "echo-on", "http-off", "http-on")
TYPE_LINE = re.compile(r"^# TYPE (\S+) ", re.MULTILINE)


# -- the servers -----------------------------------------------------------------------------


async def serve_echo(port: int, admin: bool) -> None:
    import trio

    from examples.echo_server import echo
    from runtime.admin import serve_admin
    from runtime.net import ServerConfig, TcpListener, serve

    listener = TcpListener.bind("127.0.0.1", port)
    config = ServerConfig(max_connections=10_000, idle_timeout=60.0, name="echo")
    async with trio.open_nursery() as nursery:
        await nursery.start(functools.partial(serve, config=config), echo, [listener])
        print(f"listening on tcp://127.0.0.1:{listener.port}", flush=True)
        if admin:
            server = await nursery.start(serve_admin, "127.0.0.1", 0)
            server.set_ready()
            print(f"admin on {server.url}", flush=True)


async def serve_http(port: int, metrics: bool) -> None:
    import trio

    from examples.http_hello import router
    from runtime.admin import serve_admin
    from runtime.http import HttpConfig, serve
    from runtime.net import TcpListener

    listener = TcpListener.bind("127.0.0.1", port)
    config = HttpConfig(parser="h11", name="http_hello", metrics=metrics)
    async with trio.open_nursery() as nursery:
        await nursery.start(functools.partial(serve, config=config), router, [listener])
        print(f"listening on http://127.0.0.1:{listener.port}", flush=True)
        if metrics:
            server = await nursery.start(serve_admin, "127.0.0.1", 0)
            server.set_ready()
            print(f"admin on {server.url}", flush=True)


def run_server(impl: str, port: int) -> int:
    import runtime

    kind, variant = impl.split("-")
    main = serve_echo if kind == "echo" else serve_http
    runtime.run(main, port, variant == "on", config=runtime.RuntimeConfig(shutdown_grace=5.0))
    return 0


# -- the scraper -----------------------------------------------------------------------------


class Scraper:
    """GET one URL on a keep-alive connection and check each answer."""

    def __init__(self, url: str, required: list[str], report: list[str]) -> None:
        parts = urllib.parse.urlsplit(url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.path = parts.path or "/"
        self.required = set(required)
        self.report = report
        self.conn: http.client.HTTPConnection | None = None
        self.scrapes = self.ok = self.bad = 0
        self.last_failure = ""
        self.slowest_ms = 0.0
        self.bytes = 0
        self.last_text = ""

    def get(self) -> tuple[int, str]:
        if self.conn is None:
            self.conn = http.client.HTTPConnection(self.host, self.port, timeout=10)
        self.conn.request("GET", self.path)
        response = self.conn.getresponse()
        return response.status, response.read().decode()

    def scrape_once(self) -> bool:
        self.scrapes += 1
        t0 = time.perf_counter()
        try:
            status, text = self.get()
        except (OSError, http.client.HTTPException) as exc:
            if self.conn is not None:
                self.conn.close()
            self.conn = None
            return self.failed(f"{type(exc).__name__}: {exc}")
        self.slowest_ms = max(self.slowest_ms, (time.perf_counter() - t0) * 1000)
        if status != 200:
            return self.failed(f"status {status}: {text[:80]!r}")
        missing = self.required - set(TYPE_LINE.findall(text))
        if missing:
            return self.failed(f"families missing: {', '.join(sorted(missing))}")
        self.ok += 1
        self.bytes = len(text)
        self.last_text = text
        return True

    def failed(self, why: str) -> bool:
        self.bad += 1
        self.last_failure = why
        return False

    def reported(self) -> dict[str, float | None]:
        """The value of each ``--report`` sample in the last good scrape (None if absent)."""
        values: dict[str, float | None] = dict.fromkeys(self.report)
        for line in self.last_text.splitlines():
            name, _, value = line.rpartition(" ")
            if name in values:
                values[name] = float(value)
        return values

    def summary(self) -> dict[str, object]:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return {
            "scrapes": self.scrapes,
            "ok": self.ok,
            "bad": self.bad,
            "last_failure": self.last_failure,
            "slowest_ms": round(self.slowest_ms, 2),
            "bytes": self.bytes,
            "cpu_s": usage.ru_utime + usage.ru_stime,
            "reported": self.reported(),
        }


def run_scraper(url: str, interval: float, required: list[str], report: list[str]) -> int:
    """Scrape every ``interval`` seconds (on a fixed schedule, no drift) until a signal."""
    stopping = False

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, stop)
    scraper = Scraper(url, required, report)
    announced = False
    started = time.monotonic()
    while not stopping:
        if scraper.scrape_once() and not announced:
            print("scraping", flush=True)
            announced = True
        next_at = started + scraper.scrapes * interval
        time.sleep(max(0.0, next_at - time.monotonic()))  # a signal ends it within `interval`
    scraper.scrape_once()  # the last word: the figures as the load left them
    print(json.dumps(scraper.summary()), flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--impl", choices=IMPLS)
    p.add_argument("--port", type=int, default=0, help="port; 0 picks a free one (default)")
    p.add_argument("--scrape", metavar="URL", help="be the scraper of URL instead")
    p.add_argument("--interval", type=float, default=0.1, help="seconds between scrapes (0.1)")
    p.add_argument("--require", action="append", default=[], help="a family each scrape has")
    p.add_argument("--report", action="append", default=[], help="a sample to report at exit")
    args = p.parse_args(argv)
    if args.scrape:
        return run_scraper(args.scrape, args.interval, args.require, args.report)
    if args.impl is None:
        p.error("--impl or --scrape is required")
    return run_server(args.impl, args.port)


if __name__ == "__main__":
    sys.exit(main())
