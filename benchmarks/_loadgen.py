"""The FALLBACK echo load client for benchmarks/echo.py, used only without a C compiler.

N connections, each sends a message and awaits its echo, on asyncio Protocols (uvloop when
installed). The real client is benchmarks/echo_client.c: a Python client costs about as much
per message as the servers it measures, batches differently, and so changes the ratios
between servers, not only the absolute numbers. benchmarks/echo.py says so when it uses this.
Bounded in time (--duration) and in count (--max-messages).

Prints one JSON object with the native client's keys: messages, msgs_per_s, p50_us, p99_us,
errors, client_cpu_pct, total_messages (warm-up included), client ("python").
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import time


class EchoClient(asyncio.Protocol):
    def __init__(self, payload: bytes, stats: Stats) -> None:
        self.payload = payload
        self.stats = stats
        self.received = 0
        self.sent_at = 0.0
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass
        self.send()

    def send(self) -> None:
        assert self.transport is not None
        self.received = 0
        self.sent_at = time.perf_counter()
        self.transport.write(self.payload)

    def data_received(self, data: bytes) -> None:
        self.received += len(data)
        if self.received >= len(self.payload):
            stats = self.stats
            stats.total += 1
            if stats.recording:
                stats.latencies.append(time.perf_counter() - self.sent_at)
            if stats.running and len(stats.latencies) < stats.max_messages:
                self.send()
            else:
                stats.idle += 1
                if stats.idle == stats.conns:
                    stats.done.set()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.stats.running:
            self.stats.errors += 1
            self.stats.idle += 1
            if self.stats.idle == self.stats.conns:
                self.stats.done.set()


class Stats:
    def __init__(self, conns: int, max_messages: int) -> None:
        self.conns = conns
        self.max_messages = max_messages
        self.latencies: list[float] = []
        self.running = True
        self.recording = False
        self.idle = 0
        self.errors = 0
        self.total = 0
        self.done = asyncio.Event()


async def run(
    host: str, port: int, conns: int, size: int, duration: float, warmup: float, max_messages: int
) -> dict[str, float]:
    loop = asyncio.get_running_loop()
    stats = Stats(conns, max_messages)
    payload = b"x" * size
    transports = []
    for _ in range(conns):
        transport, _ = await loop.create_connection(lambda: EchoClient(payload, stats), host, port)
        transports.append(transport)
    await asyncio.sleep(warmup)
    stats.recording = True
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()
    try:
        await asyncio.wait_for(stats.done.wait(), duration)
    except TimeoutError:
        pass
    stats.running = False
    elapsed = time.perf_counter() - start
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    count = len(stats.latencies)
    lat = sorted(stats.latencies)
    await asyncio.sleep(0.05)
    for t in transports:
        t.close()
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    return {
        "client": "python",
        "msgs_per_s": count / elapsed,
        "p50_us": lat[count // 2] * 1e6 if count else 0.0,
        "p99_us": lat[min(count - 1, int(count * 0.99))] * 1e6 if count else 0.0,
        "messages": count,
        "client_cpu_pct": 100 * cpu / elapsed,
        "errors": stats.errors,
        "total_messages": stats.total,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--conns", type=int, default=64)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--duration", type=float, default=3.0)
    p.add_argument("--warmup", type=float, default=0.5)
    p.add_argument("--max-messages", type=int, default=5_000_000)
    args = p.parse_args()
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:
        runner = asyncio.run
    result = runner(
        run(
            args.host,
            args.port,
            args.conns,
            args.size,
            args.duration,
            args.warmup,
            args.max_messages,
        )
    )
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
