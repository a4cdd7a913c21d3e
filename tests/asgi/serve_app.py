"""A raw ASGI app that the ``serve`` command tests run in a subprocess (``serve_app:app``).

Routes: ``/`` says hello with the pid (``--workers`` tests count processes), ``/scope`` gives
the scope's ``client``, ``scheme``, ``root_path``, ``path`` and lifespan ``state`` as JSON,
``/slow`` prints ``slow started`` on stdout and waits for the client to leave. With
``ASGI_TEST_FAIL_STARTUP`` set, the lifespan startup fails with that message. The lifespan
shutdown prints ``lifespan shutdown`` on stderr.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                failure = os.environ.get("ASGI_TEST_FAIL_STARTUP")
                if failure:
                    await send({"type": "lifespan.startup.failed", "message": failure})
                    return
                scope["state"]["started_by"] = os.getpid()
                await send({"type": "lifespan.startup.complete"})
            else:
                print("lifespan shutdown", file=sys.stderr, flush=True)
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    if scope["path"].endswith("/slow"):
        print("slow started", flush=True)
        message = await receive()  # the (empty) body
        while message["type"] != "http.disconnect":
            message = await receive()
        return
    if scope["path"].endswith("/scope"):
        keys = ("client", "scheme", "root_path", "path", "server", "state")
        body = json.dumps({key: scope[key] for key in keys}).encode()
    else:
        body = f"hello from {os.getpid()}".encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})
