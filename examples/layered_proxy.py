"""A reverse proxy in one screen, stacked from the runtime's own layers.

Run it in front of one or more HTTP servers:
    python examples/http_hello.py --port 9000 &
    python examples/http_hello.py --port 9001 &
    python examples/layered_proxy.py --port 8080 \\
        --upstream 127.0.0.1:9000 --upstream 127.0.0.1:9001

It prints ``listening on http://HOST:PORT``; ``curl http://127.0.0.1:8080/`` then answers
from one of the upstreams. Every request goes down this stack, each piece a Service::

    LoadShed -> ConcurrencyLimit(100) -> Timeout(5 s) -> Retry(GETs, with a Budget)
      -> Balance (p2c over PeakEWMA) -> CircuitBreaker (one per upstream) -> forward

This is what ``python -m runtime proxy`` does too, with a config file, streaming bodies,
header hygiene, metrics and reloads; here the layers are in plain sight. SIGINT or SIGTERM
drains and exits 0.
"""

from __future__ import annotations

import argparse
import functools
import sys

import outcome

import runtime
from runtime.http import Client, ClientError, Request, Response, serve
from runtime.net import TcpListener
from runtime.service import (
    Balance,
    Budget,
    CircuitBreaker,
    Elapsed,
    Overloaded,
    PeakEwma,
    Service,
    ServiceBuilder,
    service_fn,
)


def forward_to(client: Client, origin: str) -> Service[Request, Response]:
    """One upstream: send the request on to ``origin`` and bring its response back."""

    async def forward(request: Request) -> Response:
        headers = [(k, v) for k, v in request.headers.items() if k.lower() != "connection"]
        # Read at most 1 MiB; an empty body (a GET's) reads nothing, so a retry can resend it.
        body = b"" if request.body.length == 0 else await request.body.read(1 << 20)
        return await client.request(
            request.method, origin + request.target, headers=headers, body=body
        )

    return service_fn(forward)


class RetryGets:
    """Retry a GET whose upstream failed to answer (refused, reset, bad framing)."""

    def retry(self, request: Request, result: outcome.Outcome[Response], attempt: int) -> bool:
        failed = isinstance(result, outcome.Error) and isinstance(result.error, ClientError)
        return failed and request.method == "GET" and attempt < 3

    def clone_request(self, request: Request) -> Request | None:
        return request  # a GET's body is empty: the same request can go again


def build(client: Client, upstreams: list[str]) -> Service[Request, Response]:
    balance: Balance[str, Request, Response] = Balance(load=PeakEwma())
    for address in upstreams:
        # Each upstream behind its own breaker: 7 failures in a row take it out for a while.
        balance.insert(address, CircuitBreaker(forward_to(client, f"http://{address}")))
    return (
        ServiceBuilder()
        .load_shed()  # at the limit: refuse at once (503) instead of queueing
        .concurrency_limit(100)
        .timeout(5.0)
        .retry(RetryGets(), budget=Budget())  # at most 20% more load + 10/s
        # LoadShed reserves the stack below it, and a reserved Balance is pinned to the
        # endpoint it chose: a retry would go to the same one. Behind service_fn (always
        # ready, nothing to reserve) every try chooses its endpoint afresh.
        .service(service_fn(balance))
    )


async def proxy(stack: Service[Request, Response], request: Request) -> Response:
    """The handler: the stack's answer, or the error that fits what went wrong."""
    try:
        return await stack(request)
    except Overloaded:
        return Response.text("busy\n", 503, headers=[("retry-after", "1")])
    except Elapsed:
        return Response.text("the upstream took too long\n", 504)
    except Exception as exc:  # the upstream failed, and the retries did not help
        return Response.text(f"bad gateway: {type(exc).__name__}\n", 502)


async def main(args: argparse.Namespace) -> None:
    listener = TcpListener.bind(args.host, args.port)
    async with Client(connect_timeout=1.0, read_timeout=5.0) as client:
        stack = build(client, args.upstream)
        print(f"listening on http://{args.host}:{listener.port}", flush=True)
        await serve(functools.partial(proxy, stack), [listener])


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="A reverse proxy stacked from layers.")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=0, help="port; 0 picks a free one (default)")
    p.add_argument(
        "--upstream", action="append", required=True, help="HOST:PORT of an upstream (repeat)"
    )
    return p.parse_args(argv)


if __name__ == "__main__":
    arguments = parse_args()
    try:
        runtime.run(main, arguments)
    except OSError as exc:
        print(f"error: cannot serve on {arguments.host}:{arguments.port}: {exc}", file=sys.stderr)
        sys.exit(1)
