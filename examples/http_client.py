"""An HTTP client on ``runtime.http.Client`` that doubles as a load generator.

One request:
    python examples/http_client.py http://127.0.0.1:8000/
    python examples/http_client.py http://127.0.0.1:8000/items -d '{"name": "tea", "price": 3}'
    python examples/http_client.py http://127.0.0.1:8000/items/1 -X DELETE -H 'X-Trace: 1'

It prints the status line, the response headers, a blank line, the body, and then
``time: 1.234 ms`` (from sending the request to the end of the body; the connection is opened
inside that time). ``--data`` makes the method POST unless ``--method`` says otherwise, and
sends ``Content-Type: application/json`` unless a ``-H`` gives one. The exit status is 0 when a
response came back (whatever its status, as curl without ``-f``), 1 on an error (refused,
timeout, broken response), which is printed on stderr.

Load, with ``--conns``, ``--requests`` or ``--duration``:
    python examples/http_client.py http://127.0.0.1:8000/ --conns 64 --requests 100000
    python examples/http_client.py http://127.0.0.1:8000/ --conns 64 --duration 10

``--conns N`` tasks share one Client whose pool holds N connections to the origin, so each
task keeps one keep-alive connection busy: it sends a request, reads the whole response, and
sends the next. The run stops after ``--requests`` requests in all (default 1000 when no
``--duration`` is given) or after ``--duration`` seconds (default 60 when only a count is
given), whichever comes first, or at SIGINT/SIGTERM; requests in flight then finish (each is
bounded by ``--timeout``). It prints::

    requests: 1000 in 0.250 s over 4 connections: 4000 requests/s
    latency: p50 0.95 ms, p90 1.40 ms, p99 2.10 ms, max 3.05 ms
    status codes: 200 x1000
    non-2xx: 0
    errors: 0

Latencies are those of the requests that got a response, nearest-rank percentiles. An error is
a request that got none (the exception's class names the kind: ``ConnectError x3``). The exit
status is 1 when any request failed. This client is written in Python: it measures the server
only while the server, not the client, is the bottleneck (use wrk or h2load to be sure).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections import Counter
from urllib.parse import urlsplit

import attrs
import trio

import runtime
from runtime.http import Client, ClientError, Headers, Response


@attrs.define
class LoadResult:
    """What a load run saw: latencies of answered requests, statuses, errors by kind."""

    latencies: list[float] = attrs.field(factory=list)
    statuses: Counter[int] = attrs.field(factory=Counter)
    errors: Counter[str] = attrs.field(factory=Counter)
    elapsed: float = 0.0

    @property
    def requests(self) -> int:
        return len(self.latencies) + sum(self.errors.values())

    @property
    def non_2xx(self) -> int:
        return sum(n for status, n in self.statuses.items() if not 200 <= status < 300)


def percentile(sorted_values: list[float], p: float) -> float:
    """The nearest-rank ``p``-th percentile of an ascending list (0.0 for an empty one)."""
    if not sorted_values:
        return 0.0
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def request_headers(args: argparse.Namespace) -> Headers:
    """The ``-H`` headers, plus a JSON content type for ``--data`` unless one is given."""
    headers = Headers()
    for line in args.header:
        name, _, value = line.partition(":")
        headers.add(name.strip(), value.strip())
    if args.data is not None and "content-type" not in headers:
        headers.set("content-type", "application/json")
    return headers


def client_for(args: argparse.Namespace, connections: int) -> Client:
    t = args.timeout
    return Client(
        connect_timeout=t,
        read_timeout=t,
        write_timeout=t,
        pool_timeout=t,
        max_connections_per_origin=connections,
    )


def show(response: Response, seconds: float) -> None:
    print(f"{response.status} {response.reason}")
    for name, value in response.headers.items():
        print(f"{name}: {value}")
    print()
    assert isinstance(response.body, bytes)
    text = response.body.decode("utf-8", errors="replace")
    print(text, end="" if not text or text.endswith("\n") else "\n")
    print(f"time: {seconds * 1e3:.3f} ms", flush=True)


async def one_request(args: argparse.Namespace) -> int:
    """Send one request, print the response and the time; the exit status."""
    body = (args.data or "").encode()
    async with client_for(args, 1) as client:
        start = time.perf_counter()
        try:
            response = await client.request(
                args.method, args.url, headers=request_headers(args), body=body
            )
        except (ClientError, OSError, trio.BrokenResourceError) as exc:
            print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
            return 1
        show(response, time.perf_counter() - start)
    return 0


@attrs.define
class _Plan:
    """The load run's budget: tickets left (None: no count) and the deadline."""

    left: int | None
    deadline: float
    stopped: bool = False

    def stop(self) -> None:
        """No more tickets (at SIGINT/SIGTERM): requests in flight finish, no new ones go."""
        self.stopped = True

    def take(self) -> bool:
        if self.stopped or time.perf_counter() >= self.deadline:
            return False
        if self.left is None:
            return True
        if self.left <= 0:
            return False
        self.left -= 1
        return True


