"""runtime.proxy: a Linkerd-style L7 reverse proxy built from the project's own layers.

``python -m runtime proxy --config proxy.toml`` runs it; ``--check`` validates the config and
exits. The config (:func:`load_config`) names listeners, routes (host, path prefix, methods,
timeouts, retries, a concurrency cap) and upstream pools (static endpoints or DNS). Each route
is a stack of this project's Services: LoadShed, ConcurrencyLimit, Timeout, Retry with a
budget, a per-try Timeout, and a p2c PeakEWMA Balance over per-endpoint CircuitBreakers.
"""

from __future__ import annotations

from ._app import ProxyApp as ProxyApp
from ._app import run_proxy as run_proxy
from ._app import serve_proxy as serve_proxy
from ._config import AdminConfig as AdminConfig
from ._config import ConfigError as ConfigError
from ._config import ListenerConfig as ListenerConfig
from ._config import ProxyConfig as ProxyConfig
from ._config import RouteConfig as RouteConfig
from ._config import TlsConfig as TlsConfig
from ._config import UpstreamConfig as UpstreamConfig
from ._config import load_config as load_config
from ._config import parse_config as parse_config
from ._proxy import Proxy as Proxy

__all__ = [
    "AdminConfig",
    "ConfigError",
    "ListenerConfig",
    "Proxy",
    "ProxyApp",
    "ProxyConfig",
    "RouteConfig",
    "TlsConfig",
    "UpstreamConfig",
    "load_config",
    "parse_config",
    "run_proxy",
    "serve_proxy",
]
