"""runtime.net: the reactor, streams, listeners, UDP, TLS helpers and the server."""

from __future__ import annotations

from ._listener import SocketListener as SocketListener
from ._listener import TcpListener as TcpListener
from ._listener import UnixListener as UnixListener
from ._listener import open_tcp_listeners as open_tcp_listeners
from ._reactor import ReactorStatistics as ReactorStatistics
from ._reactor import current_reactor as current_reactor
from ._reactor import reactor_statistics as reactor_statistics
from ._stream import SocketStream as SocketStream
from ._stream import TcpStream as TcpStream
from ._stream import UnixStream as UnixStream
from ._tls import client_ssl_context as client_ssl_context
from ._tls import server_ssl_context as server_ssl_context
from ._tls import tls_accept as tls_accept
from ._tls import tls_connect as tls_connect
from ._udp import UdpSocket as UdpSocket

__all__ = [
    "ReactorStatistics",
    "SocketListener",
    "SocketStream",
    "TcpListener",
    "TcpStream",
    "UdpSocket",
    "UnixListener",
    "UnixStream",
    "client_ssl_context",
    "current_reactor",
    "open_tcp_listeners",
    "reactor_statistics",
    "server_ssl_context",
    "tls_accept",
    "tls_connect",
]
