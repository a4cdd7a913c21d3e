"""runtime.testing: helpers for testing code built on the runtime.

``mock_service()`` returns a Service and a handle that scripts it (tower-test's ``mock``): take
the next request, respond, fail, allow N calls, or hold readiness.

``MemoryListener`` and ``memory_connection_pair()`` are an in-memory transport that implements
``runtime.net.abc``: a Server serves it exactly as it serves TCP.

``Sim`` (from :mod:`runtime.testing.sim`) is a deterministic simulated network of hosts, links
and faults under the production code; the pytest plugin (``runtime.testing.pytest_plugin``)
gives the ``sim`` and ``mock_runtime`` fixtures and ``--sim-seeds``.
"""

from __future__ import annotations

from ._memory_net import MemoryConnection as MemoryConnection
from ._memory_net import MemoryListener as MemoryListener
from ._memory_net import memory_connection_pair as memory_connection_pair
from ._mock_service import MockHandle as MockHandle
from ._mock_service import MockRequest as MockRequest
from ._mock_service import MockService as MockService
from ._mock_service import MockStatistics as MockStatistics
from ._mock_service import mock_service as mock_service
from .sim import Host as Host
from .sim import LinkConfig as LinkConfig
from .sim import Sim as Sim

__all__ = [
    "Host",
    "LinkConfig",
    "MemoryConnection",
    "MemoryListener",
    "MockHandle",
    "MockRequest",
    "MockService",
    "MockStatistics",
    "Sim",
    "memory_connection_pair",
    "mock_service",
]
