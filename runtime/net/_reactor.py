"""The reactor: sockets registered once, edge-triggered, woken without an extra hop.

Trio waits for a socket with ``EPOLLONESHOT``: every wait re-arms the socket with an
``epoll_ctl`` call, and every ``send_all``/``receive_some`` goes through the scheduler even when
the data is already there. This reactor keeps its own epoll instance, registers each socket
once for ``EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET``, and remembers per socket whether it is
(as far as we know) readable and writable. A stream operation tries the syscall first and parks
only on ``EAGAIN``; with the cooperative budget, an operation that completes at once does not
yield.

**Leader, followers and the driver.** Somebody must wait on the epoll fd. A dedicated driver
task alone would add a hop to every wake-up: Trio wakes the driver, the driver wakes the
connection task one scheduler batch later (a throw-away prototype paid ~40 us p50 for it at one
connection). So a task that has to park while *nobody else is parked* becomes the *leader*: it
waits on the epoll fd itself (``trio.lowlevel.wait_readable``), and when it wakes it drains the
ready list and marks readiness. With one busy connection that connection's own task leads, and
there is no hop at all. A task that parks while others are parked is a *follower*. When the
leader leaves (its socket is ready, it is cancelled, or its socket closes) and followers are
still parked, the reactor's *driver* task (the reactor's service task, idle until then) takes
over the polling and keeps it while followers remain; with many connections the hop is shared
by every connection woken in the same batch. Once nobody is parked the driver goes idle again,
and the next task to park leads. Listening sockets wait through Trio, not here, so an accept
loop never holds the leader role.

**Closing.** ``deregister`` removes the fd from epoll *before* the socket is closed, so a
reused fd number can never deliver a stale event to the wrong task; it wakes the socket's
parked tasks, which then raise ``ClosedResourceError``. If the closing socket's task is the
leader, an eventfd registered in the same epoll wakes it.

Elsewhere than Linux (no ``select.epoll``) :class:`FallbackReactor` keeps the same API over
Trio's own ``wait_readable``/``wait_writable``.
"""

from __future__ import annotations

import os
import select
import socket
from collections.abc import Awaitable
from typing import Any

import attrs
import trio
from trio.lowlevel import Abort, Task, current_task, reschedule, wait_task_rescheduled

from ..rt import Runtime, mark_wait_machinery, try_current

mark_wait_machinery(__file__)  # the task tree shows who waits here, not these frames

READ = 1
WRITE = 2

_EPOLL = hasattr(select, "epoll")
if _EPOLL:
    _EPOLLIN = select.EPOLLIN
    _EPOLLOUT = select.EPOLLOUT
    _EPOLLRDHUP = getattr(select, "EPOLLRDHUP", 0x2000)
    _EPOLLHUP = select.EPOLLHUP
    _EPOLLERR = select.EPOLLERR
    _EPOLLET = select.EPOLLET
    _REGISTER_MASK = _EPOLLIN | _EPOLLOUT | _EPOLLRDHUP | _EPOLLET
    _READ_MASK = _EPOLLIN | _EPOLLRDHUP | _EPOLLHUP | _EPOLLERR
    _HUP_MASK = _EPOLLRDHUP | _EPOLLHUP | _EPOLLERR
    _WRITE_MASK = _EPOLLOUT | _EPOLLHUP | _EPOLLERR


@attrs.frozen
class ReactorStatistics:
    """Counters of one reactor.

    Attributes:
        backend: ``"epoll"`` (edge-triggered fast path) or ``"trio"`` (fallback).
        registered: file descriptors registered now.
        wakeups: times the leader woke from the epoll fd and drained it.
        events: readiness events drained in total.
        events_per_wakeup: ``events / wakeups`` (0 before the first wake-up).
        parked: tasks parked now, waiting for readiness.
    """

    backend: str
    registered: int
    wakeups: int
    events: int
    events_per_wakeup: float
    parked: int


class Registration:
    """One socket in the reactor: its readiness and the tasks parked on it.

    ``readiness`` is a bit set of READ and WRITE. It starts as both (try the syscall first) and
    a stream clears a bit when the syscall says ``EAGAIN``, or READ after a short read while
    ``hup`` is False; the reactor sets it again when epoll reports an edge. Only one task may
    wait per direction (streams enforce that with ``BusyResourceError``).
    """

    __slots__ = ("closed", "fd", "hup", "readiness", "sock", "waiters")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.fd = sock.fileno()
        self.readiness = READ | WRITE
        self.closed = False
        # Set once epoll reports a hang-up or error (sticky). After that a short read no longer
        # proves the socket drained: end-of-stream raises no further edge. The fallback reactor
        # waits level-triggered and leaves it False.
        self.hup = False
        # waiters[READ] / waiters[WRITE]; index 0 unused. A list is cheaper than a dict here.
        self.waiters: list[Task | None] = [None, None, None]


