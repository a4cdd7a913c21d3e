"""trio-runtime: a structured-concurrency networking runtime on Trio.

This module is the front door: the names most programs need, re-exported from the layers
(``runtime.rt``, ``runtime.time``, ``runtime.sync``, ``runtime.net``, ``runtime.io``,
``runtime.service``).
"""

from __future__ import annotations

from .rt import JoinError as JoinError
from .rt import JoinHandle as JoinHandle
from .rt import JoinSet as JoinSet
from .rt import NoRuntimeError as NoRuntimeError
from .rt import Runtime as Runtime
from .rt import RuntimeConfig as RuntimeConfig
from .rt import RuntimeStatistics as RuntimeStatistics
from .rt import TaskInfo as TaskInfo
from .rt import TaskState as TaskState
from .rt import current as current
from .rt import main as main
from .rt import open_runtime as open_runtime
from .rt import run as run
from .rt import spawn as spawn
from .rt import spawn_blocking as spawn_blocking
from .rt import yield_now as yield_now

__version__ = "0.1.0"

__all__ = [
    "JoinError",
    "JoinHandle",
    "JoinSet",
    "NoRuntimeError",
    "Runtime",
    "RuntimeConfig",
    "RuntimeStatistics",
    "TaskInfo",
    "TaskState",
    "current",
    "main",
    "open_runtime",
    "run",
    "spawn",
    "spawn_blocking",
    "yield_now",
]