async def _worker(
    client: Client, args: argparse.Namespace, plan: _Plan, result: LoadResult
) -> None:
    headers = request_headers(args)
    body = (args.data or "").encode()
    while plan.take():
        start = time.perf_counter()
        try:
            response = await client.request(args.method, args.url, headers=headers, body=body)
        except (ClientError, OSError, trio.BrokenResourceError) as exc:
            result.errors[type(exc).__name__] += 1
            await trio.lowlevel.checkpoint()  # a refused connect fails fast: let others run
            continue
        result.latencies.append(time.perf_counter() - start)
        result.statuses[response.status] += 1


async def load(args: argparse.Namespace) -> LoadResult:
    """Run the load and return what it saw."""
    result = LoadResult()
    start = time.perf_counter()
    plan = _Plan(args.requests, start + args.duration)
    unregister = runtime.current().on_shutdown(plan.stop)
    try:
        async with client_for(args, args.conns) as client, trio.open_nursery() as nursery:
            for _ in range(args.conns):
                nursery.start_soon(_worker, client, args, plan, result)
    finally:
        unregister()
    result.elapsed = time.perf_counter() - start
    return result


def report(result: LoadResult, conns: int) -> None:
    lat = sorted(result.latencies)
    rate = result.requests / result.elapsed if result.elapsed > 0 else 0.0
    print(
        f"requests: {result.requests} in {result.elapsed:.3f} s over {conns} connections: "
        f"{rate:.0f} requests/s"
    )
    ms = [percentile(lat, p) * 1e3 for p in (50, 90, 99)] + [lat[-1] * 1e3 if lat else 0.0]
    print(
        f"latency: p50 {ms[0]:.2f} ms, p90 {ms[1]:.2f} ms, p99 {ms[2]:.2f} ms, max {ms[3]:.2f} ms"
    )
    codes = ", ".join(f"{s} x{n}" for s, n in sorted(result.statuses.items())) or "none"
    print(f"status codes: {codes}")
    print(f"non-2xx: {result.non_2xx}")
    kinds = ", ".join(f"{kind} x{n}" for kind, n in result.errors.most_common())
    total = sum(result.errors.values())
    print(f"errors: {total}" + (f" ({kinds})" if kinds else ""), flush=True)


async def main(args: argparse.Namespace) -> int:
    if not args.load:
        return await one_request(args)
    result = await load(args)
    report(result, args.conns)
    return 1 if result.errors else 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="HTTP client and load generator on trio-runtime.")
    p.add_argument("url", help="an absolute http:// URL")
    p.add_argument("-X", "--method", help="request method (default GET, or POST with --data)")
    p.add_argument("-d", "--data", help="request body (sent as JSON unless -H says otherwise)")
    p.add_argument("-H", "--header", action="append", default=[], help="'Name: value'; may repeat")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds per wait (default 10)")
    p.add_argument("--conns", type=int, help="load: concurrent connections (default 1)")
    p.add_argument("--requests", type=int, help="load: requests in all, at most")
    p.add_argument("--duration", type=float, help="load: seconds to run, at most")
    args = p.parse_args(argv)
    parts = urlsplit(args.url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        p.error(f"not an absolute http:// URL: {args.url!r}")
    for line in args.header:
        if ":" not in line or not line.partition(":")[0].strip():
            p.error(f"a header is 'Name: value', got {line!r}")
    args.method = (args.method or ("POST" if args.data is not None else "GET")).upper()
    args.load = any(v is not None for v in (args.conns, args.requests, args.duration))
    args.conns = args.conns or 1
    if args.conns < 1 or (args.requests is not None and args.requests < 1):
        p.error("--conns and --requests must be at least 1")
    if args.duration is not None and not args.duration > 0:
        p.error("--duration must be > 0")
    if args.requests is None and args.duration is None:
        args.requests = 1000
    if args.duration is None:
        args.duration = 60.0  # a count alone is bounded in time too
    return args


if __name__ == "__main__":
    args = parse_args()
    try:
        sys.exit(
            runtime.run(main, args, config=runtime.RuntimeConfig(shutdown_grace=args.timeout))
        )
    except KeyboardInterrupt:  # SIGINT during a single request: nothing to report
        sys.exit(130)
