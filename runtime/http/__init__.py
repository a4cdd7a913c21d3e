"""runtime.http: HTTP/1.1 on h11 over the transport seam (work in progress, issue 11).

So far: the values (``Headers``, ``Request``, ``Response``, ``Body``), the limits
(``HttpConfig``) and the ``Router``. The server and client build on these.
"""

from __future__ import annotations

from ._config import HttpConfig as HttpConfig
from ._types import Body as Body
from ._types import BodyTooLarge as BodyTooLarge
from ._types import Headers as Headers
from ._types import Request as Request
from ._types import Response as Response
from .router import Router as Router

__all__ = ["Body", "BodyTooLarge", "Headers", "HttpConfig", "Request", "Response", "Router"]
