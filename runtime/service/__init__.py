"""runtime.service: Service and Layer, Tower's middleware done the structured way.

A Service is an async callable ``request -> response`` with optional readiness; a Layer wraps
one Service in another; ServiceBuilder stacks layers in reading order. Each middleware lives
in its own module with its layer and errors (``runtime.service.timeout`` holds ``Timeout``,
``TimeoutLayer`` and ``Elapsed``); the names most programs need are re-exported here.
"""

from __future__ import annotations

from ._builder import ServiceBuilder as ServiceBuilder
from ._service import Call as Call
from ._service import Layer as Layer
from ._service import Middleware as Middleware
from ._service import Service as Service
from ._service import layer_fn as layer_fn
from ._service import service_fn as service_fn
from .and_then import AndThen as AndThen
from .and_then import AndThenLayer as AndThenLayer
from .balance import Balance as Balance
from .balance import Load as Load
from .balance import PeakEwma as PeakEwma
from .balance import PendingRequests as PendingRequests
from .balance import open_balance as open_balance
from .buffer import Buffer as Buffer
from .buffer import BufferLayer as BufferLayer
from .buffer import open_buffer as open_buffer
from .circuit_breaker import CircuitBreaker as CircuitBreaker
from .circuit_breaker import CircuitBreakerLayer as CircuitBreakerLayer
from .circuit_breaker import CircuitOpen as CircuitOpen
from .circuit_breaker import CircuitState as CircuitState
from .circuit_breaker import ConsecutiveFailures as ConsecutiveFailures
from .circuit_breaker import FailureRate as FailureRate
from .concurrency_limit import ConcurrencyLimit as ConcurrencyLimit
from .concurrency_limit import ConcurrencyLimitLayer as ConcurrencyLimitLayer
from .concurrency_limit import GlobalConcurrencyLimitLayer as GlobalConcurrencyLimitLayer
from .discover import Discover as Discover
from .discover import DnsDiscover as DnsDiscover
from .discover import Insert as Insert
from .discover import Remove as Remove
from .discover import StaticDiscover as StaticDiscover
from .discover import WatchDiscover as WatchDiscover
from .filter import AsyncFilter as AsyncFilter
from .filter import AsyncFilterLayer as AsyncFilterLayer
from .filter import Filter as Filter
from .filter import FilterLayer as FilterLayer
from .hedge import Hedge as Hedge
from .hedge import HedgeLayer as HedgeLayer
from .load_shed import LoadShed as LoadShed
from .load_shed import LoadShedLayer as LoadShedLayer
from .load_shed import Overloaded as Overloaded
from .map_err import MapErr as MapErr
from .map_err import MapErrLayer as MapErrLayer
from .map_request import MapRequest as MapRequest
from .map_request import MapRequestLayer as MapRequestLayer
from .map_response import MapResponse as MapResponse
from .map_response import MapResponseLayer as MapResponseLayer
from .rate_limit import RateLimit as RateLimit
from .rate_limit import RateLimitLayer as RateLimitLayer
from .retry import TRANSIENT_ERRORS as TRANSIENT_ERRORS
from .retry import Backoff as Backoff
from .retry import Budget as Budget
from .retry import BudgetExhausted as BudgetExhausted
from .retry import Policy as Policy
from .retry import Retry as Retry
from .retry import RetryLayer as RetryLayer
from .retry import RetryOn as RetryOn
from .steer import Steer as Steer
from .timeout import Elapsed as Elapsed
from .timeout import Timeout as Timeout
from .timeout import TimeoutLayer as TimeoutLayer

__all__ = [
    "AndThen",
    "AndThenLayer",
    "AsyncFilter",
    "AsyncFilterLayer",
    "Backoff",
    "Balance",
    "Budget",
    "BudgetExhausted",
    "Buffer",
    "BufferLayer",
    "Call",
    "CircuitBreaker",
    "CircuitBreakerLayer",
    "CircuitOpen",
    "CircuitState",
    "ConcurrencyLimit",
    "ConcurrencyLimitLayer",
    "ConsecutiveFailures",
    "Discover",
    "DnsDiscover",
    "Elapsed",
    "FailureRate",
    "Filter",
    "FilterLayer",
    "GlobalConcurrencyLimitLayer",
    "Hedge",
    "HedgeLayer",
    "Insert",
    "Layer",
    "Load",
    "LoadShed",
    "LoadShedLayer",
    "MapErr",
    "MapErrLayer",
    "MapRequest",
    "MapRequestLayer",
    "MapResponse",
    "MapResponseLayer",
    "Middleware",
    "Overloaded",
    "PeakEwma",
    "PendingRequests",
    "Policy",
    "RateLimit",
    "RateLimitLayer",
    "Remove",
    "Retry",
    "RetryLayer",
    "RetryOn",
    "Service",
    "ServiceBuilder",
    "StaticDiscover",
    "Steer",
    "TRANSIENT_ERRORS",
    "Timeout",
    "TimeoutLayer",
    "WatchDiscover",
    "layer_fn",
    "open_balance",
    "open_buffer",
    "service_fn",
]
