"""trio-runtime: a structured-concurrency networking runtime on Trio.

This module is the front door: the names most programs need, re-exported from the layers.
Each layer is importable on its own for the rest:

* ``runtime.rt``: run, spawn, JoinHandle, JoinSet, the task registry, shutdown;
* ``runtime.time``: the timer wheel, sleep, timeout, Interval, DelayQueue, IdleDeadline;
* ``runtime.sync``: mpsc, oneshot, broadcast and watch channels, Semaphore, Notify, ...;
* ``runtime.io``: codecs and Framed;
* ``runtime.net``: streams, listeners, the server, worker processes;
* ``runtime.service``: Service, Layer, ServiceBuilder and the middleware;
* ``runtime.testing``: the mock service for middleware tests, an in-memory transport.

The layers are attributes (``runtime.time.sleep``) but not part of ``__all__``: ``from runtime
import *`` brings the names above, never a ``time`` or ``io`` that would shadow the stdlib's.
"""

from __future__ import annotations

from . import io as io
from . import net as net
from . import rt as rt
from . import service as service
from . import sync as sync
from . import time as time
from .io import Framed as Framed
from .io import FrameTooLarge as FrameTooLarge
from .io import LengthDelimitedCodec as LengthDelimitedCodec
from .io import LinesCodec as LinesCodec
from .net import ServerConfig as ServerConfig
from .net import TcpListener as TcpListener
from .net import TcpStream as TcpStream
from .net import serve as serve
from .rt import Joined as Joined
from .rt import JoinError as JoinError
from .rt import JoinHandle as JoinHandle
from .rt import JoinSet as JoinSet
from .rt import NoRuntimeError as NoRuntimeError
from .rt import Runtime as Runtime
from .rt import RuntimeConfig as RuntimeConfig
from .rt import RuntimeStatistics as RuntimeStatistics
from .rt import ShutdownError as ShutdownError
from .rt import TaskInfo as TaskInfo
from .rt import TaskState as TaskState
from .rt import current as current
from .rt import main as main
from .rt import open_runtime as open_runtime
from .rt import run as run
from .rt import spawn as spawn
from .rt import spawn_blocking as spawn_blocking
from .rt import yield_now as yield_now
from .service import BudgetExhausted as BudgetExhausted
from .service import CircuitOpen as CircuitOpen
from .service import Layer as Layer
from .service import Overloaded as Overloaded
from .service import Service as Service
from .service import ServiceBuilder as ServiceBuilder
from .service import service_fn as service_fn
from .sync import Barrier as Barrier
from .sync import CancellationToken as CancellationToken
from .sync import Lagged as Lagged
from .sync import Notify as Notify
from .sync import OnceCell as OnceCell
from .sync import RwLock as RwLock
from .sync import Semaphore as Semaphore
from .sync import broadcast as broadcast
from .sync import mpsc as mpsc
from .sync import oneshot as oneshot
from .sync import watch as watch
from .time import DelayQueue as DelayQueue
from .time import Elapsed as Elapsed
from .time import IdleDeadline as IdleDeadline
from .time import Interval as Interval
from .time import MissedTickBehavior as MissedTickBehavior
from .time import move_on_after as move_on_after
from .time import move_on_at as move_on_at
from .time import sleep as sleep
from .time import sleep_until as sleep_until
from .time import timeout as timeout
from .time import timeout_at as timeout_at

__version__ = "0.1.0"

__all__ = [
    "RwLock",
    "OnceCell",
    "Lagged",
    "Barrier",
    "BudgetExhausted",
    "CancellationToken",
    "CircuitOpen",
    "DelayQueue",
    "Elapsed",
    "FrameTooLarge",
    "Framed",
    "IdleDeadline",
    "Interval",
    "JoinError",
    "JoinHandle",
    "JoinSet",
    "Joined",
    "Layer",
    "LengthDelimitedCodec",
    "LinesCodec",
    "MissedTickBehavior",
    "NoRuntimeError",
    "Notify",
    "Overloaded",
    "Runtime",
    "RuntimeConfig",
    "RuntimeStatistics",
    "ShutdownError",
    "Semaphore",
    "ServerConfig",
    "Service",
    "ServiceBuilder",
    "TaskInfo",
    "TaskState",
    "TcpListener",
    "TcpStream",
    "broadcast",
    "current",
    "main",
    "move_on_after",
    "move_on_at",
    "mpsc",
    "oneshot",
    "open_runtime",
    "run",
    "serve",
    "service_fn",
    "sleep",
    "sleep_until",
    "spawn",
    "spawn_blocking",
    "timeout",
    "timeout_at",
    "watch",
    "yield_now",
]
