"""A small JSON API on the Router: items to list, create, read, replace and delete.

Run it:
    python examples/json_api.py --port 8000

Then:
    curl -i -X POST http://127.0.0.1:8000/items -d '{"name": "tea", "price": 3.5}'
    curl -i http://127.0.0.1:8000/items/1

The routes:

====================  ===============================================================
``GET /items``        200, ``{"items": [item, ...]}`` in id order
``POST /items``       201, the new item, ``Location: /items/ID``
``GET /items/ID``     200, the item
``PUT /items/ID``     200, the item replaced by the body
``DELETE /items/ID``  204, no body
====================  ===============================================================

An item is ``{"id": 1, "name": "tea", "price": 3.5, "tags": ["hot"]}``: ``name`` a string of
1-100 characters, ``price`` a finite number >= 0, ``tags`` (optional, default ``[]``) at most
20 strings of 1-32 characters. ``id`` is the server's: a body may not set it.

Every error is JSON, ``{"error": "what happened"}``, plus ``"fields"`` for a 422:

* 400: the body is not JSON (or not UTF-8);
* 404: no item has that id (a non-numeric id is the Router's plain 404: no route matches);
* 413: the body is over 64 KiB (``MAX_BODY_BYTES``);
* 422: the JSON is fine but the item is not: ``{"error": "invalid item", "fields":
  {"name": "required", "price": "must be a number >= 0"}}``, every problem named at once;
* 507: the store holds ``--max-items`` items already (memory is bounded, as every queue is).

The store lives in memory, in one process: with Trio's single thread, a handler that does
not await between reading and writing the store is atomic, so no lock is needed.

``make_app()`` builds the Router, so the demo (``python -m runtime demo`` mounts it under
``/api``) and the tests use the same app in-process. Mounted, it still answers
``Location`` headers with the full path (``/api/items/1``): they are built from the path the
request came in on, not from a prefix the app would have to be told.

It prints ``listening on http://HOST:PORT`` when ready. SIGINT or SIGTERM drains: the
listener closes, requests in flight finish (with ``Connection: close``), and the process
exits 0.
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
from typing import Any

import attrs

import runtime
from runtime.http import BodyTooLarge, HttpConfig, Request, Response, Router, serve
from runtime.net import TcpListener

MAX_BODY_BYTES = 64 * 1024
"""Longest request body an item may come in: far above any item, far below the server's."""

MAX_NAME = 100
MAX_TAGS = 20
MAX_TAG = 32
_FIELDS = frozenset({"name", "price", "tags"})


@attrs.define(eq=False)
class ItemStore:
    """The items, by id, in memory.

    Args:
        max_items: How many items it holds at most; a create beyond is refused (507).
    """

    max_items: int = 10_000
    items: dict[int, dict[str, Any]] = attrs.field(factory=dict)
    next_id: int = 1

    def full(self) -> bool:
        return len(self.items) >= self.max_items

    def create(self, fields: dict[str, Any]) -> dict[str, Any]:
        item = {"id": self.next_id, **fields}
        self.items[self.next_id] = item
        self.next_id += 1
        return item


def validate(data: object) -> tuple[dict[str, Any], dict[str, str]]:
    """Check an item body: the clean fields, and a problem per field name (empty if none).

    Every problem is found in one pass, so a client fixes them all in one round trip.
    """
    if not isinstance(data, dict):
        return {}, {"(body)": "must be a JSON object"}
    problems: dict[str, str] = {}
    for name in sorted(set(data) - _FIELDS):
        problems[name] = "is read-only" if name == "id" else "unknown field"
    name = data.get("name")
    if name is None:
        problems["name"] = "required"
    elif not isinstance(name, str) or not 1 <= len(name.strip()) <= MAX_NAME:
        problems["name"] = f"must be a string of 1-{MAX_NAME} characters"
    price = data.get("price")
    if price is None:
        problems["price"] = "required"
    elif not _is_price(price):
        problems["price"] = "must be a number >= 0"
    tags = data.get("tags", [])
    if not _are_tags(tags):
        problems["tags"] = (
            f"must be a list of at most {MAX_TAGS} strings of 1-{MAX_TAG} characters"
        )
    if problems or not isinstance(name, str):
        return {}, problems
    return {"name": name.strip(), "price": price, "tags": list(tags)}, {}


