"""runtime.http: HTTP/1.1 on h11 (or httptools) over the transport seam.

The values (``Headers``, ``Request``, ``Response``, ``Body``), the limits (``HttpConfig``),
the server (``serve``, ``HttpServer``: keep-alive, pipelining, streaming bodies both ways,
100-continue, every limit of ``HttpConfig``, a graceful drain), the connection hand-over after a
``101`` or a ``CONNECT`` (``Response.upgrade``, ``UpgradedConnection``), the ``Router`` and the
pooled ``Client``.
"""

from __future__ import annotations

from ._client import Client as Client
from ._client import ClientError as ClientError
from ._client import ClientStatistics as ClientStatistics
from ._client import ClientTimeout as ClientTimeout
from ._client import ConnectError as ConnectError
from ._client import ConnectTimeout as ConnectTimeout
from ._client import PoolTimeout as PoolTimeout
from ._client import ReadTimeout as ReadTimeout
from ._client import RemoteProtocolError as RemoteProtocolError
from ._client import ResponseTooLarge as ResponseTooLarge
from ._client import TooManyRedirects as TooManyRedirects
from ._client import WriteTimeout as WriteTimeout
from ._config import HttpConfig as HttpConfig
from ._server import Handler as Handler
from ._server import HttpServer as HttpServer
from ._server import serve as serve
from ._types import Body as Body
from ._types import BodyTooLarge as BodyTooLarge
from ._types import Headers as Headers
from ._types import Request as Request
from ._types import Response as Response
from ._upgrade import OnUpgrade as OnUpgrade
from ._upgrade import UpgradedConnection as UpgradedConnection
from .asgi import AsgiConfig as AsgiConfig
from .asgi import AsgiService as AsgiService
from .asgi import ClientDisconnected as ClientDisconnected
from .asgi import LifespanFailed as LifespanFailed
from .asgi import OverloadResponse as OverloadResponse
from .asgi import asgi_service as asgi_service
from .asgi import serve_asgi as serve_asgi
from .router import Router as Router
from .websocket import ConnectionClosed as ConnectionClosed
from .websocket import HandshakeError as HandshakeError
from .websocket import WebSocket as WebSocket
from .websocket import WebSocketConfig as WebSocketConfig
from .websocket import WebSocketHandler as WebSocketHandler
from .websocket import websocket_endpoint as websocket_endpoint
from .websocket import ws_connect as ws_connect

__all__ = [
    "AsgiConfig",
    "AsgiService",
    "ClientDisconnected",
    "LifespanFailed",
    "OverloadResponse",
    "asgi_service",
    "serve_asgi",
    "Body",
    "BodyTooLarge",
    "Client",
    "ClientError",
    "ClientStatistics",
    "ClientTimeout",
    "ConnectError",
    "ConnectionClosed",
    "ConnectTimeout",
    "Handler",
    "HandshakeError",
    "Headers",
    "HttpConfig",
    "HttpServer",
    "OnUpgrade",
    "PoolTimeout",
    "ReadTimeout",
    "RemoteProtocolError",
    "Request",
    "Response",
    "ResponseTooLarge",
    "Router",
    "TooManyRedirects",
    "UpgradedConnection",
    "WebSocket",
    "WebSocketConfig",
    "WebSocketHandler",
    "WriteTimeout",
    "serve",
    "websocket_endpoint",
    "ws_connect",
]
