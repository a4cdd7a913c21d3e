"""runtime.admin: the admin endpoint (metrics, health, the task tree) and ``top``.

:func:`serve_admin` serves, on a port of its own, ``/metrics`` (the runtime's Prometheus
registry), ``/live``, ``/ready``, ``/tasks`` (every live task as a tree, since every task has
an owner), ``/tasks/{id}/stack`` and an HTML page of the tree. ``python -m runtime top
--admin HOST:PORT`` is a live terminal view of the same. The runtime's lower layers never
import this package; an application starts it.
"""

from __future__ import annotations

from ._server import AdminServer as AdminServer
from ._server import serve_admin as serve_admin

__all__ = ["AdminServer", "serve_admin"]
