"""runtime.testing: helpers for testing code built on the runtime.

``mock_service()`` returns a Service and a handle that scripts it (tower-test's ``mock``): take
the next request, respond, fail, allow N calls, or hold readiness.
"""

from __future__ import annotations

from ._mock_service import MockHandle as MockHandle
from ._mock_service import MockRequest as MockRequest
from ._mock_service import MockService as MockService
from ._mock_service import MockStatistics as MockStatistics
from ._mock_service import mock_service as mock_service

__all__ = ["MockHandle", "MockRequest", "MockService", "MockStatistics", "mock_service"]
