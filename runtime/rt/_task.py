"""Tasks with owners: spawn, JoinHandle, JoinSet and the task registry.

A spawned task is a Trio task in a nursery that something owns: the runtime's task nursery for
``spawn``, the set's own nursery for ``JoinSet.spawn``. So every task is cancelled and awaited
when its owner ends; there is no such thing as a detached task.

Each task has one ``_Task`` record. It is the registry entry while the task runs, the result
cell once it ends, and what a ``JoinHandle`` points at. The wrapper that runs the task holds the
record and only a weak reference to the handle, never the handle itself.

Unobserved failures, with no finalizer involved (a finalizer may run after the runtime ended,
or never). A task that fails is reported at once if someone is awaiting it (they get it) or
if its handle is already gone (nobody ever can). Otherwise it waits in the registry's
``unobserved`` table until it is awaited. Entries whose handle has since been dropped are
reported by a sweep when the table has doubled, so memory stays bounded, and every entry left
at the end of the runtime is reported then, in the runtime's own code, while it still runs.
A JoinSet reports its never-joined failures when its block ends.
"""

from __future__ import annotations

import enum
import itertools
import logging
import weakref
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Generator
from contextvars import ContextVar
from types import CoroutineType, TracebackType
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar, TypeVarTuple, Unpack

import attrs
import trio

from . import _scope

if TYPE_CHECKING:
    from typing import Self

T = TypeVar("T")
PosArgT = TypeVarTuple("PosArgT")

logger = logging.getLogger("runtime.task")

_ids = itertools.count(1)
_current_task: ContextVar[_Task | None] = ContextVar("runtime_current_task", default=None)
current_registry: ContextVar[_Registry | None] = ContextVar("runtime_registry", default=None)
"""The registry of the runtime running here (set by the runtime; a JoinSet reads it)."""


class TaskState(enum.Enum):
    """Where a task is in its life."""

    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


@attrs.frozen
class TaskInfo:
    """A snapshot of one task, as the registry saw it."""

    id: int
    name: str
    parent_id: int | None
    state: TaskState
    started_at: float
    ended_at: float | None

    @property
    def age(self) -> float:
        """Seconds since the task started, by Trio's clock (its run time once it ended)."""
        end = self.ended_at if self.ended_at is not None else trio.current_time()
        return end - self.started_at


class JoinError(Exception):
    """Awaiting a task that did not produce a value of its own.

    Raised when the task was cancelled (``cancelled`` is True), by ``abort()`` or by the end
    of its owner. A task that raised re-raises its own exception instead, unwrapped.
    """

    def __init__(self, message: str, *, task_id: int, name: str, cancelled: bool) -> None:
        super().__init__(message)
        self.task_id = task_id
        self.name = name
        self.cancelled = cancelled


class _Task:
    """The record shared by the running task, its handle and the registry."""

    __slots__ = (
        "__weakref__",
        "aborted",
        "ended_at",
        "error",
        "handle",
        "id",
        "joinset",
        "name",
        "observed",
        "parent_id",
        "registry",
        "scope",
        "spawner",
        "started_at",
        "state",
        "trio_task",
        "value",
        "waiters",
    )

    def __init__(self, name: str, registry: _Registry | None) -> None:
        self.id = next(_ids)
        self.name = name
        parent = _current_task.get()
        self.parent_id = parent.id if parent is not None else None
        self.state = _RUNNING
        self.started_at = registry.now() if registry is not None else _now()
        self.ended_at: float | None = None
        self.value: Any = None
        self.error: BaseException | None = None
        self.scope: trio.CancelScope | None = None
        self.trio_task: trio.lowlevel.Task | None = None
        # The Trio task that called spawn: the task tree's parent (until this task ends).
        self.spawner: trio.lowlevel.Task | None = _current_trio_task()
        self.aborted = False
        self.waiters: list[trio.lowlevel.Task] | None = None
        self.handle: Callable[[], JoinHandle[Any] | None] = _no_handle
        self.observed = False
        self.joinset: JoinSet[Any] | None = None
        self.registry = registry
        if registry is not None:
            registry.live[self.id] = self
            registry.spawned += 1

    def info(self) -> TaskInfo:
        return TaskInfo(
            self.id, self.name, self.parent_id, self.state, self.started_at, self.ended_at
        )

    def describe(self) -> str:
        return f"task {self.name!r} (id {self.id})"

    def outcome(self) -> Any:
        """Return the value or raise what awaiting the task should raise; marks it observed."""
        self.observed = True
        if self.state is TaskState.DONE:
            return self.value
        if self.state is TaskState.FAILED:
            assert self.error is not None
            if self.registry is not None:
                self.registry.unobserved.pop(self.id, None)
            raise self.error
        raise JoinError(
            f"{self.describe()} was cancelled before it finished",
            task_id=self.id,
            name=self.name,
            cancelled=True,
        )

    async def join(self) -> Any:
        """Wait for the end (a checkpoint either way), then return or raise the outcome."""
        if self.state is _RUNNING:
            # Park this Trio task until _finish reschedules it: the work of a trio.Event,
            # without its parking lot.
            me = _current_trio_task()
            waiters = self.waiters
            if waiters is None:
                waiters = self.waiters = [me]
            else:
                waiters.append(me)

            def abort(_: Any) -> trio.lowlevel.Abort:
                waiters.remove(me)
                return _ABORT_SUCCEEDED

            await _wait_task_rescheduled(abort)
        else:
            await _checkpoint()
        if self.state is _DONE:
            self.observed = True
            return self.value
        return self.outcome()


