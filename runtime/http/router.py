"""``Router``: method and path routing with typed parameters, as a Service.

Patterns are paths whose segments are either literal text or one parameter:

- ``{name}`` or ``{name:str}``: one non-empty segment, as ``str``;
- ``{name:int}``: one segment of ASCII digits, as ``int`` (anything else does not match, so
  ``/items/abc`` under ``/items/{id:int}`` is a 404, never a 500);
- ``{name:path}``: the rest of the path, slashes included (it may be empty: ``/files/``
  matches ``/files/{rest:path}`` with ``rest == ""``); only as the last segment.

Patterns compile once, at registration, into a segment tree. A request walks the tree depth
first, and the order in which it tries the branches at each segment is the precedence rule:

1. a static segment (``/items/new``) wins over a parameter (``/items/{id}``);
2. then the single-segment parameters, in the order they were first registered at that place;
3. then a ``{name:path}`` parameter;
4. then a mounted service, which takes every path below its prefix.

The first candidate (in that order) whose path matches and that has a handler for the method
answers. A later candidate is tried when an earlier one matches the path but not the method,
so ``GET /items/new`` reaches ``GET /items/{id}`` when ``/items/new`` only has ``POST``. When
some routes match the path but none the method (and no mount takes the path), the answer is
405 with an ``Allow`` header listing every method those routes take; when nothing matches the
path, 404. ``HEAD`` is served by the ``GET`` handler when there is no ``HEAD`` route (the
server sends no body for it). Methods are case-sensitive (RFC 9110): ``get`` is not ``GET``.

Matching is done on percent-decoded segments, decoded after splitting, so ``%2F`` inside a
segment never splits it; literal text in a pattern is compared with the decoded segment
(``/a b`` matches ``/a%20b``), and a segment that is not UTF-8 once decoded matches nothing.
A path that does not start with ``/`` matches nothing.

Mounting: ``router.mount("/api", sub)`` hands every request whose path is ``/api`` or starts
with ``/api/`` to ``sub``, any Service of Request to Response. A mounted :class:`Router` sees
the path below the prefix (``/api`` itself is ``/``); for any other service the consumed prefix
is in ``request.extensions["root_path"]`` of a shallow copy of the request, so the caller's
request is never changed under it (a Hedge or Retry around the router may send the same
request again). Prefixes may hold parameters (``/users/{uid:int}``); their values are passed
down in ``path_params`` together with the mounted router's own.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Final, TypeAlias, TypeVar, overload
from urllib.parse import unquote

import attrs

from runtime.service import Service

from ._types import Request, Response
from .websocket import WebSocketConfig, WebSocketHandler, websocket_endpoint

Handler: TypeAlias = Callable[[Request], Awaitable[Response]]
"""A route's handler: an async function (or a Service) from Request to Response."""

H = TypeVar("H", bound=Handler)

__all__ = ["Handler", "Router"]

_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(?::([A-Za-z_][A-Za-z0-9_]*))?\}")
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # RFC 9110 token: what a method may be
_NO_MATCH: Final = object()


def _convert_str(segment: str) -> object:
    return segment if segment else _NO_MATCH


def _convert_int(segment: str) -> object:
    # isdigit alone would take superscripts and Arabic-Indic digits (int() takes the latter);
    # int() alone would take "+1", " 1" and "1_000". Too many digits for int() (sys.int_info)
    # is no match either.
    if not (segment.isascii() and segment.isdigit()):
        return _NO_MATCH
    try:
        return int(segment)
    except ValueError:
        return _NO_MATCH


_CONVERTERS: Final[dict[str, Callable[[str], object]]] = {"str": _convert_str, "int": _convert_int}
_PATH = "path"


@attrs.define(eq=False)
class _Endpoint:
    handler: Handler
    names: tuple[str, ...]  # the parameter names of this route, in path order
    pattern: str


@attrs.define(eq=False)
class _Mount:
    service: Service[Request, Response]
    names: tuple[str, ...]
    prefix: str


@attrs.define(eq=False)
class _Node:
    static: dict[str, _Node] = attrs.field(factory=dict)
    params: list[tuple[str, Callable[[str], object], _Node]] = attrs.field(factory=list)
    rest: _Node | None = None
    endpoints: dict[str, _Endpoint] = attrs.field(factory=dict)
    mount: _Mount | None = None

    def param_child(self, converter: str) -> _Node:
        for name, _, child in self.params:
            if name == converter:
                return child
        child = _Node()
        self.params.append((converter, _CONVERTERS[converter], child))
        return child


