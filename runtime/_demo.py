"""The demo apps behind ``python -m runtime demo``.

For now: a line-based echo service. Every connection is a task spawned on the runtime, so it is
counted in the registry and drained at shutdown. Hostile input is handled the way every server
here must handle it: lines have a size limit, reads have an idle deadline, and a failure on one
connection is logged and closes only that connection.
"""

from __future__ import annotations

import logging
import sys

import trio

from .rt import RuntimeConfig, current, run, spawn

logger = logging.getLogger("runtime.demo")

MAX_LINE = 64 * 1024
"""Longest line the echo service accepts, in bytes (with its newline)."""

IDLE_TIMEOUT = 60.0
"""Seconds a connection may stay silent before it is closed."""

LINGER_TIMEOUT = 2.0
LINGER_BYTES = 1024 * 1024
"""After rejecting a client, how long and how much of its input to discard before closing."""


def _format_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class _EchoConnection:
    """One client: read lines, echo each one back, close on drain, idle or abuse."""

    def __init__(self, stream: trio.SocketStream, peer: str) -> None:
        self.stream = stream
        self.peer = peer
        self.read_scope: trio.CancelScope | None = None
        self.draining = False

    def drain(self) -> None:
        """Stop reading; lines already received are still echoed."""
        self.draining = True
        if self.read_scope is not None:
            self.read_scope.cancel()

    async def serve(self) -> None:
        buffer = bytearray()
        async with self.stream:
            while not self.draining:
                with trio.CancelScope(deadline=trio.current_time() + IDLE_TIMEOUT) as scope:
                    self.read_scope = scope
                    data = await self.stream.receive_some(16384)
                self.read_scope = None
                if scope.cancelled_caught:
                    if not self.draining:
                        logger.info("%s idle for %ss, closing", self.peer, IDLE_TIMEOUT)
                    return
                if not data:
                    return
                buffer += data
                if not await self._echo_lines(buffer):
                    return

    async def _echo_lines(self, buffer: bytearray) -> bool:
        end = buffer.rfind(b"\n") + 1
        if end:
            await self.stream.send_all(bytes(buffer[:end]))
            del buffer[:end]
        if len(buffer) >= MAX_LINE:
            logger.warning("%s sent a line over %d bytes, closing", self.peer, MAX_LINE)
            await self.stream.send_all(
                b"error: line exceeds %d bytes (MAX_LINE); send shorter lines\n" % MAX_LINE
            )
            await self._lingering_close()
            return False
        return True

    async def _lingering_close(self) -> None:
        """Half-close, then discard what the peer still sends (bounded in bytes and time).

        Closing with unread input makes the kernel send RST, which can destroy the error
        reply before the client reads it. HTTP servers linger for the same reason.
        """
        await self.stream.send_eof()
        discarded = 0
        with trio.move_on_after(LINGER_TIMEOUT):
            while discarded < LINGER_BYTES:
                data = await self.stream.receive_some(16384)
                if not data:
                    return
                discarded += len(data)


def _peer_name(stream: trio.SocketStream) -> str:
    try:
        host, port = stream.socket.getpeername()[:2]
    except OSError:  # reset before we looked: the peer is already gone
        return "<disconnected peer>"
    return _format_address(host, port)


async def _handle(stream: trio.SocketStream, conns: set[_EchoConnection]) -> None:
    conn = _EchoConnection(stream, _peer_name(stream))
    conns.add(conn)
    try:
        await conn.serve()
    except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
        logger.info("%s connection lost: %s", conn.peer, exc)
    finally:
        conns.discard(conn)


async def _accept_loop(listener: trio.SocketListener, conns: set[_EchoConnection]) -> None:
    while True:
        try:
            stream = await listener.accept()
        except trio.ClosedResourceError:
            return
        except OSError as exc:  # EMFILE and friends: back off, keep serving
            logger.error("accept failed: %s; retrying in 100 ms", exc)
            await trio.sleep(0.1)
            continue
        spawn(_handle, stream, conns, name="echo-connection")


async def serve_demo(host: str = "127.0.0.1", port: int = 0) -> None:
    """Serve the demo apps until the runtime shuts down, then drain."""
    rt = current()
    listeners = await trio.open_tcp_listeners(port, host=host)
    conns: set[_EchoConnection] = set()
    sockname = listeners[0].socket.getsockname()
    print(f"listening on tcp://{_format_address(sockname[0], sockname[1])}", flush=True)
    async with trio.open_nursery() as nursery:
        for listener in listeners:
            nursery.start_soon(_accept_loop, listener, conns)
        await rt.shutdown_requested()
        for listener in listeners:
            await listener.aclose()
    logger.info("echo: stopped accepting; draining %d connections", len(conns))
    for conn in list(conns):
        conn.drain()


def run_demo(host: str, port: int, *, grace: float = 10.0) -> int:
    """Run the demo until SIGINT/SIGTERM; return the process exit code."""
    try:
        run(serve_demo, host, port, config=RuntimeConfig(shutdown_grace=grace))
    except OSError as exc:
        print(f"error: cannot serve on {host}:{port}: {exc}", file=sys.stderr)
        return 1
    return 0
