"""The ASGI hello apps that benchmarks/asgi.py serves: the same answer as
``benchmarks._http_servers:app`` (the raw ASGI callable), ``GET /`` -> 200 ``Hello, world!``
(text/plain; charset=utf-8, content-length 13), here written with Starlette.

Loaded as ``benchmarks._asgi_apps:starlette_app`` from the repository root (see
``_http_servers.py`` for why never with benchmarks/ on ``sys.path``).
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route


async def hello(request: Request) -> PlainTextResponse:
    return PlainTextResponse("Hello, world!")


starlette_app = Starlette(routes=[Route("/", hello)])
