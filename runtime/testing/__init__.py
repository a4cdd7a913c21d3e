"""runtime.testing: helpers for testing code built on the runtime.

``mock_service()`` returns a Service and a handle that scripts it (tower-test's ``mock``): take
the next request, respond, fail, allow N calls, or hold readiness.

``MemoryListener`` and ``memory_connection_pair()`` are an in-memory transport that implements
``runtime.net.abc``: a Server serves it exactly as it serves TCP.
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

__all__ = [
    "MemoryConnection",
    "MemoryListener",
    "MockHandle",
    "MockRequest",
    "MockService",
    "MockStatistics",
    "memory_connection_pair",
    "mock_service",
]
