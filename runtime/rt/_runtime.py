"""The runtime: one owner for every task, service and shutdown.

Shape of a running runtime::

    open_runtime()
      system nursery        runtime services: signal watcher, grace timer, and whatever
      |                     higher layers start (timer wheel driver, reactor)
      +- task nursery       every spawn()ed task, and the body of ``async with`` (main)

Shutdown runs in two steps. First the *shutdown signal* is set: tasks that wait on
``shutdown_requested()`` start draining. After ``shutdown_grace`` seconds, or at a second
SIGINT, the task nursery is cancelled. When the task nursery is empty, the system nursery is
cancelled, so services outlive every task that may use them.
"""

from __future__ import annotations

import functools
import logging
import math
import signal
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar, TypeVarTuple, Unpack, overload

import attrs
import trio

from . import _coop, _tree
from ._config import RuntimeConfig
from ._task import (
    JoinHandle,
    TaskInfo,
    _Registry,
    _start,
    _Task,
    current_registry,
    unwrap_group,
)
from ._tree import StackFrame, TaskNode

T = TypeVar("T")
PosArgT = TypeVarTuple("PosArgT")
S = TypeVar("S")

logger = logging.getLogger("runtime")

_current_runtime: ContextVar[Runtime | None] = ContextVar("runtime_current", default=None)


class NoRuntimeError(RuntimeError):
    """Raised by :func:`current` (and so by ``spawn``) when no runtime is running here."""


class ShutdownError(Exception):
    """``run(main)`` could not return main's value: the shutdown's final cancel cut main short.

    Raised by :func:`run` when a shutdown (``Runtime.shutdown()``, SIGTERM, the end of
    ``unhandled="raise"``...) cancelled ``main`` before it returned, either when the grace
    ran out or at once (``Runtime.cancel()``). A shutdown started or forced by SIGINT raises
    ``KeyboardInterrupt`` instead, as a Trio or asyncio program would.

    Attributes:
        reason: What started the shutdown (``"SIGTERM"``, ``"requested"``, ...).
        grace: The grace period in force, in seconds.
    """

    def __init__(self, message: str, *, reason: str, grace: float) -> None:
        super().__init__(message)
        self.reason = reason
        self.grace = grace


@attrs.frozen
class RuntimeStatistics:
    """Task counts for one runtime.

    Attributes:
        alive: tasks running now.
        spawned: tasks started since the runtime started.
        completed: tasks that returned a value.
        failed: tasks that raised.
        cancelled: tasks that were cancelled (aborted or cut off by shutdown).
        shutting_down: whether a shutdown has started.
    """

    alive: int
    spawned: int
    completed: int
    failed: int
    cancelled: int
    shutting_down: bool


@attrs.define(eq=False)
class _ShutdownState:
    reason: str
    started_at: float
    alive_at_start: int
    grace: float = 0.0
    deadline: float = math.inf
    hard_stop: str | None = None  # why the final cancel came early (None: the grace ran out)
    interrupted: bool = False  # a SIGINT started or forced the shutdown
    finished_since: int = 0
    cancelled_since: int = 0


