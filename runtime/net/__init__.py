"""runtime.net: the transport seam, the reactor, streams, listeners, UDP, TLS and the server."""

from __future__ import annotations

from . import abc as abc
from ._connect import TcpConnector as TcpConnector
from ._connect import TlsConnector as TlsConnector
from ._connect import UnixConnector as UnixConnector
from ._listener import RESOURCE_ACCEPT_ERRORS as RESOURCE_ACCEPT_ERRORS
from ._listener import TRANSIENT_ACCEPT_ERRORS as TRANSIENT_ACCEPT_ERRORS
from ._listener import SocketListener as SocketListener
from ._listener import TcpListener as TcpListener
from ._listener import UnixListener as UnixListener
from ._listener import open_tcp_listeners as open_tcp_listeners
from ._network import TcpNetwork as TcpNetwork
from ._reactor import ReactorStatistics as ReactorStatistics
from ._reactor import current_reactor as current_reactor
from ._reactor import reactor_statistics as reactor_statistics
from ._server import BatchListener as BatchListener
from ._server import Server as Server
from ._server import ServerConfig as ServerConfig
from ._server import ServerStatistics as ServerStatistics
from ._server import current_server as current_server
from ._server import is_broken_connection as is_broken_connection
from ._server import serve as serve
from ._server import servers as servers
from ._stream import SocketStream as SocketStream
from ._stream import TcpStream as TcpStream
from ._stream import UnixStream as UnixStream
from ._tls import TlsConnection as TlsConnection
from ._tls import client_ssl_context as client_ssl_context
from ._tls import server_ssl_context as server_ssl_context
from ._tls import tls_accept as tls_accept
from ._tls import tls_connect as tls_connect
from ._tls import tls_handshake as tls_handshake
from ._udp import UdpSocket as UdpSocket
from ._workers import Supervisor as Supervisor
from ._workers import WorkerStartError as WorkerStartError
from ._workers import python_worker_argv as python_worker_argv
from ._workers import reserve_port as reserve_port
from ._workers import run_workers as run_workers
from .abc import Connection as Connection
from .abc import Connector as Connector
from .abc import HalfCloseableConnection as HalfCloseableConnection
from .abc import Listener as Listener
from .abc import Network as Network

__all__ = [
    "RESOURCE_ACCEPT_ERRORS",
    "TRANSIENT_ACCEPT_ERRORS",
    "BatchListener",
    "Connection",
    "Connector",
    "HalfCloseableConnection",
    "Listener",
    "Network",
    "TcpConnector",
    "TcpNetwork",
    "TlsConnection",
    "TlsConnector",
    "UnixConnector",
    "abc",
    "is_broken_connection",
    "tls_handshake",
    "Server",
    "ServerConfig",
    "ServerStatistics",
    "current_server",
    "serve",
    "servers",
    "ReactorStatistics",
    "SocketListener",
    "SocketStream",
    "TcpListener",
    "TcpStream",
    "Supervisor",
    "WorkerStartError",
    "UdpSocket",
    "UnixListener",
    "UnixStream",
    "client_ssl_context",
    "current_reactor",
    "open_tcp_listeners",
    "python_worker_argv",
    "reactor_statistics",
    "reserve_port",
    "run_workers",
    "server_ssl_context",
    "tls_accept",
    "tls_connect",
]
