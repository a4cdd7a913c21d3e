"""runtime.testing.sim: a deterministic simulated network under the production code.

:class:`Sim` is a world of named hosts joined by links with latency, jitter, bandwidth and
loss, driven by one seeded generator and Trio's clock (run it under
``trio.testing.MockClock(autojump_threshold=0)``). Each :class:`Host` is a
:class:`~runtime.net.abc.Network`: its listeners and connector are what the real Server, HTTP
client and server and proxy take, so they run unchanged. :meth:`Host.udp_bind` gives datagram
sockets (:class:`SimUdpSocket`) on the same links. Faults are steps of the test:
:meth:`Sim.partition`, :meth:`Sim.repair`, :meth:`Sim.kill`, :meth:`Sim.restart`,
:meth:`Sim.slow`. :attr:`Sim.trace` records every delivery and fault; one seed gives one trace.
"""

from __future__ import annotations

from ._datagram import SimUdpSocket as SimUdpSocket
from ._stream import MSS as MSS
from ._stream import RTO as RTO
from ._stream import WINDOW as WINDOW
from ._stream import SimConnection as SimConnection
from ._stream import SimConnector as SimConnector
from ._stream import SimListener as SimListener
from ._world import Host as Host
from ._world import Link as Link
from ._world import LinkConfig as LinkConfig
from ._world import Restarted as Restarted
from ._world import Sim as Sim
from ._world import SimResolver as SimResolver

__all__ = [
    "MSS",
    "RTO",
    "WINDOW",
    "Host",
    "Link",
    "LinkConfig",
    "Restarted",
    "Sim",
    "SimConnection",
    "SimConnector",
    "SimListener",
    "SimResolver",
    "SimUdpSocket",
]
