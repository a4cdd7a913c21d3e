"""The task tree: every live task under the runtime, with its owner, as a snapshot.

The registry knows the tasks spawned through the runtime (``spawn``, ``JoinSet``): their ids,
names, ages and the task that spawned them. Trio knows every task and which nursery it runs
in (``Task.child_nurseries``, ``Nursery.child_tasks``). A snapshot walks Trio's tree from the
runtime's root task and lays the registry's records over it:

* a spawned task hangs under the Trio task that called ``spawn`` while that one lives,
  though Trio runs it in the runtime's own nursery; a JoinSet member under the task that
  owns the set (whose nursery runs it);
* any other Trio task (a plain nursery's child, a server's connection task) hangs under the
  nearest task above it in Trio's tree.

Nothing is recorded on the hot path for this: the walk happens only when someone asks (the
admin endpoint), and plain Trio tasks get their ids then, from a weak table. A layer above
``rt`` can name a kind of task it starts (:func:`describe_task_kind`): the Server marks its
connection tasks ``connection`` and gives each the peer's address as detail.
"""

from __future__ import annotations

import linecache
import os
import weakref
from collections.abc import Callable, Iterator
from types import CodeType, FrameType
from typing import TYPE_CHECKING, Any

import attrs
import outcome
import trio

from ._task import _ids, _Task

if TYPE_CHECKING:
    from ._runtime import Runtime

_plain_ids: weakref.WeakKeyDictionary[trio.lowlevel.Task, int] = weakref.WeakKeyDictionary()
_Detail = Callable[[FrameType], "str | None"]
_kinds: dict[CodeType, tuple[str, _Detail | None, str | None]] = {}
# Frames in these directories and files are the machinery of waiting, not where a task
# waits (startswith: a directory ends with the separator).
_machinery: tuple[str, ...] = tuple(
    os.path.dirname(module.__file__) + os.sep for module in (trio, outcome) if module.__file__
)


_trio_dirs = _machinery


def mark_wait_machinery(filename: str) -> None:
    """Leave the frames of ``filename`` (a module's ``__file__``) out of ``waiting_in``:
    they are how a task waits (a sleep's or a reactor's internals), not where."""
    global _machinery
    if filename not in _machinery:
        _machinery = (*_machinery, filename)


@attrs.frozen
class TaskNode:
    """One live task in :meth:`Runtime.task_tree`.

    Attributes:
        id: Stable while the task lives; a spawned task's is its :class:`JoinHandle` id.
        parent: The owner's id; None for the root (the runtime itself).
        name: The task's name.
        kind: ``root`` (the runtime), ``system`` (the runtime's services), ``task``
            (``spawn``), ``joinset`` (a JoinSet member), ``trio`` (any other Trio task), or a
            kind a higher layer named (the Server's ``connection``).
        state: ``running`` for every live task (ended tasks leave the tree).
        age: Seconds since the task started, by Trio's clock; None where nobody recorded the
            start (plain Trio tasks).
        waiting_in: The innermost function the task is suspended in, outside Trio's own
            machinery; None while it runs.
        detail: A short extra from its kind (a connection's peer), or None.
    """

    id: int
    parent: int | None
    name: str
    kind: str
    state: str
    age: float | None
    waiting_in: str | None
    detail: str | None


@attrs.frozen
class StackFrame:
    """One frame of a task's await stack (:meth:`Runtime.task_stack`)."""

    file: str
    line: int
    function: str
    code: str


def describe_task_kind(
    fn: Callable[..., Any],
    kind: str,
    detail: Callable[[FrameType], str | None] | None = None,
    *,
    name: str | None = None,
) -> None:
    """Mark the Trio tasks that run ``fn`` (an async function) as ``kind`` in the task tree,
    shown as ``name`` (default: the Trio task's name).

    ``detail(frame)`` gets the task's outermost frame (``fn``'s own, its locals included) when
    a snapshot is taken, and returns a short text or None. It runs only then, so it costs the
    task nothing while it runs; it must not fail (an exception is shown as the detail).
    """
    code = getattr(fn, "__code__", None)
    if not isinstance(code, CodeType):
        raise TypeError(f"describe_task_kind needs a Python function, got {fn!r}")
    _kinds[code] = (kind, detail, name)


def _plain_id(task: trio.lowlevel.Task) -> int:
    found = _plain_ids.get(task)
    if found is None:
        found = _plain_ids[task] = next(_ids)
    return found


def _frames(task: trio.lowlevel.Task) -> Iterator[tuple[FrameType, int]]:
    try:
        yield from task.iter_await_frames()
    except RuntimeError:  # pragma: no cover - a coroutine finishing under our feet
        return