def _is_price(value: object) -> bool:
    # bool is an int to Python but not a price; json.loads accepts NaN and Infinity.
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return math.isfinite(value) and value >= 0


def _are_tags(value: object) -> bool:
    if not isinstance(value, list) or len(value) > MAX_TAGS:
        return False
    return all(isinstance(tag, str) and 1 <= len(tag) <= MAX_TAG for tag in value)


def error(status: int, message: str, **extra: Any) -> Response:
    """A JSON error response: ``{"error": message, **extra}``."""
    return Response.json({"error": message, **extra}, status)


async def read_item(request: Request) -> dict[str, Any] | Response:
    """The request body as clean item fields, or the error response to send instead."""
    try:
        data = await request.json(max_bytes=MAX_BODY_BYTES)
    except BodyTooLarge:
        return error(413, f"body exceeds {MAX_BODY_BYTES} bytes")
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, a huge int
        return error(400, f"body is not valid JSON: {exc}")
    fields, problems = validate(data)
    if problems:
        return error(422, "invalid item", fields=problems)
    return fields


def make_app(store: ItemStore | None = None) -> Router:
    """The API as a Router over ``store`` (a fresh, empty one by default)."""
    items = store if store is not None else ItemStore()
    router = Router()

    @router.get("/items")
    async def list_items(request: Request) -> Response:
        return Response.json({"items": [items.items[i] for i in sorted(items.items)]})

    @router.post("/items")
    async def create_item(request: Request) -> Response:
        fields = await read_item(request)
        if isinstance(fields, Response):
            return fields
        if items.full():
            return error(507, f"the store is full ({items.max_items} items); delete some")
        item = items.create(fields)
        location = f"{request.path}/{item['id']}"
        return Response.json(item, 201, headers=[("location", location)])

    @router.get("/items/{id:int}")
    async def get_item(request: Request) -> Response:
        item = items.items.get(request.extensions["path_params"]["id"])
        return Response.json(item) if item is not None else _no_item(request)

    @router.put("/items/{id:int}")
    async def replace_item(request: Request) -> Response:
        item_id = request.extensions["path_params"]["id"]
        if item_id not in items.items:
            return _no_item(request)
        fields = await read_item(request)
        if isinstance(fields, Response):
            return fields
        if item_id not in items.items:  # deleted while the body was read
            return _no_item(request)
        item = items.items[item_id] = {"id": item_id, **fields}
        return Response.json(item)

    @router.delete("/items/{id:int}")
    async def delete_item(request: Request) -> Response:
        if items.items.pop(request.extensions["path_params"]["id"], None) is None:
            return _no_item(request)
        return Response(204)

    return router


def _no_item(request: Request) -> Response:
    return error(404, f"no item {request.extensions['path_params']['id']}")


async def main(args: argparse.Namespace) -> None:
    listener = TcpListener.bind(args.host, args.port)
    host = f"[{args.host}]" if ":" in args.host else args.host
    app = make_app(ItemStore(max_items=args.max_items))
    print(f"listening on http://{host}:{listener.port}", flush=True)
    await serve(app, [listener], config=HttpConfig(name="json_api"))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="A JSON items API on trio-runtime.")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=0, help="port; 0 picks a free one (default)")
    p.add_argument("--max-items", type=int, default=10_000, help="items kept at most")
    p.add_argument("--grace", type=float, default=10.0, help="seconds to drain on shutdown")
    p.add_argument("--log-level", default="WARNING", help="logging level (default WARNING)")
    return p.parse_args(argv)


if __name__ == "__main__":
    args = parse_args()
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(message)s"
    )
    try:
        runtime.run(main, args, config=runtime.RuntimeConfig(shutdown_grace=args.grace))
    except OSError as exc:
        print(f"error: cannot serve on {args.host}:{args.port}: {exc}", file=sys.stderr)
        sys.exit(1)