class _Abort:
    """The abort callback of one parked follower (a small object: cheaper than a closure)."""

    __slots__ = ("direction", "reactor", "reg", "task")

    def __init__(
        self, reactor: EpollReactor, reg: Registration, direction: int, task: Task
    ) -> None:
        self.reactor = reactor
        self.reg = reg
        self.direction = direction
        self.task = task

    def __call__(self, _: Any) -> Abort:
        self.reactor._aborted(self.reg, self.direction, self.task)
        return Abort.SUCCEEDED


class EpollReactor:
    """The Linux fast path. See the module docstring for the design."""

    backend = "epoll"

    def __init__(self) -> None:
        self._epoll = select.epoll()
        self._regs: dict[int, Registration] = {}
        self._leader: Task | None = None
        self._leader_reg: Registration | None = None
        self._parked: set[Task] = set()
        self._wake_fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self._epoll.register(self._wake_fd, _EPOLLIN | _EPOLLET)
        self._wakeups = 0
        self._events = 0
        self._closed = False
        self._driver: Task | None = None  # the service task running drive(), once it runs
        self._driver_idle = False  # parked in drive() until followers need a poller

    # -- registration ---------------------------------------------------------------------

    def register(self, sock: socket.socket) -> Registration:
        """Register a non-blocking socket once, edge-triggered, for both directions."""
        if self._closed:
            raise trio.ClosedResourceError("the reactor has been closed (its runtime ended)")
        reg = Registration(sock)
        self._epoll.register(reg.fd, _REGISTER_MASK)
        self._regs[reg.fd] = reg
        return reg

    def deregister(self, reg: Registration) -> None:
        """Remove a socket before it is closed; parked tasks wake with ClosedResourceError.

        Idempotent. Call it *before* ``sock.close()``.
        """
        if reg.closed:
            return
        reg.closed = True
        if self._regs.get(reg.fd) is reg:
            del self._regs[reg.fd]
            try:
                self._epoll.unregister(reg.fd)
            except (OSError, ValueError):  # already closed underneath us
                pass
        for direction in (READ, WRITE):
            task = reg.waiters[direction]
            if task is not None:
                self._wake(reg, direction, task)
        if self._leader_reg is reg:
            os.eventfd_write(self._wake_fd, 1)

    def interrupt(self, reg: Registration, direction: int) -> None:
        """Wake the task parked on ``reg`` in ``direction`` as if the socket became ready.

        The stream then retries its syscall and decides what to do (used to end input at a
        server drain). A no-op if nobody waits.
        """
        reg.readiness |= direction
        task = reg.waiters[direction]
        if task is not None:
            self._wake(reg, direction, task)
        elif self._leader_reg is reg:
            os.eventfd_write(self._wake_fd, 1)

    # -- waiting --------------------------------------------------------------------------

    def park(self, reg: Registration, direction: int) -> Awaitable[object]:
        """Start waiting for ``reg`` in ``direction``; await what it returns.

        The hot path of every stream: it does the bookkeeping at once and hands back the one
        awaitable to park on (Trio's ``wait_task_rescheduled`` as a follower, or the lead
        wait), so a parked stream costs no coroutine frames of the reactor's own. The caller
        re-checks ``reg.readiness`` and ``reg.closed`` afterwards and parks again if needed (a
        wake-up may be spurious: an interrupt, or another task's drain).

        Awaiting the result is a schedule point and a cancellation point; a cancelled wait
        has consumed nothing.

        Raises:
            trio.BusyResourceError: another task is already waiting in this direction.
        """
        if self._leader is None and not self._parked:
            return self._lead(reg)
        waiters = reg.waiters
        if waiters[direction] is not None:
            raise trio.BusyResourceError(
                "another task is already waiting on this socket in the same direction"
            )
        task = current_task()
        waiters[direction] = task
        self._parked.add(task)
        if self._leader is None:
            self._call_driver()
        # Returned, not awaited: the caller awaits it, saving a coroutine frame per park.
        return wait_task_rescheduled(_Abort(self, reg, direction, task))  # noqa: ASYNC105

    async def wait(self, reg: Registration, direction: int) -> None:
        """Park until ``reg`` is ready for ``direction`` (READ or WRITE).

        A schedule point, and a cancellation point: a cancelled wait has consumed nothing.
        (Streams use :meth:`park` directly; this is the convenient form.)

        Raises:
            trio.ClosedResourceError: the socket was deregistered (closed) meanwhile.
            trio.BusyResourceError: another task is already waiting in this direction.
        """
        while not reg.readiness & direction:
            if reg.closed:
                raise trio.ClosedResourceError("the socket was closed while waiting on it")
            await self.park(reg, direction)
        if reg.closed:
            raise trio.ClosedResourceError("the socket was closed while waiting on it")

    async def _lead(self, reg: Registration) -> None:
        self._leader = current_task()
        self._leader_reg = reg
        try:
            await trio.lowlevel.wait_readable(self._epoll)
        finally:
            # Woken, cancelled or closed: drain either way, so no edge is left unread, and
            # hand the polling to the driver if followers remain.
            self._leader = None
            self._leader_reg = None
            self._drain()
            if self._parked:
                self._call_driver()

    def _wake(self, reg: Registration, direction: int, task: Task) -> None:
        reg.waiters[direction] = None
        self._parked.discard(task)
        reschedule(task)

    def _aborted(self, reg: Registration, direction: int, task: Task) -> None:
        if reg.waiters[direction] is task:
            reg.waiters[direction] = None
        self._parked.discard(task)
        if self._leader is None and self._parked:
            self._call_driver()

    def _call_driver(self) -> None:
        """Wake the driver to poll for the parked followers (a no-op if it is not idle)."""
        if self._driver_idle:
            self._driver_idle = False
            assert self._driver is not None
            reschedule(self._driver)

    async def drive(self) -> None:
        """The reactor's service task: polls while followers are parked and nobody leads.

        Runs until cancelled (at the end of the runtime or run that owns the reactor).
        """
        me = self._driver = current_task()

        def abort(_: Any) -> Abort:
            self._driver_idle = False
            return Abort.SUCCEEDED

        woke = 0
        while True:
            # Poll while followers are parked, and also right after a drain that woke several
            # tasks: they are about to park again, and the one that parked first would
            # otherwise lead and hand back at once. After a quiet drain the driver goes idle,
            # so a lone busy connection leads for itself again.
            if self._leader is None and (self._parked or woke > 1):
                self._leader = me
                try:
                    await trio.lowlevel.wait_readable(self._epoll)
                finally:
                    self._leader = None
                    woke = self._drain()
            else:
                self._driver_idle = True
                await wait_task_rescheduled(abort)
                woke = 0

    def _drain(self) -> int:
        """Read epoll's ready list once; mark readiness; wake the followers that can go on.

        Returns how many tasks it woke.
        """
        try:
            events = self._epoll.poll(0)
        except OSError:  # closed at runtime exit
            return 0
        woke = 0
        self._wakeups += 1
        self._events += len(events)
        regs = self._regs
        parked = self._parked
        for fd, mask in events:
            reg = regs.get(fd)
            if reg is None:
                if fd == self._wake_fd:
                    try:
                        os.eventfd_read(self._wake_fd)
                    except BlockingIOError:
                        pass
                continue
            waiters = reg.waiters
            if mask & _HUP_MASK:
                reg.hup = True
            if mask & _READ_MASK:
                reg.readiness |= READ
                task = waiters[READ]
                if task is not None:
                    waiters[READ] = None
                    parked.discard(task)
                    reschedule(task)
                    woke += 1
            if mask & _WRITE_MASK:
                reg.readiness |= WRITE
                task = waiters[WRITE]
                if task is not None:
                    waiters[WRITE] = None
                    parked.discard(task)
                    reschedule(task)
                    woke += 1
        return woke

    # -- lifetime and statistics ----------------------------------------------------------

    def close(self) -> None:
        """Close the epoll instance (at runtime exit). Registered sockets stay open."""
        if not self._closed:
            self._closed = True
            for reg in list(self._regs.values()):
                self.deregister(reg)
            trio.lowlevel.notify_closing(self._epoll)
            self._epoll.close()
            os.close(self._wake_fd)

    def statistics(self) -> ReactorStatistics:
        """Registered fds, wake-ups and events per wake-up."""
        return ReactorStatistics(
            backend=self.backend,
            registered=len(self._regs),
            wakeups=self._wakeups,
            events=self._events,
            events_per_wakeup=self._events / self._wakeups if self._wakeups else 0.0,
            parked=len(self._parked),
        )