class Runtime:
    """The running runtime. Get it with :func:`current`; create it with :func:`open_runtime`.

    It owns the task nursery (``spawn``), the runtime services, the task registry, the
    blocking-thread limiter and the shutdown signal.
    """

    def __init__(self, config: RuntimeConfig) -> None:
        self.config = config
        self._registry = _Registry(self)
        self._blocking_limiter = trio.CapacityLimiter(config.max_blocking_threads)
        self._shutdown_event = trio.Event()
        self._shutdown_callbacks: dict[object, Callable[[], object]] = {}
        self._shutdown: _ShutdownState | None = None
        self._task_nursery: trio.Nursery | None = None
        self._system_nursery: trio.Nursery | None = None
        self._services: dict[object, object] = {}
        self._fatal: BaseException | None = None
        self._shields: dict[trio.CancelScope, None] = {}  # ordered: one cancel order
        self._root_task: trio.lowlevel.Task | None = None  # the task the runtime runs in
        self._started_at = 0.0

    # -- tasks ---------------------------------------------------------------------------

    def spawn(
        self,
        fn: Callable[[Unpack[PosArgT]], Awaitable[T]],
        *args: *PosArgT,
        name: str | None = None,
    ) -> JoinHandle[T]:
        """Start ``fn(*args)`` as a task owned by this runtime. See :func:`runtime.spawn`."""
        nursery = self._task_nursery
        if nursery is None:
            raise NoRuntimeError("this runtime has stopped; it can't spawn new tasks")
        return JoinHandle(_start(nursery, self._registry, fn, args, name))

    def tasks(self) -> list[TaskInfo]:
        """A snapshot of the live tasks, oldest first."""
        return [task.info() for task in self._registry.live.values()]

    def task_tree(self) -> list[TaskNode]:
        """A snapshot of every live task under this runtime, as a tree: depth-first, each
        task after its owner (``TaskNode.parent``), the runtime itself first.

        Spawned tasks hang under the task that spawned them, JoinSet members under the set's
        owner, other Trio tasks (a nursery's, a server's connections) under the task whose
        nursery runs them. It costs a walk of Trio's task tree, done only when called.
        """
        return _tree.task_tree(self)

    def task_stack(self, task_id: int) -> list[StackFrame] | None:
        """The await stack of the live task ``task_id`` (an id from :meth:`task_tree`),
        outermost frame first; None if no such task lives."""
        return _tree.task_stack(self, task_id)

    def statistics(self) -> RuntimeStatistics:
        """Counts of live, spawned, completed, failed and cancelled tasks."""
        reg = self._registry
        return RuntimeStatistics(
            alive=len(reg.live),
            spawned=reg.spawned,
            completed=reg.completed,
            failed=reg.failed,
            cancelled=reg.cancelled,
            shutting_down=self._shutdown is not None,
        )

    def task_ended(self, task: _Task) -> None:
        """Registry callback: count what the shutdown drained and what it cancelled.

        A task its owner aborted (``abort()``, a JoinSet leaving its block) ended by the
        owner's own choice: it counts as drained. "Cancelled" means cut off by the shutdown.
        """
        state = self._shutdown
        if state is not None:
            if task.state.value == "cancelled" and not task.aborted:
                state.cancelled_since += 1
            else:
                state.finished_since += 1

    def unobserved_failure(self, what: str, error: BaseException) -> None:
        """Registry callback: a failure nobody can await. Logged, or fatal with "raise"."""
        if self.config.unhandled == "raise":
            logger.error("%s failed and nobody awaited it; stopping the runtime", what)
            if self._fatal is None:
                self._fatal = error
            self.cancel(reason=f"unhandled failure of {what}")
        else:
            logger.error("%s failed and nobody awaited it", what, exc_info=error)

    def _report_unobserved_at_exit(self) -> None:
        """Every failure kept by a live handle but never awaited: the runtime's last word."""
        for task in self._registry.take_unobserved():
            task.observed = True
            error = task.error
            assert error is not None
            logger.error(
                "%s failed and was never awaited before the runtime ended",
                task.describe(),
                exc_info=error,
            )
            if self.config.unhandled == "raise" and self._fatal is None:
                self._fatal = error

    # -- services ------------------------------------------------------------------------

    def service(self, key: object, factory: Callable[[Runtime], S]) -> S:
        """Get this runtime's instance of a service, creating it on first use.

        Higher layers keep their per-runtime state here (the timer wheel, the reactor)
        without the runtime importing them. ``factory`` may start background tasks with
        :meth:`start_system_task`.
        """
        try:
            return self._services[key]  # type: ignore[return-value]
        except KeyError:
            value = self._services[key] = factory(self)
            return value

    def start_system_task(
        self,
        fn: Callable[[Unpack[PosArgT]], Awaitable[object]],
        *args: *PosArgT,
        name: str | None = None,
    ) -> None:
        """Start a runtime service task. It outlives every spawned task and is cancelled last.

        A service task must not fail; if it does, the runtime stops with its exception.
        """
        if self._system_nursery is None:
            raise NoRuntimeError("this runtime has stopped; it can't start services")
        self._system_nursery.start_soon(fn, *args, name=name)

    # -- shutdown ------------------------------------------------------------------------

    @property
    def is_shutting_down(self) -> bool:
        """True once a shutdown has started."""
        return self._shutdown is not None

    async def shutdown_requested(self) -> None:
        """Wait until a shutdown starts. Use it to drain: stop taking work, finish in-flight."""
        await self._shutdown_event.wait()

    def on_shutdown(self, callback: Callable[[], object]) -> Callable[[], None]:
        """Call ``callback()`` when a shutdown starts; returns a function that unregisters it.

        The synchronous form of :meth:`shutdown_requested`, for something that drains
        (a server stops accepting): it takes effect at once, with no task to schedule, so a
        signal that arrives right after a server printed its listening line still finds
        something draining. Called at most once, in the task that starts the shutdown; an
        exception from it is logged. Registered after the shutdown started, it is called at
        once.
        """
        key = object()
        if self._shutdown is not None:
            self._call_shutdown_callback(callback)
            return lambda: None
        self._shutdown_callbacks[key] = callback
        return lambda: self._shutdown_callbacks.pop(key, None) and None

    def _call_shutdown_callback(self, callback: Callable[[], object]) -> None:
        try:
            callback()
        except Exception:
            logger.exception("shutdown callback %r failed", callback)

    @property
    def shutdown_deadline(self) -> float:
        """Trio clock time of the shutdown's final cancel; ``math.inf`` before a shutdown.

        It is ``start + grace`` once a shutdown has started, and drops to the time of the
        final cancel when that comes early (``cancel()``, a second SIGINT). Work that
        shields itself from the drain should end by then; :meth:`shielded_scope` does it.
        """
        state = self._shutdown
        return math.inf if state is None else state.deadline

    def shutdown(self, grace: float | None = None, *, reason: str = "requested") -> None:
        """Start a graceful shutdown. Returns at once; the runtime ends when tasks are done.

        Args:
            grace: Seconds tasks get to finish before they are cancelled. Defaults to
                ``config.shutdown_grace``. A second call can shorten it, never lengthen it.
            reason: Said in the log line, and in the :class:`ShutdownError` of a main
                that is cut short.
        """
        grace = self.config.shutdown_grace if grace is None else grace
        now = trio.current_time()
        state = self._shutdown
        if state is None:
            state = self._shutdown = _ShutdownState(
                reason, now, len(self._registry.live), grace=grace
            )
            logger.info(
                "shutdown started (%s): %d tasks alive, grace %.3gs",
                reason,
                state.alive_at_start,
                grace,
            )
            self._shutdown_event.set()
            self._registry.notify_ends = True  # count what drains and what is cancelled
            callbacks, self._shutdown_callbacks = self._shutdown_callbacks, {}
            for callback in callbacks.values():
                self._call_shutdown_callback(callback)
        if now + grace < state.deadline:
            state.deadline = now + grace
            state.grace = state.deadline - state.started_at
            if self._task_nursery is not None:
                self._task_nursery.cancel_scope.deadline = state.deadline
            for shield in self._shields:
                shield.deadline = min(shield.deadline, state.deadline)

    def cancel(self, *, reason: str = "Runtime.cancel()") -> None:
        """Cancel every task now, without a grace period.

        Args:
            reason: Why, for the log and for a :class:`ShutdownError`.
        """
        if self._shutdown is None:
            self.shutdown(0.0, reason="cancel")
        state = self._shutdown
        assert state is not None
        if state.hard_stop is None:
            state.hard_stop = reason
        state.deadline = min(state.deadline, trio.current_time())
        if self._task_nursery is not None:
            self._task_nursery.cancel_scope.cancel()
        for shield in self._shields:
            shield.cancel()

    @contextmanager
    def shielded_scope(self) -> Iterator[trio.CancelScope]:
        """A shielded cancel scope that the drain can't cancel, but the final cancel does.

        For work that must go on while its task is being cancelled for the shutdown (a
        lingering close, a goodbye message) but must not outlast it: the scope ends at
        :attr:`shutdown_deadline`, and at once when the final cancel comes early
        (``cancel()``, a second SIGINT). Entered after the final cancel, it is cancelled from
        the start. Outside a shutdown it is an ordinary shield that a later shutdown bounds.

        Yields:
            The scope, entered.

        Cancellation: nothing outside cancels the block, except this runtime's final
        cancel; then the block sees ``trio.Cancelled`` and the scope catches it.
        """
        scope = trio.CancelScope(shield=True, deadline=self.shutdown_deadline)
        state = self._shutdown
        if state is not None and state.hard_stop is not None:
            scope.cancel()
        self._shields[scope] = None
        try:
            with scope:
                yield scope
        finally:
            self._shields.pop(scope, None)

    async def _watch_signals(self, *, task_status: trio.TaskStatus[None]) -> None:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            task_status.started()
            async for signum in signals:
                self._on_signal(signal.Signals(signum))

    def _on_signal(self, sig: signal.Signals) -> None:
        """First signal: drain for the grace, or stop at once if nothing drains. Second SIGINT:
        stop now."""
        first = self._shutdown is None
        if first:
            draining = self._shutdown_event.statistics().tasks_waiting + len(
                self._shutdown_callbacks
            )
            self.shutdown(reason=sig.name)
        state = self._shutdown
        assert state is not None
        if sig == signal.SIGINT:
            state.interrupted = True
        if first and not draining:
            logger.warning(
                "%s: no task waits on shutdown_requested(), so nothing can drain; "
                "cancelling every task now",
                sig.name,
            )
            self.cancel(reason=f"{sig.name} with nothing draining")
        elif not first and sig == signal.SIGINT:
            logger.warning("second SIGINT: cancelling every task now")
            self.cancel(reason="second SIGINT")

    # -- the lifetime ----------------------------------------------------------------------

    @asynccontextmanager
    async def _lifetime(self) -> AsyncIterator[Runtime]:
        """Run this runtime for the body of the block: what :func:`open_runtime` does.

        Opens the system nursery (services, the signal watcher) and inside it the task
        nursery (spawned tasks and the body); on the way out starts the shutdown, waits for
        the tasks, reports failures nobody awaited and stops the services. This runtime is
        current, and its budget in force, until then.

        Cancellation: cancelling the enclosing scope cancels every task and service.
        """
        config = self.config
        previous_budget = _coop.set_budget(config.coop_budget)
        token = _current_runtime.set(self)
        registry_token = current_registry.set(self._registry)
        error: BaseException | None = None
        self._root_task = trio.lowlevel.current_task()
        self._started_at = trio.current_time()
        try:
            async with trio.open_nursery() as system:
                self._system_nursery = system
                if config.handle_signals and threading.current_thread() is threading.main_thread():
                    await system.start(self._watch_signals)
                try:
                    async with trio.open_nursery() as tasks:
                        self._task_nursery = tasks
                        try:
                            yield self
                        except BaseException:
                            if self._shutdown is None:
                                self._shutdown = _ShutdownState("error", trio.current_time(), 0)
                            raise
                        self.shutdown(reason="main returned")
                finally:
                    self._task_nursery = None
                    self._report_unobserved_at_exit()
                    self._log_shutdown_done()
                    system.cancel_scope.cancel()
        except BaseExceptionGroup as group:
            error = unwrap_group(group)
            if error is group:
                raise
        finally:
            self._system_nursery = None
            _current_runtime.reset(token)
            current_registry.reset(registry_token)
            _coop.set_budget(previous_budget)
        if error is not None:
            raise error
        if self._fatal is not None:
            raise self._fatal

    def _cut_short(self) -> BaseException:
        """What ``run()`` raises when main was cancelled by the final cancel."""
        state = self._shutdown
        if state is None:  # pragma: no cover - only the shutdown cancels the task nursery
            return ShutdownError("main was cancelled", reason="unknown", grace=0.0)
        if state.interrupted:
            return KeyboardInterrupt()
        when = (
            f"when its {state.grace:g}s grace ran out"
            if state.hard_stop is None
            else f"at once ({state.hard_stop})"
        )
        return ShutdownError(
            f"main did not finish: the shutdown ({state.reason}) cancelled it {when}. To "
            "exit cleanly, return from main once runtime.current().shutdown_requested() "
            "fires, within RuntimeConfig.shutdown_grace",
            reason=state.reason,
            grace=state.grace,
        )

    def _log_shutdown_done(self) -> None:
        state = self._shutdown
        if state is None:
            return
        elapsed = trio.current_time() - state.started_at
        logger.info(
            "shutdown complete in %.3fs: %d tasks drained, %d tasks cancelled",
            elapsed,
            state.finished_since,
            state.cancelled_since,
        )