_RUNNING = TaskState.RUNNING
_DONE = TaskState.DONE
_checkpoint = trio.lowlevel.checkpoint
_current_trio_task = trio.lowlevel.current_task
_wait_task_rescheduled = trio.lowlevel.wait_task_rescheduled
_reschedule = trio.lowlevel.reschedule
_ABORT_SUCCEEDED = trio.lowlevel.Abort.SUCCEEDED
_now = trio.current_time
_FIRST_SWEEP = 16


def _no_handle() -> None:
    return None


def _task_name(fn: Callable[..., Any], name: str | None) -> str:
    if name is not None:
        return name
    return getattr(fn, "__qualname__", None) or repr(fn)


async def _run_task(task: _Task, coro: Awaitable[Any]) -> None:
    """Run one task and record how it ended. Never lets an ordinary exception escape.

    ``abort()`` needs a cancel scope around this one task. Entering a Trio scope costs about
    as much as starting the task, and most tasks are never aborted, so a task starts without
    one and ``abort()`` splices one in (see :mod:`._scope`). Where splicing is not available,
    a task that can still be aborted (its handle is alive) enters a scope at its start. Either
    way every task is cancelled with its owner at shutdown.
    """
    _current_task.set(task)
    task.trio_task = _current_trio_task()  # for abort() (a scope spliced in) and the tree
    if task.aborted or not (_scope.FAST or (task.handle() is None and task.joinset is None)):
        # Aborted before it first ran, or no splicing available: enter a scope now.
        entered = task.scope = trio.CancelScope()
        if task.aborted:
            entered.cancel()
        _scope.enter(entered)
    error: BaseException | None = None
    try:
        task.value = await coro
    except BaseException as exc:
        error = exc
    swallowed = False
    scope = task.scope
    if scope is not None:
        try:
            swallowed = _scope.exit(scope, error)
        except BaseException as exc:  # Trio's exit replaced the error (misnesting, a group)
            error = exc
    if error is None:
        task.state = _DONE
    elif swallowed:
        task.state = TaskState.CANCELLED  # our own scope caught the cancellation: abort()
    elif isinstance(error, Exception):
        task.error = error
        task.state = TaskState.FAILED
    else:
        # Cancelled from outside (the owner is ending): record it and let Trio see it. Any
        # other BaseException (SystemExit, KeyboardInterrupt, ...) is the task's own outcome,
        # given to awaiters as itself, and also stops the owner, as it would in a nursery.
        if _is_cancellation(error):
            task.state = TaskState.CANCELLED
        else:
            task.error = error
            task.state = TaskState.FAILED
            task.observed = True  # it propagates: nothing to report
        _finish(task)
        raise error
    _finish(task)


def _leaves(error: BaseException) -> list[BaseException]:
    if isinstance(error, BaseExceptionGroup):
        return [leaf for sub in error.exceptions for leaf in _leaves(sub)]
    return [error]