class FallbackReactor:
    """The same API over Trio's own waits, for platforms without epoll.

    Readiness is not tracked: every operation tries the syscall and, on ``EAGAIN``, waits with
    ``trio.lowlevel.wait_readable``/``wait_writable``.
    """

    backend = "trio"

    def __init__(self) -> None:
        self._registered = 0
        self._waits = 0
        # The cancel scope around each parked wait, so ``interrupt`` can end it early.
        self._waiting: dict[tuple[Registration, int], trio.CancelScope] = {}

    def register(self, sock: socket.socket) -> Registration:
        """Track a socket; nothing is registered with the OS."""
        self._registered += 1
        return Registration(sock)

    def deregister(self, reg: Registration) -> None:
        """Wake tasks waiting on the socket (they raise ClosedResourceError). Idempotent."""
        if reg.closed:
            return
        reg.closed = True
        self._registered -= 1
        trio.lowlevel.notify_closing(reg.sock)

    def interrupt(self, reg: Registration, direction: int) -> None:
        """Mark ``reg`` ready and wake the task parked on it in ``direction``, if any."""
        reg.readiness |= direction
        scope = self._waiting.get((reg, direction))
        if scope is not None:
            scope.cancel()

    def park(self, reg: Registration, direction: int) -> Awaitable[object]:
        """The wait to await; see :meth:`EpollReactor.park`."""
        return self.wait(reg, direction)

    async def wait(self, reg: Registration, direction: int) -> None:
        """Wait with Trio's own readiness API. See :meth:`EpollReactor.wait`."""
        if reg.closed:
            raise trio.ClosedResourceError("the socket was closed while waiting on it")
        key = (reg, direction)
        if key in self._waiting:
            raise trio.BusyResourceError(
                "another task is already waiting on this socket in the same direction"
            )
        self._waits += 1
        # An interrupt cancels this scope: the wait ends as if the socket became ready and
        # the stream retries its syscall (a plain cancel from outside still propagates).
        with trio.CancelScope() as scope:
            self._waiting[key] = scope
            try:
                if direction == READ:
                    await trio.lowlevel.wait_readable(reg.sock)
                else:
                    await trio.lowlevel.wait_writable(reg.sock)
            finally:
                del self._waiting[key]
        reg.readiness |= direction
        if reg.closed:
            raise trio.ClosedResourceError("the socket was closed while waiting on it")

    def close(self) -> None:
        """Nothing to release."""

    def statistics(self) -> ReactorStatistics:
        """Registered sockets and waits (each wait is one wake-up here)."""
        return ReactorStatistics(
            backend=self.backend,
            registered=self._registered,
            wakeups=self._waits,
            events=self._waits,
            events_per_wakeup=1.0 if self._waits else 0.0,
            parked=0,
        )