def current() -> Runtime:
    """The runtime running this code.

    Raises:
        NoRuntimeError: outside ``runtime.run`` / ``open_runtime``.
    """
    rt = _current_runtime.get()
    if rt is None:
        raise NoRuntimeError(
            "no runtime is running here: start one with runtime.run(main) or "
            "'async with runtime.open_runtime():'"
        )
    return rt


def try_current() -> Runtime | None:
    """The runtime running this code, or None."""
    return _current_runtime.get()


def spawn(
    fn: Callable[[Unpack[PosArgT]], Awaitable[T]],
    *args: *PosArgT,
    name: str | None = None,
) -> JoinHandle[T]:
    """Start ``fn(*args)`` as a task owned by the current runtime.

    The task runs in the runtime's task nursery, so it is cancelled and awaited at shutdown,
    even if nobody keeps the handle. ``await handle`` gives its value or re-raises its own
    exception.

    Args:
        fn: An async function. Not a coroutine object: pass the function and its
            arguments, ``spawn(fn, *args)``, as with Trio's ``start_soon``.
        *args: Positional arguments for ``fn`` (use functools.partial for keywords).
        name: A name for the registry, logs and ``handle.name``; defaults to ``fn``'s
            qualified name.

    Raises:
        NoRuntimeError: outside a runtime.
        TypeError: ``fn`` is not an async function (a coroutine object, a sync function),
            or ``fn(*args)`` can't be called with these arguments. Raised here, at once.
    """
    rt = _current_runtime.get()
    if rt is None or rt._task_nursery is None:
        return current().spawn(fn, *args, name=name)  # raises the right error
    return JoinHandle(_start(rt._task_nursery, rt._registry, fn, args, name))


