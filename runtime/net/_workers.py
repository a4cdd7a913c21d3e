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
4. A worker that exits while the supervisor is not stopping, or dies (or stays silent for
   ``ready_timeout``) before its ready line, is restarted after a backoff that doubles with
   each quick crash (from ``restart_backoff`` up to ``max_backoff``) and resets once a worker
   has stayed up for ``stable_after`` seconds.
5. A crash loop has a cap: a worker restarted ``max_restarts`` times within
   ``restart_window`` seconds makes the supervisor give up: it stops the other workers and
   :func:`run_workers` returns 1, so a process manager sees the failure instead of a
   supervisor that spins for ever.
6. SIGINT or SIGTERM to the supervisor is forwarded to every worker as SIGTERM; workers drain
   and exit; the supervisor exits 0 once they have, killing (SIGKILL) any still alive after
   ``grace``.

Nothing a worker does takes the supervisor down: a worker's failure is that worker's, and is
handled by the restart policy above.
"""

from __future__ import annotations

import collections
import logging
import signal
import socket
import subprocess
import sys
from collections.abc import Callable

import attrs
import trio

from ..rt import RuntimeConfig, current, run
from ..time import move_on_after, sleep

logger = logging.getLogger("runtime.net.workers")


class WorkerStartError(RuntimeError):
    """A worker exited, or stayed silent, before printing its ``listening on`` line."""


@attrs.define(eq=False)
class _Worker:
    index: int
    process: trio.Process | None = None
    pid: int | None = None
    restarts: int = 0
    restart_times: collections.deque[float] = attrs.field(factory=collections.deque)


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
    """Runs and restarts the workers. See the module docstring.

    Args:
        worker_argv: ``worker_argv(index, port)`` is worker ``index``'s command line.
        workers: How many worker processes.
        host: The address the workers bind.
        port: The port (0: the supervisor picks one, and every worker gets it).
        grace: Seconds workers get to drain after SIGTERM before SIGKILL. Default 10.
        restart_backoff: First pause before a restart. Default 0.1 s.
        max_backoff: Longest pause; the pause doubles with each quick crash. Default 5 s.
        stable_after: A worker up this long resets its backoff. Default 10 s.
        max_restarts: Restarts of one worker within ``restart_window`` before the supervisor
            gives up. Default 10.
        restart_window: See ``max_restarts``. Default 60 s.
        ready_timeout: Seconds a worker may take to print its ready line. Default 30 s.
        scheme: Used in the supervisor's own ``listening on`` line. Default ``tcp``.

    Attributes:
        gave_up: set when a crash loop hit the restart cap (``run`` then returns early).
    """

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
        max_restarts: int = 10,
        restart_window: float = 60.0,
        ready_timeout: float = 30.0,
        scheme: str = "tcp",
    ) -> None:
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        if max_restarts < 0:
            raise ValueError(f"max_restarts must be >= 0, got {max_restarts}")
        self.worker_argv = worker_argv
        self.workers = [_Worker(i) for i in range(workers)]
        self.host = host
        self.port = port
        self.grace = grace
        self.restart_backoff = restart_backoff
        self.max_backoff = max_backoff
        self.stable_after = stable_after
        self.max_restarts = max_restarts
        self.restart_window = restart_window
        self.ready_timeout = ready_timeout
        self.scheme = scheme
        self.gave_up = False
        self._stopping = False
        self._stop = trio.Event()
        self._changed = trio.Event()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def wait_changed(self) -> None:
        """Wait until something changes: a worker starts, a restart is counted, the
        supervisor gives up or stops. For tests and monitors that watch :meth:`pids` and
        :meth:`restarts` without polling."""
        await self._changed.wait()

    def pids(self) -> list[int | None]:
        """The current pid of each worker."""
        return [w.pid for w in self.workers]

    def restarts(self) -> list[int]:
        """How many times each worker was restarted."""
        return [w.restarts for w in self.workers]

    async def _start(self, worker: _Worker) -> None:
        """Start ``worker`` and wait for its ready line.

        Raises:
            WorkerStartError: it exited or stayed silent first (it is killed then).
        """
        if self._stopping:
            raise WorkerStartError(
                f"worker {worker.index} not started: the supervisor is stopping"
            )
        argv = self.worker_argv(worker.index, self.port)
        process = await trio.lowlevel.open_process(
            argv, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL
        )
        worker.process = process
        worker.pid = process.pid
        if self._stopping:  # the stop began while it was being spawned: it drains too
            process.send_signal(signal.SIGTERM)
        assert process.stdout is not None
        line = b""
        with move_on_after(self.ready_timeout):
            while not line.endswith(b"\n") and len(line) < 4096:
                chunk = await process.stdout.receive_some(1)
                if not chunk:
                    break
                line += chunk
        if not line.startswith(b"listening on "):
            if process.returncode is None:
                process.kill()
            with trio.CancelScope(shield=True):
                code = await process.wait()
            raise WorkerStartError(
                f"worker {worker.index} (pid {process.pid}) did not start "
                f"(exit code {code}, printed {line[:200]!r})"
            )
        logger.info("worker %d started (pid %d)", worker.index, process.pid)
        self._notify()

    async def _start_until_ready(self, worker: _Worker, backoff: float) -> bool:
        """Start ``worker``, retrying under the restart policy. False once it gave up."""
        while True:
            try:
                await self._start(worker)
                return True
            except WorkerStartError as exc:
                logger.warning("%s", exc)
            if not await self._may_restart(worker, backoff):
                return False
            backoff = min(backoff * 2, self.max_backoff)

    async def _may_restart(self, worker: _Worker, backoff: float) -> bool:
        """Apply the cap, then wait out the backoff. False if the supervisor should stop."""
        now = trio.current_time()
        times = worker.restart_times
        while times and now - times[0] > self.restart_window:
            times.popleft()
        if len(times) >= self.max_restarts:
            logger.error(
                "worker %d restarted %d times within %gs; giving up",
                worker.index,
                len(times),
                self.restart_window,
            )
            self.gave_up = True
            self._notify()
            self._stop.set()
            return False
        times.append(now)
        logger.info("restarting worker %d in %.2gs", worker.index, backoff)
        await sleep(backoff)
        if self._stopping:
            return False
        worker.restarts += 1
        self._notify()
        return True

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
            logger.warning("worker %d (pid %d) exited with %s", worker.index, process.pid, code)
            if not await self._may_restart(worker, backoff):
                return
            if not await self._start_until_ready(worker, min(backoff * 2, self.max_backoff)):
                return
            backoff = min(backoff * 2, self.max_backoff)

    def _signal_all(self, signum: int) -> None:
        for worker in self.workers:
            if worker.process is not None and worker.process.returncode is None:
                worker.process.send_signal(signum)

    async def _stop_all(self) -> None:
        """SIGTERM every worker, wait up to ``grace``, then SIGKILL the rest and reap them."""
        self._stopping = True
        logger.info("stopping %d workers (SIGTERM)", len(self.workers))
        self._signal_all(signal.SIGTERM)
        with move_on_after(self.grace) as scope:
            for worker in self.workers:
                if worker.process is not None:
                    await worker.process.wait()
        if scope.cancelled_caught:
            logger.warning("workers still alive after %gs: killing", self.grace)
            self._signal_all(signal.SIGKILL)
        with trio.CancelScope(shield=True):
            for worker in self.workers:
                if worker.process is not None:
                    await worker.process.wait()

    async def _wait_for_stop(self) -> None:
        rt = current()
        async with trio.open_nursery() as nursery:

            async def shutdown() -> None:
                await rt.shutdown_requested()
                self._stop.set()

            nursery.start_soon(shutdown)
            await self._stop.wait()
            nursery.cancel_scope.cancel()

    async def run(self) -> None:
        """Start the workers, print the listening line, supervise until shutdown.

        Returns early, with :attr:`gave_up` set, when a crash loop hits the restart cap.

        Cancellation: cancelling it kills every worker (SIGKILL) and reaps them.
        """
        reservation = reserve_port(self.host, self.port)
        self.port = reservation.getsockname()[1]
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._wait_for_stop)
                for worker in self.workers:
                    if not await self._start_until_ready(worker, self.restart_backoff):
                        break
                else:
                    host = f"[{self.host}]" if ":" in self.host else self.host
                    print(f"listening on {self.scheme}://{host}:{self.port}", flush=True)
                    for worker in self.workers:
                        nursery.start_soon(self._watch, worker)
                await self._stop.wait()
                await self._stop_all()
                nursery.cancel_scope.cancel()
        finally:
            reservation.close()
            self._notify()
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
    max_restarts: int = 10,
    restart_window: float = 60.0,
) -> int:
    """Run a supervisor until SIGINT/SIGTERM; returns the exit code.

    0 after a clean stop; 1 when the port can't be reserved or a crash loop hit the restart
    cap (``max_restarts`` within ``restart_window`` seconds; see :class:`Supervisor`).
    ``worker_argv(index, port)`` returns the command line of worker ``index``; the worker
    must bind ``port`` with ``SO_REUSEPORT`` and print its listening line when ready.
    """
    supervisor = Supervisor(
        worker_argv,
        workers=workers,
        host=host,
        port=port,
        grace=grace,
        scheme=scheme,
        max_restarts=max_restarts,
        restart_window=restart_window,
    )
    try:
        run(supervisor.run, config=RuntimeConfig(shutdown_grace=grace + 5))
    except OSError as exc:
        print(f"error: cannot serve on {host}:{port}: {exc}", file=sys.stderr)
        return 1
    return 1 if supervisor.gave_up else 0


def python_worker_argv(script: str, *args: str) -> Callable[[int, int], list[str]]:
    """Worker command lines that re-run ``script`` with the same interpreter.

    The result appends ``--port PORT --reuse-port`` and the extra ``args``.
    """

    def argv(index: int, port: int) -> list[str]:
        return [sys.executable, script, *args, "--port", str(port), "--reuse-port"]

    return argv


__all__ = [
    "Supervisor",
    "WorkerStartError",
    "python_worker_argv",
    "reserve_port",
    "run_workers",
]