Reactor = EpollReactor | FallbackReactor

_run_reactor: trio.lowlevel.RunVar[Reactor] = trio.lowlevel.RunVar("runtime_reactor")
_FORCE_FALLBACK = os.environ.get("TRIO_RUNTIME_REACTOR", "") == "trio"
_SERVICE_KEY = "runtime.net.reactor"


def _new_reactor() -> Reactor:
    if _EPOLL and not _FORCE_FALLBACK:
        return EpollReactor()
    return FallbackReactor()


async def _serve(reactor: Reactor) -> None:
    """The reactor's one service task: its driver, then its closing at exit."""
    try:
        if isinstance(reactor, EpollReactor):
            await reactor.drive()
        else:
            await trio.sleep_forever()
    finally:
        reactor.close()


def _runtime_reactor(rt: Runtime) -> Reactor:
    reactor = _new_reactor()
    rt.start_system_task(_serve, reactor, name=_SERVICE_KEY)
    return reactor


def current_reactor() -> Reactor:
    """The reactor of the running runtime, or of this Trio run outside a runtime.

    Created on first use (a program without sockets never opens an epoll fd). Its epoll fd is
    closed when the runtime, or the run, ends; sockets are never closed by it.
    """
    rt = try_current()
    if rt is not None:
        return rt.service(_SERVICE_KEY, _runtime_reactor)
    try:
        return _run_reactor.get()
    except LookupError:
        reactor = _new_reactor()
        trio.lowlevel.spawn_system_task(_serve, reactor, name=_SERVICE_KEY)
        _run_reactor.set(reactor)
        return reactor


def reactor_statistics() -> ReactorStatistics:
    """Statistics of the current reactor."""
    return current_reactor().statistics()


__all__ = [
    "READ",
    "WRITE",
    "EpollReactor",
    "FallbackReactor",
    "Reactor",
    "ReactorStatistics",
    "Registration",
    "current_reactor",
    "reactor_statistics",
]
