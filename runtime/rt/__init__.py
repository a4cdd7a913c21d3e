"""runtime.rt: the task model. Run, spawn, join, registry, blocking pool, shutdown."""

from __future__ import annotations

from ._config import RuntimeConfig as RuntimeConfig
from ._coop import consume_budget as consume_budget
from ._coop import try_consume_budget as try_consume_budget
from ._coop import yield_now as yield_now
from ._runtime import NoRuntimeError as NoRuntimeError
from ._runtime import Runtime as Runtime
from ._runtime import RuntimeStatistics as RuntimeStatistics
from ._runtime import ShutdownError as ShutdownError
from ._runtime import current as current
from ._runtime import main as main
from ._runtime import open_runtime as open_runtime
from ._runtime import run as run
from ._runtime import spawn as spawn
from ._runtime import spawn_blocking as spawn_blocking
from ._runtime import try_current as try_current
from ._task import Joined as Joined
from ._task import JoinError as JoinError
from ._task import JoinHandle as JoinHandle
from ._task import JoinSet as JoinSet
from ._task import TaskInfo as TaskInfo
from ._task import TaskState as TaskState
from ._task import current_task_id as current_task_id
from ._tree import StackFrame as StackFrame
from ._tree import TaskNode as TaskNode
from ._tree import describe_task_kind as describe_task_kind
from ._tree import mark_wait_machinery as mark_wait_machinery

__all__ = [
    "JoinError",
    "JoinHandle",
    "JoinSet",
    "Joined",
    "NoRuntimeError",
    "Runtime",
    "RuntimeConfig",
    "RuntimeStatistics",
    "ShutdownError",
    "StackFrame",
    "TaskInfo",
    "TaskNode",
    "TaskState",
    "consume_budget",
    "current",
    "current_task_id",
    "describe_task_kind",
    "main",
    "mark_wait_machinery",
    "open_runtime",
    "run",
    "spawn",
    "spawn_blocking",
    "try_consume_budget",
    "try_current",
    "yield_now",
]
