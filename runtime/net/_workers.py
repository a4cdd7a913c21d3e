"""Worker processes sharing one port: how a Python server uses every core.

One Python process runs Python code on one core at a time. To use N cores a server runs N
worker processes that each listen on the same port with ``SO_REUSEPORT``; the kernel spreads
new connections across them. This module is the supervisor:

1. It reserves the port: a socket bound with ``SO_REUSEPORT`` but never listening, so a
   port of 0 becomes a real port every worker can bind, and the port stays ours while
   workers restart. (For TCP the kernel hands connections only to *listening* sockets.)
2. It starts N workers (``worker_argv(index, port)`` builds each command line) and waits for
   each to print its ``listening on ...`` line.
3. It prints one ``listening on tcp://HOST:PORT`` line of its own, once all are ready.
4. A worker that exits while the supervisor is not stopping is restarted after a backoff that
   doubles with each quick crash (from ``restart_backoff`` up to ``max_backoff``) and resets
   once a worker has stayed up for ``stable_after`` seconds.
5. SIGINT or SIGTERM to the supervisor is forwarded to every worker as SIGTERM; workers drain
   and exit; the supervisor exits 0 once they have, killing any still alive after ``grace``.
"""

from __future__ import annotations

import logging
import signal
import socket
import subprocess
import sys
from collections.abc import Callable

import attrs
import trio

from ..rt import RuntimeConfig, current, run

logger = logging.getLogger("runtime.net.workers")


@attrs.define(eq=False)
class _Worker:
    index: int
    process: trio.Process | None = None
    pid: int | None = None
    restarts: int = 0


def reserve_port(host: str, port: int) -> socket.socket:
    """Bind (not listen) a ``SO_REUSEPORT`` socket on ``host:port`` and return it.

    Raises:
        OSError: the port is taken by a socket without ``SO_REUSEPORT``, or the platform
            lacks ``SO_REUSEPORT``.
    """
    if not hasattr(socket, "SO_REUSEPORT"):
        raise OSError("SO_REUSEPORT is not available here; run a single worker instead")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
    except BaseException:
        sock.close()
        raise
    return sock


class Supervisor:
    """Runs and restarts the workers. See the module docstring."""

    def __init__(
        self,
        worker_argv: Callable[[int, int], list[str]],
        *,
        workers: int,
        host: str,
        port: int,
        grace: float = 10.0,
        restart_backoff: float = 0.1,
        max_backoff: float = 5.0,
        stable_after: float = 10.0,
        scheme: str = "tcp",
    ) -> None:
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self.worker_argv = worker_argv
        self.workers = [_Worker(i) for i in range(workers)]
        self.host = host
        self.port = port
        self.grace = grace
        self.restart_backoff = restart_backoff
        self.max_backoff = max_backoff
        self.stable_after = stable_after
        self.scheme = scheme
        self._stopping = False

    def pids(self) -> list[int | None]:
        """The current pid of each worker."""
        return [w.pid for w in self.workers]

    async def _start(self, worker: _Worker) -> None:
        argv = self.worker_argv(worker.index, self.port)
        process = await trio.lowlevel.open_process(
            argv, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL
        )
        worker.process = process
        worker.pid = process.pid
        assert process.stdout is not None
        line = b""
        with trio.move_on_after(30):
            while not line.endswith(b"\n"):
                chunk = await process.stdout.receive_some(1)
                if not chunk:
                    break
                line += chunk
        if not line.startswith(b"listening on "):
            raise RuntimeError(
                f"worker {worker.index} (pid {process.pid}) did not start: {line!r}"
            )
        logger.info("worker %d started (pid %d)", worker.index, process.pid)

    async def _watch(self, worker: _Worker) -> None:
        backoff = self.restart_backoff
        while True:
            process = worker.process
            assert process is not None
            started = trio.current_time()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_discard_output, process)
                code = await process.wait()
            if self._stopping:
                return
            if trio.current_time() - started >= self.stable_after:
                backoff = self.restart_backoff
            logger.warning(
                "worker %d (pid %d) exited with %s; restarting in %.2gs",
                worker.index,
                process.pid,
                code,
                backoff,
            )
            await trio.sleep(backoff)
            backoff = min(backoff * 2, self.max_backoff)
            if self._stopping:
                return
            worker.restarts += 1
            await self._start(worker)

    def _signal_all(self, signum: int) -> None:
        for worker in self.workers:
            if worker.process is not None and worker.process.returncode is None:
                worker.process.send_signal(signum)

    async def run(self) -> None:
        """Start the workers, print the listening line, supervise until shutdown."""
        rt = current()
        reservation = reserve_port(self.host, self.port)
        self.port = reservation.getsockname()[1]
        try:
            async with trio.open_nursery() as nursery:
                for worker in self.workers:
                    await self._start(worker)
                host = f"[{self.host}]" if ":" in self.host else self.host
                print(f"listening on {self.scheme}://{host}:{self.port}", flush=True)
                for worker in self.workers:
                    nursery.start_soon(self._watch, worker)
                await rt.shutdown_requested()
                self._stopping = True
                logger.info("stopping %d workers (SIGTERM)", len(self.workers))
                self._signal_all(signal.SIGTERM)
                with trio.move_on_after(self.grace + 1) as scope:
                    for worker in self.workers:
                        if worker.process is not None:
                            await worker.process.wait()
                if scope.cancelled_caught:
                    logger.warning("workers still alive after %gs: killing", self.grace)
                    self._signal_all(signal.SIGKILL)
                nursery.cancel_scope.cancel()
        finally:
            reservation.close()
            self._signal_all(signal.SIGKILL)


async def _discard_output(process: trio.Process) -> None:
    if process.stdout is None:
        return
    while await process.stdout.receive_some(4096):
        pass


def run_workers(
    worker_argv: Callable[[int, int], list[str]],
    *,
    workers: int,
    host: str,
    port: int,
    grace: float = 10.0,
    scheme: str = "tcp",
) -> int:
    """Run a supervisor until SIGINT/SIGTERM; returns the exit code (0 after a clean stop).

    ``worker_argv(index, port)`` returns the command line of worker ``index``; the worker
    must bind ``port`` with ``SO_REUSEPORT`` and print its listening line when ready.
    """
    supervisor = Supervisor(
        worker_argv, workers=workers, host=host, port=port, grace=grace, scheme=scheme
    )
    try:
        run(supervisor.run, config=RuntimeConfig(shutdown_grace=grace + 5))
    except OSError as exc:
        print(f"error: cannot serve on {host}:{port}: {exc}", file=sys.stderr)
        return 1
    return 0


def python_worker_argv(script: str, *args: str) -> Callable[[int, int], list[str]]:
    """Worker command lines that re-run ``script`` with the same interpreter.

    The result appends ``--port PORT --reuse-port`` and the extra ``args``.
    """

    def argv(index: int, port: int) -> list[str]:
        return [sys.executable, script, *args, "--port", str(port), "--reuse-port"]

    return argv


__all__ = ["Supervisor", "python_worker_argv", "reserve_port", "run_workers"]