async def spawn_blocking(fn: Callable[[Unpack[PosArgT]], T], *args: *PosArgT) -> T:
    """Run a blocking function in a worker thread and return its result.

    Threads are capped by ``RuntimeConfig.max_blocking_threads``; callers beyond the cap wait.

    Cancellation: cancelling the caller abandons the *result*, never the thread's work. Python
    can't stop a thread, so the function runs to the end, keeps its thread slot until then,
    and its result or exception is discarded. Don't use it for work that must stop on cancel.
    """
    limiter = current()._blocking_limiter
    return await trio.to_thread.run_sync(fn, *args, limiter=limiter, abandon_on_cancel=True)


@asynccontextmanager
async def open_runtime(config: RuntimeConfig | None = None) -> AsyncIterator[Runtime]:
    """Start a runtime inside a Trio run that already exists.

    The body of the ``async with`` runs as the runtime's main: leaving the block starts a
    graceful shutdown, waits for spawned tasks (up to ``shutdown_grace``), then stops the
    runtime services. An exception from the body cancels every task at once and is
    re-raised as itself, not wrapped in a group.

    Cancellation: cancelling the enclosing scope cancels every task and service.
    """
    async with Runtime(config or RuntimeConfig())._lifetime() as rt:
        yield rt


def run(
    main: Callable[..., Awaitable[T]],
    *args: Any,
    config: RuntimeConfig | None = None,
    clock: trio.abc.Clock | None = None,
) -> T:
    """Start Trio and a runtime, run ``main(*args)``, shut down cleanly, return main's value.

    Args:
        main: The program's async entry point.
        *args: Positional arguments for ``main``.
        config: Runtime settings; the defaults suit a server.
        clock: A Trio clock, e.g. ``trio.testing.MockClock`` for tests.

    If a shutdown starts while main runs (SIGINT, SIGTERM, ``Runtime.shutdown()``), main
    has ``shutdown_grace`` seconds to return; a main that returns in time has its value
    returned as usual. A main that is still running when the final cancel comes is cut
    short, and ``run`` raises instead of returning a value it doesn't have.

    Raises:
        BaseException: whatever ``main`` raised, as itself (not wrapped in a group).
        KeyboardInterrupt: a SIGINT started (or forced) the shutdown and main was cut short;
            raised after the drain, so the interpreter exits with the usual code 130.
        ShutdownError: another shutdown cut main short (SIGTERM, ``Runtime.shutdown()``
            after its grace, ``Runtime.cancel()``).
    """

    async def _root() -> T:
        async with open_runtime(config) as rt:
            return await main(*args)
        # Only reached when the shutdown's final cancel stopped main: no value to return.
        raise rt._cut_short()

    return trio.run(_root, clock=clock)


@overload
def main(fn: Callable[..., Awaitable[T]], /) -> Callable[..., T]: ...
@overload
def main(
    *, config: RuntimeConfig | None = None
) -> Callable[[Callable[..., Awaitable[T]]], Callable[..., T]]: ...
def main(
    fn: Callable[..., Awaitable[T]] | None = None, /, *, config: RuntimeConfig | None = None
) -> Any:
    """Decorator for scripts: ``@runtime.main`` turns ``async def main()`` into a plain function
    that calls :func:`run`. Use ``@runtime.main(config=...)`` to pass settings."""

    def decorate(f: Callable[..., Awaitable[T]]) -> Callable[..., T]:
        @functools.wraps(f)
        def runner(*args: Any) -> T:
            return run(f, *args, config=config)

        return runner

    if fn is not None:
        return decorate(fn)
    return decorate