# What a search finds: the route's endpoint and its parameter values, or a mount with its
# values and the number of path segments its prefix consumed.
_Found: TypeAlias = tuple[_Endpoint, list[object], int] | tuple[_Mount, list[object], int]


def _find(
    node: _Node,
    segments: list[str],
    i: int,
    values: list[object],
    method: str,
    misses: list[_Node],
) -> _Found | None:
    """The first candidate in precedence order (depth first) that takes ``method``.

    Nodes whose routes match the whole path but not the method are appended to ``misses``
    (for the 405's Allow). Recursive functions, not generators: this is the hot path.
    """
    if i == len(segments):
        if node.endpoints:
            endpoint = _pick(node, method)
            if endpoint is not None:
                return endpoint, values, -1
            misses.append(node)
    else:
        segment = segments[i]
        child = node.static.get(segment)
        if child is not None:
            found = _find(child, segments, i + 1, values, method, misses)
            if found is not None:
                return found
        for _, convert, param_node in node.params:
            value = convert(segment)
            if value is not _NO_MATCH:
                found = _find(param_node, segments, i + 1, [*values, value], method, misses)
                if found is not None:
                    return found
        rest = node.rest
        if rest is not None and rest.endpoints:
            endpoint = _pick(rest, method)
            if endpoint is not None:
                return endpoint, [*values, "/".join(segments[i:])], -1
            misses.append(rest)
    if node.mount is not None:
        return node.mount, values, i
    return None


def _split(path: str) -> list[str] | None:
    if not path.startswith("/"):
        return None
    return path[1:].split("/")


def _decode(segments: list[str]) -> list[str]:
    return [unquote(s, errors="strict") if "%" in s else s for s in segments]


def _parse(pattern: str, *, mount: bool) -> tuple[list[tuple[str, str | None]], tuple[str, ...]]:
    """Split a pattern into (literal, None) and (converter, name) segments, checking it."""
    what = "mount prefix" if mount else "route pattern"
    if not pattern.startswith("/"):
        raise ValueError(f"{what} {pattern!r} must start with '/'")
    raw = pattern[1:].split("/")
    if mount and raw[-1] == "":
        raw.pop()  # "/api/" mounts like "/api", and "/" mounts at the root
    parts: list[tuple[str, str | None]] = []
    names: list[str] = []
    for index, segment in enumerate(raw):
        m = _PARAM.fullmatch(segment)
        if m is None:
            if "{" in segment or "}" in segment:
                raise ValueError(
                    f"{what} {pattern!r}: segment {segment!r} must be literal text or one"
                    " whole parameter like {name}, {name:int} or {name:path}"
                )
            parts.append((segment, None))
            continue
        name, converter = m.group(1), m.group(2) or "str"
        if converter != _PATH and converter not in _CONVERTERS:
            known = ", ".join([*_CONVERTERS, _PATH])
            raise ValueError(f"{what} {pattern!r}: unknown converter {converter!r} ({known})")
        if converter == _PATH and (mount or index != len(raw) - 1):
            raise ValueError(
                f"{what} {pattern!r}: {{{name}:path}} takes the rest of the path, so it can"
                " only be the last segment of a route (not of a mount prefix)"
            )
        if name in names:
            raise ValueError(f"{what} {pattern!r}: parameter {name!r} appears twice")
        names.append(name)
        parts.append((converter, name))
    return parts, tuple(names)


def _allow(nodes: Iterable[_Node]) -> str:
    methods: set[str] = set()
    for node in nodes:
        methods.update(node.endpoints)
    if "GET" in methods:
        methods.add("HEAD")
    return ", ".join(sorted(methods))


