"""A small Starlette app, served by trio-runtime: notes kept in the lifespan state.

Run it (from the repository root):
    python -m runtime serve examples.asgi_app:app --port 8000

Then:
    curl -s -X PUT http://127.0.0.1:8000/notes/tea -d '{"text": "green, 80 degrees"}'
    curl -s http://127.0.0.1:8000/notes/tea
    curl -s http://127.0.0.1:8000/notes

The routes:

======================  =========================================================
``GET /notes``          200, ``{"notes": [name, ...]}`` in name order
``PUT /notes/NAME``     201, ``{"name": NAME, "text": TEXT}``; the body is JSON
                        ``{"text": TEXT}`` (400 if it is not JSON, 422 if not that)
``GET /notes/NAME``     200, the note; 404 if there is none
``WS /shout``           a WebSocket that answers each text message in capitals
======================  =========================================================

Nothing here knows about trio-runtime: it is plain Starlette, the same file uvicorn or
hypercorn would serve. The notes live in a dict the lifespan makes at startup; Starlette
hands a shallow copy of the lifespan state to every request (``request.state``), so each
request sees the same dict.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
    """Startup: make the store. What is yielded becomes every request's ``request.state``."""
    yield {"notes": {}}


async def list_notes(request: Request) -> JSONResponse:
    return JSONResponse({"notes": sorted(request.state.notes)})


async def put_note(request: Request) -> JSONResponse:
    name = request.path_params["name"]
    try:
        body = await request.json()
    except ValueError:  # not JSON (json.JSONDecodeError), or not UTF-8
        return JSONResponse({"error": "the body is not JSON"}, status_code=400)
    if not isinstance(body, dict) or not isinstance(body.get("text"), str):
        return JSONResponse({"error": 'the body must be {"text": "..."}'}, status_code=422)
    request.state.notes[name] = body["text"]
    return JSONResponse({"name": name, "text": body["text"]}, status_code=201)


async def get_note(request: Request) -> JSONResponse:
    name = request.path_params["name"]
    text = request.state.notes.get(name)
    if text is None:
        return JSONResponse({"error": f"no note called {name!r}"}, status_code=404)
    return JSONResponse({"name": name, "text": text})


async def shout(websocket: WebSocket) -> None:
    await websocket.accept()
    async for text in websocket.iter_text():
        await websocket.send_text(text.upper())


app = Starlette(
    routes=[
        Route("/notes", list_notes),
        Route("/notes/{name}", put_note, methods=["PUT"]),
        Route("/notes/{name}", get_note, methods=["GET"]),
        WebSocketRoute("/shout", shout),
    ],
    lifespan=lifespan,
)