def _waiting_in(task: trio.lowlevel.Task) -> str | None:
    """The innermost frame outside the wait machinery; if every frame of ours is machinery
    (a task of the machinery itself: the reactor's driver), the innermost outside Trio."""
    where = fallback = None
    for frame, _ in _frames(task):
        filename = frame.f_code.co_filename
        if not filename.startswith(_machinery):
            where = frame.f_code.co_qualname
        elif not filename.startswith(_trio_dirs):
            fallback = frame.f_code.co_qualname
    return where or fallback


def _plain(task: trio.lowlevel.Task) -> tuple[str, str, str | None]:
    """Kind, name and detail of a task the registry does not know."""
    coro: Any = task.coro
    code = getattr(coro, "cr_code", None)
    known = _kinds.get(code) if code is not None else None
    if known is None:
        return "trio", task.name, None
    kind, describe, name = known
    name = name or task.name
    frame = getattr(coro, "cr_frame", None)
    if describe is None or frame is None:
        return kind, name, None
    try:
        return kind, name, describe(frame)
    except Exception as exc:  # a describer's bug must not break the snapshot
        return kind, name, f"<detail failed: {exc!r}>"


def task_tree(runtime: Runtime) -> list[TaskNode]:
    """The snapshot behind :meth:`Runtime.task_tree` (depth-first, parents first)."""
    root = runtime._root_task
    if root is None:
        return []
    now = trio.current_time()
    live = runtime._registry.live
    spawned: dict[trio.lowlevel.Task, _Task] = {
        t.trio_task: t for t in live.values() if t.trio_task is not None
    }
    system = runtime._system_nursery
    nodes: dict[int, TaskNode] = {}
    order: list[int] = []
    ids: dict[trio.lowlevel.Task, int] = {}
    spawners: dict[int, trio.lowlevel.Task] = {}

    def visit(task: trio.lowlevel.Task, trio_parent: int | None, kind: str | None) -> None:
        record = spawned.get(task)
        if record is not None:
            node_id = record.id
            joinset = record.joinset is not None
            if not joinset and record.spawner is not None:
                spawners[node_id] = record.spawner  # resolved below, once all ids are known
            node = TaskNode(
                node_id,
                trio_parent,  # a JoinSet member's owner is the task whose nursery runs it
                record.name,
                "joinset" if joinset else "task",
                record.state.value,
                now - record.started_at,
                _waiting_in(task),
                None,
            )
        else:
            node_id = _plain_id(task)
            plain_kind, name, detail = _plain(task)
            if kind is not None and plain_kind == "trio":
                plain_kind = kind
            if task is root:
                name = "runtime"
            node = TaskNode(
                node_id, trio_parent, name, plain_kind, "running", None, _waiting_in(task), detail
            )
        nodes[node_id] = node
        ids[task] = node_id
        order.append(node_id)
        for nursery in task.child_nurseries:
            child_kind = "system" if nursery is system else None
            for child in nursery.child_tasks:
                visit(child, node_id, child_kind)

    visit(root, None, "root")
    root_id = order[0]
    nodes[root_id] = attrs.evolve(nodes[root_id], age=now - runtime._started_at)
    for node_id, spawner in spawners.items():
        # A spawned task runs in the runtime's nursery; it hangs under the task that spawned
        # it while that one lives (else under the runtime).
        spawner_id = ids.get(spawner, root_id)
        if spawner_id != node_id:
            nodes[node_id] = attrs.evolve(nodes[node_id], parent=spawner_id)
    children: dict[int | None, list[int]] = {}
    for node_id in order:
        parent = nodes[node_id].parent
        if parent is not None and parent not in nodes:
            parent = root_id  # its owner is not under the runtime's root: show it at the top
            nodes[node_id] = attrs.evolve(nodes[node_id], parent=parent)
        children.setdefault(parent, []).append(node_id)
    result: list[TaskNode] = []
    stack = [root_id]
    while stack:
        node_id = stack.pop()
        result.append(nodes[node_id])
        stack.extend(reversed(children.get(node_id, ())))
    return result


def _find(runtime: Runtime, task_id: int) -> trio.lowlevel.Task | None:
    record = runtime._registry.live.get(task_id)
    if record is not None:
        return record.trio_task
    root = runtime._root_task
    if root is None:
        return None
    todo = [root]
    while todo:
        task = todo.pop()
        if _plain_ids.get(task) == task_id:
            return task
        for nursery in task.child_nurseries:
            todo.extend(nursery.child_tasks)
    return None


def task_stack(runtime: Runtime, task_id: int) -> list[StackFrame] | None:
    """The snapshot behind :meth:`Runtime.task_stack` (outermost frame first)."""
    task = _find(runtime, task_id)
    if task is None:
        return None
    frames = []
    for frame, line in _frames(task):
        code = frame.f_code
        text = linecache.getline(code.co_filename, line).strip()
        frames.append(StackFrame(code.co_filename, line, code.co_qualname, text))
    return frames