class Router(Service[Request, Response]):
    """Routes requests by method and path to handlers; itself a ``Service[Request, Response]``.

    Register routes with :meth:`route` or the decorators (:meth:`get`, :meth:`post`, ...),
    and sub-services with :meth:`mount`. The module docstring gives the pattern syntax and
    the precedence rule. A matched route's parameters are in
    ``request.extensions["path_params"]``, converted (``{id:int}`` gives an ``int``), and
    its template in ``request.extensions["route"]`` (``"/api/items/{id:int}"``, mount
    prefixes included; ``"/prefix/*"`` for a mounted service that is not a Router): the HTTP
    server's metrics label requests with it, so a label set stays as small as the route table.

    The router is always ready: a handler that is itself a Service with readiness (a
    concurrency limit) waits for it inside its plain call. Register routes before serving;
    registering is not meant to race with requests.

    Example:
        >>> router = Router()
        >>> @router.get("/items/{id:int}")
        ... async def item(request: Request) -> Response:
        ...     params = request.extensions["path_params"]
        ...     return Response.json({"id": params["id"]})
    """

    __slots__ = ("_root", "_static")

    def __init__(self) -> None:
        self._root = _Node()
        # Fully literal routes by path: one dict lookup answers most requests. A static route
        # is always the first candidate of a walk (static segments win at every step).
        self._static: dict[str, _Node] = {}

    # -- registration ------------------------------------------------------------------------

    @overload
    def route(self, methods: str | Iterable[str], pattern: str) -> Callable[[H], H]: ...

    @overload
    def route(self, methods: str | Iterable[str], pattern: str, handler: H) -> H: ...

    def route(
        self, methods: str | Iterable[str], pattern: str, handler: H | None = None
    ) -> H | Callable[[H], H]:
        """Register ``handler`` for ``methods`` on ``pattern`` (or return a decorator that does).

        Args:
            methods: A method (``"GET"``) or several (``["GET", "POST"]``). Uppercased.
            pattern: The path pattern, e.g. ``"/items/{id:int}"``.
            handler: An async function (or Service) from Request to Response. Without it,
                ``route`` returns a decorator.

        Returns:
            ``handler`` itself (so the function stays usable), or the decorator.

        Raises:
            ValueError: the pattern or a method is malformed, or a route with the same method
                and the same pattern (up to parameter names) is already registered.
        """
        if handler is None:
            return lambda h: self.route(methods, pattern, h)
        wanted = [methods] if isinstance(methods, str) else list(methods)
        if not wanted:
            raise ValueError(f"route {pattern!r}: give at least one method")
        for method in wanted:
            if not _TOKEN.fullmatch(method):
                raise ValueError(f"route {pattern!r}: {method!r} is not a valid method name")
        parts, names = _parse(pattern, mount=False)
        node = self._node_for(parts)
        endpoint = _Endpoint(handler, names, pattern)
        upper = [m.upper() for m in wanted]
        for method in upper:
            earlier = node.endpoints.get(method)
            if earlier is not None:
                raise ValueError(
                    f"route {method} {pattern!r} conflicts with {method} {earlier.pattern!r},"
                    " registered earlier: the same method on the same path; remove one"
                )
        for method in upper:
            node.endpoints[method] = endpoint
        if not names:
            self._static[pattern] = node
        return handler

    def get(self, pattern: str) -> Callable[[H], H]:
        """Decorator: register the function for ``GET`` (and so ``HEAD``) on ``pattern``."""
        return self.route("GET", pattern)

    def head(self, pattern: str) -> Callable[[H], H]:
        """Decorator: register the function for ``HEAD`` on ``pattern``."""
        return self.route("HEAD", pattern)

    def post(self, pattern: str) -> Callable[[H], H]:
        """Decorator: register the function for ``POST`` on ``pattern``."""
        return self.route("POST", pattern)

    def put(self, pattern: str) -> Callable[[H], H]:
        """Decorator: register the function for ``PUT`` on ``pattern``."""
        return self.route("PUT", pattern)

    def patch(self, pattern: str) -> Callable[[H], H]:
        """Decorator: register the function for ``PATCH`` on ``pattern``."""
        return self.route("PATCH", pattern)

    def delete(self, pattern: str) -> Callable[[H], H]:
        """Decorator: register the function for ``DELETE`` on ``pattern``."""
        return self.route("DELETE", pattern)

    def options(self, pattern: str) -> Callable[[H], H]:
        """Decorator: register the function for ``OPTIONS`` on ``pattern``."""
        return self.route("OPTIONS", pattern)

    def ws(
        self, pattern: str, handler: WebSocketHandler, config: WebSocketConfig | None = None
    ) -> WebSocketHandler:
        """Serve WebSocket ``handler`` on ``pattern``, on the same port as the HTTP routes.

        A plain request to the route gets 426 with ``Upgrade: websocket``; see
        :func:`~runtime.http.websocket.websocket_endpoint` for the handshake's checks.

        Returns:
            ``handler``, so this works as a plain call or, with ``functools.partial``, as a
            decorator.
        """
        self.route("GET", pattern, websocket_endpoint(handler, config))
        return handler

    def mount(self, prefix: str, service: Service[Request, Response]) -> None:
        """Hand every request under ``prefix`` to ``service`` (usually another Router).

        Args:
            prefix: The path prefix, e.g. ``"/api"`` or ``"/users/{uid:int}"`` (no
                ``{name:path}``). A trailing ``/`` is ignored; ``"/"`` mounts at the root,
                as a fallback for every path no route of this router matches.
            service: The service that answers, with any method, for ``prefix`` and every
                path below it.

        Raises:
            ValueError: the prefix is malformed, or something is already mounted there.
        """
        parts, names = _parse(prefix, mount=True)
        node = self._node_for(parts)
        if node.mount is not None:
            raise ValueError(
                f"mount {prefix!r} conflicts with the mount {node.mount.prefix!r}, made"
                " earlier at the same prefix; mount one router there and add routes to it"
            )
        node.mount = _Mount(service, names, prefix)

    def _node_for(self, parts: list[tuple[str, str | None]]) -> _Node:
        node = self._root
        for text, name in parts:
            if name is None:
                node = node.static.setdefault(text, _Node())
            elif text == _PATH:
                if node.rest is None:
                    node.rest = _Node()
                node = node.rest
            else:
                node = node.param_child(text)
        return node

    # -- dispatch ----------------------------------------------------------------------------

    async def __call__(self, request: Request) -> Response:
        """Answer ``request`` with its route's handler, a mounted service, 404 or 405.

        Args:
            request: The request. Its ``extensions["path_params"]`` is set for a route.

        Returns:
            The handler's response; or 404 (no route matches the path) or 405 with ``Allow``
            (routes match the path, none the method).

        Raises:
            Exception: whatever the handler raises, unchanged.
        """
        root = request.extensions.get("root_path", "")
        path = request.path
        if root and path.startswith(root):
            path = path[len(root) :] or "/"
            params = dict(request.extensions.get("path_params", ()))
        else:
            root, params = "", {}
        return await self._dispatch(request, root, path, params, "")

    async def _dispatch(
        self, request: Request, root: str, path: str, params: dict[str, Any], template: str
    ) -> Response:
        # ``root`` is the raw prefix of request.path the routers above consumed; ``path`` is
        # what is left of it for this router; ``template`` the mount patterns above it.
        method = request.method
        node = self._static.get(path) if "%" not in path else None
        if node is not None:
            endpoint = _pick(node, method)
            if endpoint is not None:
                extensions = request.extensions
                extensions["path_params"] = params
                extensions["route"] = template + endpoint.pattern if template else endpoint.pattern
                return await endpoint.handler(request)
        raw = _split(path)
        if raw is None:
            return _not_found()
        try:
            segments = _decode(raw) if "%" in path else raw
        except UnicodeDecodeError:
            return _not_found()  # a percent-escape that is not UTF-8 names no route
        misses: list[_Node] = []
        found = _find(self._root, segments, 0, [], method, misses)
        if found is None:
            if misses:
                allow = [("allow", _allow(misses))]
                return Response.text("Method Not Allowed\n", 405, headers=allow)
            return _not_found()
        target, values, consumed = found
        if isinstance(target, _Mount):
            return await self._enter(
                target, request, root, raw, consumed, values, params, template
            )
        params.update(zip(target.names, values, strict=True))
        request.extensions["path_params"] = params
        request.extensions["route"] = template + target.pattern
        return await target.handler(request)

    async def _enter(
        self,
        mount: _Mount,
        request: Request,
        root: str,
        raw: list[str],
        consumed: int,
        values: list[object],
        params: dict[str, Any],
        template: str,
    ) -> Response:
        params.update(zip(mount.names, values, strict=True))
        rest = "/" + "/".join(raw[consumed:]) if consumed < len(raw) else "/"
        root += "".join("/" + s for s in raw[:consumed])
        template += mount.prefix.rstrip("/")
        if isinstance(mount.service, Router):
            return await mount.service._dispatch(request, root, rest, params, template)
        request.extensions["route"] = template + "/*"  # the service's own paths stay unseen
        inner = attrs.evolve(
            request,
            extensions={**request.extensions, "root_path": root, "path_params": params},
        )
        return await mount.service(inner)


def _pick(node: _Node, method: str) -> _Endpoint | None:
    endpoint = node.endpoints.get(method)
    if endpoint is None and method == "HEAD":
        return node.endpoints.get("GET")
    return endpoint


def _not_found() -> Response:
    return Response.text("Not Found\n", 404)