def unwrap_group(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The one exception a group from the runtime's own nurseries stands for, or the group.

    A task's SystemExit reaches its nursery twice (from the task and from whoever awaited
    it), with cancellations around it; that is one exception, raised as itself, as Trio
    raises a KeyboardInterrupt. A group of distinct real errors stays a group.
    """
    leaves = _leaves(group)
    distinct = {id(leaf): leaf for leaf in leaves if not isinstance(leaf, trio.Cancelled)}
    if len(distinct) == 1:
        return next(iter(distinct.values()))
    if not distinct and len(leaves) == 1:
        return leaves[0]
    return group


def _is_cancellation(error: BaseException) -> bool:
    """True for ``trio.Cancelled``, or a group of nothing else."""
    if isinstance(error, BaseExceptionGroup):
        rest = error.split(trio.Cancelled)[1]
        return rest is None
    return isinstance(error, trio.Cancelled)


def _finish(task: _Task) -> None:
    registry = task.registry
    task.ended_at = registry.now() if registry is not None else _now()
    task.scope = None
    task.trio_task = task.spawner = None
    if registry is not None:
        registry.remove(task)
    if task.joinset is not None:
        task.joinset._on_done(task)
    waiters = task.waiters
    if waiters:
        task.waiters = None
        for waiter in waiters:
            _reschedule(waiter)
    elif task.state is TaskState.FAILED and not task.observed and task.joinset is None:
        if registry is None:
            _report_unobserved(task)
        else:
            registry.unobserved_failure(task)


def _abort(task: _Task) -> None:
    """Cancel one task: through its scope, or a scope spliced in now, or at its start."""
    if task.state is not _RUNNING:
        return
    task.aborted = True
    scope = task.scope
    if scope is None:
        trio_task = task.trio_task
        if trio_task is None:
            return  # not started yet: _run_task sees ``aborted`` and starts cancelled
        scope = trio.CancelScope()
        if not _scope.splice(scope, trio_task):
            logger.error(
                "could not abort %s: its cancel scope could not be linked", task.describe()
            )
            return
        task.scope = scope
    scope.cancel()


def _report_unobserved(task: _Task) -> None:
    """A failure that nobody can observe any more: log it, or crash the runtime if asked to."""
    task.observed = True
    error = task.error
    assert error is not None
    registry = task.registry
    if registry is not None and registry.owner is not None:
        registry.owner.unobserved_failure(task.describe(), error)
    else:
        logger.error("%s failed and nobody awaited it", task.describe(), exc_info=error)


class JoinHandle(Generic[T]):
    """The owner's view of a spawned task: await it for its value, or abort it.

    ``await handle`` returns the task's value or re-raises the task's own exception (not
    wrapped in a group). If the task was cancelled it raises :class:`JoinError` with
    ``cancelled=True``. Awaiting is a checkpoint, and may be repeated.

    A ``BaseException`` that is not an ``Exception`` (``SystemExit``, ``KeyboardInterrupt``,
    ``GeneratorExit``) is not a task failure but a request to stop: as in a Trio nursery it
    stops the task's owner (the runtime, or the JoinSet), and ``await handle`` re-raises it
    as itself, so ``sys.exit(3)`` in a task makes ``runtime.run`` raise ``SystemExit(3)``.

    Cancellation: cancelling the *awaiter* does not touch the task; it keeps running and can
    be awaited again. Use :meth:`abort` to cancel the task itself.

    A failure is never lost, and never reported from a finalizer. If the handle is gone when
    the task fails, the failure is logged then. A failure that is kept (the handle is alive)
    but never awaited is logged by the runtime later: soon after the handle is dropped, and at
    the latest when the runtime ends. With ``RuntimeConfig(unhandled="raise")`` the runtime
    raises it instead.
    """

    __slots__ = ("__weakref__", "_task")

    def __init__(self, task: _Task) -> None:
        self._task = task
        task.handle = weakref.ref(self)

    @property
    def id(self) -> int:
        """A process-unique task id."""
        return self._task.id

    @property
    def name(self) -> str:
        """The task's name: the ``name=`` given to spawn, or the function's qualified name."""
        return self._task.name

    def done(self) -> bool:
        """True once the task has ended, whichever way."""
        return self._task.state is not TaskState.RUNNING

    def info(self) -> TaskInfo:
        """A snapshot of the task: id, name, parent, state and times."""
        return self._task.info()

    def abort(self) -> None:
        """Cancel the task. A no-op if it already ended.

        The task sees ``trio.Cancelled`` at its next checkpoint; awaiting the handle then
        raises :class:`JoinError` with ``cancelled=True`` (unless the task finished first).
        """
        _abort(self._task)

    async def join(self) -> T:
        """Wait for the task and return its value; the same as ``await handle``."""
        return await self._task.join()  # type: ignore[no-any-return]

    def __await__(self) -> Generator[Any, None, T]:
        return self._task.join().__await__()

    def __repr__(self) -> str:
        return f"<JoinHandle {self._task.describe()} {self._task.state.value}>"


class TaskOwner(Protocol):
    """What the registry tells the runtime that owns it (the runtime implements it).

    This module knows the runtime only through this protocol, so it imports nothing from
    ``_runtime`` and there is no import cycle.
    """

    def task_ended(self, task: _Task) -> None:
        """A task left the registry (``task.state`` says how it ended)."""

    def unobserved_failure(self, what: str, error: BaseException) -> None:
        """A task failed and nobody can await it any more: log it, or stop the runtime."""


class _Registry:
    """Live tasks by id, plus counters. Finished tasks leave at once, so memory stays flat."""

    __slots__ = (
        "cancelled",
        "completed",
        "failed",
        "live",
        "notify_ends",
        "now",
        "owner",
        "spawned",
        "sweep_at",
        "unobserved",
    )

    def __init__(self, owner: TaskOwner | None) -> None:
        self.owner = owner
        self.notify_ends = False  # the owner sets it when it wants task_ended() (a shutdown)
        # Trio's clock, read without the two wrapper layers of trio.current_time().
        self.now: Callable[[], float] = trio.lowlevel.current_clock().current_time
        self.live: dict[int, _Task] = {}
        self.spawned = 0
        self.completed = 0
        self.failed = 0
        self.cancelled = 0
        # Failed tasks nobody has awaited yet, whose handle was alive when they ended.
        self.unobserved: dict[int, _Task] = {}
        self.sweep_at = _FIRST_SWEEP

    def unobserved_failure(self, task: _Task) -> None:
        """A task failed with nobody awaiting it: report it, or keep it while its handle lives.

        Every so many such failures (as many as are kept, at least 16), the kept ones whose
        handle has been dropped since are reported and forgotten: the table grows only with
        handles that are still alive, at O(1) amortized cost per failure.
        """
        if task.handle() is None:
            _report_unobserved(task)  # nobody can ever await it
        else:
            self.unobserved[task.id] = task
        self.sweep_at -= 1
        if self.sweep_at <= 0:
            for stale in [t for t in self.unobserved.values() if t.handle() is None]:
                del self.unobserved[stale.id]
                _report_unobserved(stale)
            self.sweep_at = max(_FIRST_SWEEP, len(self.unobserved))

    def take_unobserved(self) -> list[_Task]:
        """Every failure still unobserved (at the end of the runtime), oldest first."""
        tasks = list(self.unobserved.values())
        self.unobserved.clear()
        return tasks

    def remove(self, task: _Task) -> None:
        del self.live[task.id]
        state = task.state
        if state is _DONE:
            self.completed += 1
        elif state is TaskState.FAILED:
            self.failed += 1
        else:
            self.cancelled += 1
        if self.notify_ends:
            assert self.owner is not None
            self.owner.task_ended(task)


def _call(fn: Callable[..., Awaitable[Any]], args: tuple[Any, ...], what: str) -> Awaitable[Any]:
    """``fn(*args)``, refused unless it is the call of an async function (as trio does).

    Calling an async function only creates its coroutine, so the body still runs in the task;
    a mistake (a coroutine object, a sync function, wrong arguments) fails here, at once.
    """
    if isinstance(fn, CoroutineType):
        fn.close()  # refused: don't add a "never awaited" warning to the error
        raise TypeError(
            f"{what} expected an async function, got a coroutine object; pass the function "
            f"and its arguments: {what}(fn, *args)"
        )
    coro = fn(*args)
    if type(coro) is not CoroutineType and not isinstance(coro, Awaitable):
        raise TypeError(
            f"{what} expected an async function, got {fn!r}, which returned {coro!r}; pass "
            f"an async function and its arguments: {what}(fn, *args)"
        )
    return coro


def _start(
    nursery: trio.Nursery,
    registry: _Registry | None,
    fn: Callable[..., Awaitable[Any]],
    args: tuple[Any, ...],
    name: str | None,
    what: str = "spawn",
) -> _Task:
    coro = _call(fn, args, what)
    task = _Task(name or _task_name(fn, None), registry)
    nursery.start_soon(_run_task, task, coro, name=task.name)
    return task


@attrs.frozen
class Joined(Generic[T]):
    """One result from :meth:`JoinSet.join_next`: which task, and the value it returned.

    ``join_next()`` returns None only when the set is empty, so a task that returned None
    comes back as ``Joined(..., value=None)`` and a ``while`` loop can't stop early.

    Attributes:
        id: The task's id (``JoinHandle.id``).
        name: The task's name.
        value: What the task returned.
    """

    id: int
    name: str
    value: T

    def unwrap(self) -> T:
        """The value (for symmetry with Tokio's ``Result``; a failure raised already)."""
        return self.value


class JoinSet(Generic[T]):
    """A scope that owns a group of tasks and hands back their results as they finish.

    Use it as ``async with JoinSet() as tasks:``. Leaving the block cancels whatever is still
    running and waits for it. Results come back in completion order from :meth:`join_next`
    or by ``async for``. A task that raised re-raises its own exception from ``join_next``
    (the other tasks keep running); an aborted task raises :class:`JoinError`. A task's
    ``SystemExit`` or ``KeyboardInterrupt`` stops the whole set and leaves the block as
    itself, as does an exception raised in the block (never wrapped in a group).

    Failures still in the set when the block ends (never joined) are logged, never lost.
    """

    def __init__(self) -> None:
        self._nursery: trio.Nursery | None = None
        self._nursery_cm: Any = None
        self._running: dict[int, _Task] = {}
        self._finished: deque[_Task] = deque()
        self._wakeup: trio.Event | None = None
        self._registry: _Registry | None = None

    async def __aenter__(self) -> Self:
        self._registry = current_registry.get()
        self._nursery_cm = trio.open_nursery()
        self._nursery = await self._nursery_cm.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        self.abort_all()
        error: BaseException | None = None
        try:
            return await self._nursery_cm.__aexit__(exc_type, exc, tb)  # type: ignore[no-any-return]
        except BaseExceptionGroup as group:
            error = unwrap_group(group)
            if error is group:
                raise
        finally:
            self._nursery = None
            self._report_leftovers()
        raise error  # one exception, as itself (outside the handler: no chained group)

    def _report_leftovers(self) -> None:
        while self._finished:
            task = self._finished.popleft()
            if task.state is TaskState.FAILED and not task.observed:
                task.joinset = None
                _report_unobserved(task)

    def spawn(
        self,
        fn: Callable[[Unpack[PosArgT]], Awaitable[T]],
        *args: *PosArgT,
        name: str | None = None,
    ) -> JoinHandle[T]:
        """Start ``fn(*args)`` in this set. Returns a handle, which may be ignored.

        Args:
            fn: An async function (not a coroutine object: pass the function and its
                arguments).
            *args: Positional arguments for ``fn``.
            name: A name for the registry and logs; defaults to ``fn``'s qualified name.

        Raises:
            RuntimeError: the set is not open.
            TypeError: ``fn`` is not an async function, or ``fn(*args)`` can't be called.
        """
        if self._nursery is None:
            raise RuntimeError("JoinSet.spawn() needs an open set: use 'async with JoinSet()'")
        task = _start(self._nursery, self._registry, fn, args, name, "JoinSet.spawn")
        task.joinset = self
        self._running[task.id] = task
        return JoinHandle(task)

    def _on_done(self, task: _Task) -> None:
        del self._running[task.id]
        self._finished.append(task)
        if self._wakeup is not None:
            self._wakeup.set()
            self._wakeup = None

    def __len__(self) -> int:
        """Tasks in the set: still running, or finished and not yet joined."""
        return len(self._running) + len(self._finished)

    def is_empty(self) -> bool:
        return not self._running and not self._finished

    def abort_all(self) -> None:
        """Cancel every task still running. Their results then come back as JoinError."""
        for task in list(self._running.values()):
            _abort(task)

    async def join_next(self) -> Joined[T] | None:
        """The next result in completion order, or None only when the set is empty.

        Tokio's ``join_next() -> Option<Result<T>>`` in Python's shape: the value comes back
        wrapped in :class:`Joined` (so a task that returned None is not mistaken for the end),
        and a failure is raised, never returned::

            while (joined := await tasks.join_next()) is not None:
                use(joined.value)

        Returns:
            The task's id, name and value; None when no task is left.

        Raises:
            JoinError: the task was cancelled (``abort()``, ``abort_all()``).
            BaseException: the task's own exception, as itself.

        Cancellation: a cancelled call takes no result; the next call gets it.
        """
        if self._finished:
            await trio.lowlevel.checkpoint()
        while not self._finished:
            if not self._running:
                await trio.lowlevel.checkpoint()
                return None
            if self._wakeup is None:
                self._wakeup = trio.Event()
            await self._wakeup.wait()
        task = self._finished.popleft()
        return Joined(task.id, task.name, task.outcome())

    async def join_all(self) -> list[T]:
        """Wait for every task; return their values in completion order."""
        results: list[T] = []
        while (joined := await self.join_next()) is not None:
            results.append(joined.value)
        return results

    def __aiter__(self) -> AsyncIterator[T]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[T]:
        while (joined := await self.join_next()) is not None:
            yield joined.value


def current_task_id() -> int | None:
    """The id of the runtime task running this code, or None in a task the runtime didn't spawn."""
    task = _current_task.get()
    return task.id if task is not None else None
