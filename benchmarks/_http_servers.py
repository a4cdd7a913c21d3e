"""The peer HTTP servers that benchmarks/http.py compares. Each answers ``GET /`` with 200
``Hello, world!`` (text/plain, content-length 13).

``app`` is a tiny ASGI 3 app for uvicorn and hypercorn, loaded as
``benchmarks._http_servers:app`` from the repository root (never with benchmarks/ on
``sys.path``: there ``http.py``, the benchmark, would shadow the standard library's ``http``
package that uvicorn and hypercorn import).

Run as a script, it is the plain Trio + h11 server, the baseline a user writes by hand from
h11's documentation: ``trio.serve_tcp``, one task per connection, ``receive_some(65536)``,
an ``h11.Connection`` driven by a ``next_event()`` loop, one ``send_all`` per response::

    python -m benchmarks._http_servers --port 0     # prints: listening on http://HOST:PORT

It exits on SIGTERM (trio.run dies of the signal: no drain, like the echo baseline).
"""

from __future__ import annotations

import argparse
import functools
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

BODY = b"Hello, world!"
CONTENT_TYPE = b"text/plain; charset=utf-8"  # the same bytes as our Response.text()

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """ASGI 3: ``Hello, world!`` for every HTTP request; lifespan events are acknowledged."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    headers = [(b"content-type", CONTENT_TYPE), (b"content-length", b"%d" % len(BODY))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": BODY})


# -- plain Trio + h11 --------------------------------------------------------------------------


def serve_trio_h11(host: str, port: int) -> None:
    """Serve ``GET /`` with trio + h11 the straightforward way, until killed."""
    import time
    from wsgiref.handlers import format_date_time

    import h11
    import trio

    def response_bytes(conn: h11.Connection) -> bytes:
        headers = [
            (b"content-type", CONTENT_TYPE),
            (b"content-length", b"%d" % len(BODY)),
            (b"date", format_date_time(time.time()).encode()),
            (b"server", b"trio-h11"),
        ]
        data = conn.send(h11.Response(status_code=200, headers=headers, reason=b"OK")) or b""
        data += conn.send(h11.Data(data=BODY)) or b""
        return data + (conn.send(h11.EndOfMessage()) or b"")

    async def handler(stream: trio.SocketStream) -> None:
        conn = h11.Connection(h11.SERVER)
        try:
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    conn.receive_data(await stream.receive_some(65536))
                elif isinstance(event, h11.EndOfMessage):
                    await stream.send_all(response_bytes(conn))
                    if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                        return
                    conn.start_next_cycle()
                elif isinstance(event, h11.ConnectionClosed):
                    return
                # h11.Request and h11.Data: nothing to do until the request ends
        except h11.RemoteProtocolError:
            return
        except trio.BrokenResourceError:
            return
        finally:
            await stream.aclose()

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            serve = functools.partial(trio.serve_tcp, host=host)
            listeners = await nursery.start(serve, handler, port)
            bound = listeners[0].socket.getsockname()
            print(f"listening on http://{bound[0]}:{bound[1]}", flush=True)

    trio.run(main)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Plain Trio + h11 hello server (a baseline).")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=0, help="port; 0 picks a free one (default)")
    return p.parse_args(argv)


if __name__ == "__main__":
    args = parse_args()
    serve_trio_h11(args.host, args.port)
