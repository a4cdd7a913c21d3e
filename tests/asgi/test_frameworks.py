"""Real apps we did not write the frameworks of: Starlette and FastAPI, served by the adapter on
a real loopback socket, driven by httpx and trio-websocket.

The HTTP checks are written once, as plain functions of a synchronous client, and run twice:
against the framework's own in-process ``TestClient`` and against our server over a socket
(``httpx.Client`` in a thread). Both must agree, so what the framework's authors expect of a
server is what ours does. Streaming, background tasks and WebSockets are then checked
against our server alone, where they depend on the server.
"""

from __future__ import annotations

import contextlib
import json
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pydantic
import pytest
import trio
import trio_websocket
from fastapi import BackgroundTasks, FastAPI, WebSocket
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket as StarletteWebSocket

from runtime.http import HttpConfig

from ._support import on_loopback

with warnings.catch_warnings():
    # Starlette 1.x's TestClient would rather run on httpx2; it runs on httpx as well.
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from starlette.testclient import TestClient

# -- the Starlette app ------------------------------------------------------------------------


async def _nothing(name: str) -> None:
    pass


def starlette_app(done: Callable[[str], Awaitable[None]] = _nothing) -> Starlette:
    """Routes, a JSON body, path params, a stream, a background task, a WebSocket, lifespan
    state. ``done(name)`` is called by the background task."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        app.state.started = True
        yield {"greeting": "hello from the lifespan"}

    async def home(request: Request) -> PlainTextResponse:
        return PlainTextResponse(f"home; started={request.app.state.started}")

    async def greeting(request: Request) -> JSONResponse:
        return JSONResponse({"greeting": request.state.greeting})

    async def user(request: Request) -> JSONResponse:
        return JSONResponse(
            {"id": request.path_params["user_id"], "q": dict(request.query_params)}
        )

    async def echo(request: Request) -> JSONResponse:
        data = await request.json()
        return JSONResponse({"got": data, "length": len(await request.body())}, status_code=201)

    async def numbers(request: Request) -> StreamingResponse:
        async def lines() -> AsyncIterator[bytes]:
            for i in range(5):
                yield f"{i}\n".encode()

        return StreamingResponse(lines(), media_type="text/plain")

    async def later(request: Request) -> PlainTextResponse:
        name = request.query_params["name"]
        return PlainTextResponse("queued", background=BackgroundTask(done, name))

    async def ws_echo(websocket: StarletteWebSocket) -> None:
        await websocket.accept()
        async for text in websocket.iter_text():
            await websocket.send_text(f"echo: {text}")

    return Starlette(
        routes=[
            Route("/", home),
            Route("/greeting", greeting),
            Route("/users/{user_id:int}", user),
            Route("/echo", echo, methods=["POST"]),
            Route("/numbers", numbers),
            Route("/later", later),
            WebSocketRoute("/ws", ws_echo),
        ],
        lifespan=lifespan,
    )


# -- the FastAPI app --------------------------------------------------------------------------


class Item(pydantic.BaseModel):
    name: str
    price: float
    tags: list[str] = []


def fastapi_app(done: Callable[[str], Awaitable[None]] = _nothing) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        yield {"items": {}}

    app = FastAPI(lifespan=lifespan)

    @app.get("/")
    async def home() -> dict[str, str]:
        return {"hello": "world"}

    @app.post("/items/{item_id}", status_code=201)
    async def put_item(item_id: int, item: Item, request: Any = None) -> dict[str, Any]:
        return {"id": item_id, "item": item.model_dump()}

    @app.get("/items/{item_id}")
    async def get_item(item_id: int, q: str | None = None) -> dict[str, Any]:
        return {"id": item_id, "q": q}

    @app.get("/numbers")
    async def numbers() -> StreamingResponse:
        async def lines() -> AsyncIterator[str]:
            for i in range(5):
                yield f"{i}\n"

        return StreamingResponse(lines(), media_type="text/plain")

    @app.post("/later")
    async def later(name: str, background_tasks: BackgroundTasks) -> dict[str, str]:
        background_tasks.add_task(done, name)
        return {"status": "queued"}

    @app.websocket("/ws")
    async def ws_echo(websocket: WebSocket) -> None:
        await websocket.accept()
        while True:
            message = await websocket.receive_json()
            if message.get("bye"):
                await websocket.close(code=1000)
                return
            await websocket.send_json({"echo": message})

    return app


# -- checks written once, run through TestClient and through our server ------------------------


def check_starlette(client: httpx.Client) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert response.text == "home; started=True"
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert client.get("/greeting").json() == {"greeting": "hello from the lifespan"}
    assert client.get("/users/42?tab=posts").json() == {"id": 42, "q": {"tab": "posts"}}
    assert client.get("/users/not-a-number").status_code == 404
    body = json.dumps({"a": [1, 2, 3], "b": "ü"}).encode()
    response = client.post("/echo", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 201
    assert response.json() == {"got": {"a": [1, 2, 3], "b": "ü"}, "length": len(body)}
    assert client.get("/numbers").text == "0\n1\n2\n3\n4\n"
    assert client.get("/later?name=x").text == "queued"
    assert client.post("/").status_code == 405
    assert client.get("/nowhere").status_code == 404


def check_fastapi(client: httpx.Client) -> None:
    assert client.get("/").json() == {"hello": "world"}
    response = client.post("/items/7", json={"name": "pen", "price": 1.5})
    assert response.status_code == 201
    assert response.json() == {"id": 7, "item": {"name": "pen", "price": 1.5, "tags": []}}
    response = client.post("/items/7", json={"name": "pen"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "price"]
    assert client.get("/items/3?q=blue").json() == {"id": 3, "q": "blue"}
    assert client.get("/items/three").status_code == 422
    assert client.get("/numbers").text == "0\n1\n2\n3\n4\n"
    assert client.post("/later?name=y").json() == {"status": "queued"}
    assert client.get("/openapi.json").json()["paths"]["/items/{item_id}"]["get"]


CASES = {
    "starlette": (starlette_app, check_starlette),
    "fastapi": (fastapi_app, check_fastapi),
}


@pytest.mark.parametrize("name", list(CASES))
def test_the_checks_pass_under_the_frameworks_own_test_client(name: str) -> None:
    make, check = CASES[name]
    with TestClient(make()) as client:
        check(client)


@pytest.mark.parametrize("name", list(CASES))
async def test_the_same_checks_pass_against_our_server_over_a_socket(name: str) -> None:
    make, check = CASES[name]
    async with on_loopback(make()) as url:

        def run() -> None:
            with httpx.Client(base_url=url) as client:
                check(client)

        await trio.to_thread.run_sync(run)


# -- against our server alone -----------------------------------------------------------------


@pytest.mark.parametrize("name", list(CASES))
async def test_a_streaming_response_arrives_chunk_by_chunk_over_httpx(name: str) -> None:
    make, _ = CASES[name]
    async with (
        on_loopback(make()) as url,
        httpx.AsyncClient(base_url=url) as client,
        client.stream("GET", "/numbers") as response,
    ):
        assert response.headers["transfer-encoding"] == "chunked"
        lines = [line async for line in response.aiter_lines()]
    assert lines == ["0", "1", "2", "3", "4"]


@pytest.mark.parametrize("name", list(CASES))
async def test_a_background_task_runs_after_the_response(name: str) -> None:
    ran: list[str] = []
    finished = trio.Event()

    async def done(task_name: str) -> None:  # async: a sync one would run in a thread
        await trio.lowlevel.checkpoint()
        ran.append(task_name)
        finished.set()

    make, _ = CASES[name]
    method = "GET" if name == "starlette" else "POST"
    async with on_loopback(make(done)) as url, httpx.AsyncClient(base_url=url) as client:
        response = await client.request(method, "/later", params={"name": "report"})
        assert response.status_code == 200
        with trio.fail_after(10):
            await finished.wait()
    assert ran == ["report"]


async def test_a_starlette_websocket_route_echoes_over_trio_websocket() -> None:
    async with on_loopback(starlette_app()) as url:
        ws_url = url.replace("http://", "ws://") + "/ws"
        async with trio_websocket.open_websocket_url(ws_url) as ws:
            for text in ("one", "two", "ü" * 1000):
                await ws.send_message(text)
                assert await ws.get_message() == f"echo: {text}"


async def test_a_fastapi_websocket_route_echoes_json_and_closes_by_itself() -> None:
    async with on_loopback(fastapi_app()) as url:
        ws_url = url.replace("http://", "ws://") + "/ws"
        async with trio_websocket.open_websocket_url(ws_url) as ws:
            await ws.send_message(json.dumps({"n": 1}))
            assert json.loads(await ws.get_message()) == {"echo": {"n": 1}}
            await ws.send_message(json.dumps({"bye": True}))
            with pytest.raises(trio_websocket.ConnectionClosed) as closed:
                await ws.get_message()
        assert closed.value.reason.code == 1000


async def test_a_websocket_to_a_route_that_does_not_exist_is_refused_with_403() -> None:
    # trio-websocket leaves the refused connection open; a short linger closes it at the drain
    async with on_loopback(starlette_app(), HttpConfig(linger=0.1)) as url:
        ws_url = url.replace("http://", "ws://") + "/nowhere"
        with trio.fail_after(1), pytest.raises(trio_websocket.ConnectionRejected) as refused:
            async with trio_websocket.open_websocket_url(ws_url):
                pass
    assert refused.value.status_code == 403
