"""The machine's own network: :class:`TcpNetwork`, the default Network."""

from __future__ import annotations

import attrs

from ._connect import TcpConnector
from ._listener import TcpListener


@attrs.frozen
class TcpNetwork:
    """Listen and connect with TCP on this machine (a :class:`~runtime.net.abc.Network`).

    Example:
        >>> TcpNetwork().connector(connect_timeout=2.0).connect_timeout
        2.0
    """

    def bind(self, host: str, port: int) -> TcpListener:
        """A :class:`~runtime.net.TcpListener` on ``host:port`` (a literal address)."""
        return TcpListener.bind(host, port)

    def connector(self, *, connect_timeout: float | None) -> TcpConnector:
        """A :class:`~runtime.net.TcpConnector` with this ``connect_timeout``."""
        return TcpConnector(connect_timeout=connect_timeout)


__all__ = ["TcpNetwork"]
