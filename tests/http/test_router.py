"""Router: typed parameters, precedence, 404/405 with Allow, mounts, and Router as a Service."""

from __future__ import annotations

import json
import re
from typing import Any

import attrs
import h11
import hypothesis
import pytest
import trio
from hypothesis import strategies as st

import runtime.time
from runtime.http import Request, Response
from runtime.http._server import HttpServer
from runtime.http.router import Handler, Router
from runtime.service import Elapsed, Service, ServiceBuilder, service_fn
from runtime.testing import MemoryListener


def answer(name: str) -> Handler:
    """A handler that answers with its name and the path parameters it was given."""

    async def handle(request: Request) -> Response:
        await trio.lowlevel.checkpoint()
        return Response.json({"h": name, "params": request.extensions["path_params"]})

    return handle


async def call(svc: Service[Request, Response], method: str, target: str) -> Response:
    return await svc(Request(method, target))


def body(response: Response) -> Any:
    assert isinstance(response.body, bytes)
    return json.loads(response.body)


async def hit(svc: Service[Request, Response], method: str, target: str) -> tuple[str, Any]:
    """The name of the handler that answered, and its parameters (fails on 404/405)."""
    response = await call(svc, method, target)
    assert response.status == 200, (response.status, response.body)
    data = body(response)
    return data["h"], data["params"]


# -- parameters -------------------------------------------------------------------------------


async def test_static_route_answers_and_gets_empty_params() -> None:
    router = Router()
    router.route("GET", "/health", answer("health"))
    router.route("GET", "/", answer("root"))
    assert await hit(router, "GET", "/health") == ("health", {})
    assert await hit(router, "GET", "/") == ("root", {})


async def test_int_param_is_converted_to_int() -> None:
    router = Router()
    seen: list[object] = []

    @router.get("/items/{id:int}")
    async def item(request: Request) -> Response:
        seen.append(request.extensions["path_params"]["id"])
        return Response.text("ok")

    response = await call(router, "GET", "/items/0042")
    assert response.status == 200
    assert seen == [42]
    assert type(seen[0]) is int


@pytest.mark.parametrize(
    "segment",
    ["abc", "12a", "-1", "+1", "1_000", "%201", "1.5", "\u00b2", "\u0661\u0662", "9" * 5000, ""],
)
async def test_a_non_int_for_an_int_param_is_404_not_500(segment: str) -> None:
    router = Router()
    router.route("GET", "/items/{id:int}", answer("item"))
    response = await call(router, "GET", f"/items/{segment}")
    assert response.status == 404


async def test_str_param_takes_one_non_empty_segment() -> None:
    router = Router()
    router.route("GET", "/users/{name}", answer("user"))
    router.route("GET", "/users/{name:str}/posts", answer("posts"))
    assert await hit(router, "GET", "/users/ada") == ("user", {"name": "ada"})
    assert await hit(router, "GET", "/users/ada/posts") == ("posts", {"name": "ada"})
    assert (await call(router, "GET", "/users/")).status == 404
    assert (await call(router, "GET", "/users/ada/lovelace")).status == 404


async def test_path_param_takes_the_rest_of_the_path() -> None:
    router = Router()
    router.route("GET", "/files/{rest:path}", answer("files"))
    assert await hit(router, "GET", "/files/a/b/c.txt") == ("files", {"rest": "a/b/c.txt"})
    assert await hit(router, "GET", "/files/") == ("files", {"rest": ""})
    assert (await call(router, "GET", "/files")).status == 404


async def test_several_params_and_the_query_is_not_part_of_the_path() -> None:
    router = Router()
    router.route("GET", "/u/{uid:int}/f/{name}/{rest:path}", answer("deep"))
    got = await hit(router, "GET", "/u/7/f/doc/x/y?page=2")
    assert got == ("deep", {"uid": 7, "name": "doc", "rest": "x/y"})


async def test_segments_are_percent_decoded_after_splitting() -> None:
    router = Router()
    router.route("GET", "/users/{name}", answer("user"))
    router.route("GET", "/a b", answer("space"))
    router.route("GET", "/raw/{rest:path}", answer("raw"))
    assert await hit(router, "GET", "/users/J%C3%B6rg") == ("user", {"name": "J\u00f6rg"})
    assert await hit(router, "GET", "/users/a%2Fb") == ("user", {"name": "a/b"})
    assert await hit(router, "GET", "/a%20b") == ("space", {})
    assert await hit(router, "GET", "/raw/x%2Fy/z") == ("raw", {"rest": "x/y/z"})
    assert (await call(router, "GET", "/users/%FF")).status == 404  # not UTF-8


async def test_a_literal_percent_in_a_pattern_is_compared_decoded() -> None:
    router = Router()
    router.route("GET", "/100%25", answer("literal"))
    # The pattern's text is "100%25"; the request "/100%25" decodes to "100%".
    assert (await call(router, "GET", "/100%25")).status == 404
    assert await hit(router, "GET", "/100%2525") == ("literal", {})


async def test_trailing_slash_is_a_different_path() -> None:
    router = Router()
    router.route("GET", "/items", answer("items"))
    assert (await call(router, "GET", "/items/")).status == 404
    assert (await call(router, "GET", "/items")).status == 200


# -- 404 and 405 ------------------------------------------------------------------------------


@pytest.mark.parametrize("target", ["/nope", "/items/1/extra", "*", "http://h/items", ""])
async def test_no_path_match_is_404(target: str) -> None:
    router = Router()
    router.route("GET", "/items/{id:int}", answer("item"))
    response = await call(router, "GET", target)
    assert response.status == 404
    assert response.reason == "Not Found"
    assert "allow" not in response.headers


async def test_path_match_without_the_method_is_405_with_allow() -> None:
    router = Router()
    router.route("GET", "/items/{id:int}", answer("get"))
    router.route(["PUT", "DELETE"], "/items/{id:int}", answer("write"))
    router.route("PATCH", "/items/{key}", answer("patch"))  # matches the same path too
    response = await call(router, "POST", "/items/3")
    assert response.status == 405
    assert response.reason == "Method Not Allowed"
    assert response.headers["allow"] == "DELETE, GET, HEAD, PATCH, PUT"


async def test_allow_has_no_head_without_get() -> None:
    router = Router()
    router.route("POST", "/submit", answer("submit"))
    response = await call(router, "GET", "/submit")
    assert response.status == 405
    assert response.headers["allow"] == "POST"


async def test_options_without_a_route_is_405_with_allow() -> None:
    router = Router()
    router.route("GET", "/x", answer("x"))
    response = await call(router, "OPTIONS", "/x")
    assert response.status == 405
    assert response.headers["allow"] == "GET, HEAD"


async def test_head_is_served_by_get_unless_it_has_its_own_route() -> None:
    router = Router()
    router.route("GET", "/a", answer("get-a"))
    router.route("GET", "/b", answer("get-b"))
    router.route("HEAD", "/b", answer("head-b"))
    assert (await hit(router, "HEAD", "/a"))[0] == "get-a"
    assert (await hit(router, "HEAD", "/b"))[0] == "head-b"


async def test_methods_are_case_sensitive_but_registration_uppercases() -> None:
    router = Router()
    router.route("get", "/x", answer("x"))
    assert (await hit(router, "GET", "/x"))[0] == "x"
    response = await call(router, "get", "/x")
    assert response.status == 405
    assert response.headers["allow"] == "GET, HEAD"


# -- precedence -------------------------------------------------------------------------------


@pytest.mark.parametrize("static_first", [True, False])
async def test_static_segment_wins_over_param_whatever_the_order(static_first: bool) -> None:
    router = Router()
    if static_first:
        router.route("GET", "/items/new", answer("new"))
    router.route("GET", "/items/{name}", answer("param"))
    if not static_first:
        router.route("GET", "/items/new", answer("new"))
    assert (await hit(router, "GET", "/items/new"))[0] == "new"
    assert await hit(router, "GET", "/items/old") == ("param", {"name": "old"})


async def test_first_registered_param_wins() -> None:
    a = Router()
    a.route("GET", "/v/{id:int}", answer("int"))
    a.route("GET", "/v/{name}", answer("str"))
    assert await hit(a, "GET", "/v/12") == ("int", {"id": 12})
    assert await hit(a, "GET", "/v/ab") == ("str", {"name": "ab"})

    b = Router()
    b.route("GET", "/v/{name}", answer("str"))
    b.route("GET", "/v/{id:int}", answer("int"))  # reachable only by nothing: str takes all
    assert await hit(b, "GET", "/v/12") == ("str", {"name": "12"})


async def test_single_segment_params_win_over_path_param() -> None:
    router = Router()
    router.route("GET", "/f/{rest:path}", answer("rest"))
    router.route("GET", "/f/{name}", answer("one"))
    assert (await hit(router, "GET", "/f/x"))[0] == "one"
    assert (await hit(router, "GET", "/f/x/y"))[0] == "rest"


async def test_matching_backtracks_when_a_deeper_segment_fails() -> None:
    router = Router()
    router.route("GET", "/a/{x}/c", answer("first"))
    router.route("GET", "/{y}/b/d", answer("second"))
    assert await hit(router, "GET", "/a/b/d") == ("second", {"y": "a"})
    assert await hit(router, "GET", "/a/b/c") == ("first", {"x": "b"})


async def test_a_route_without_the_method_lets_a_later_candidate_answer() -> None:
    router = Router()
    router.route("POST", "/items/new", answer("create"))
    router.route("GET", "/items/{name}", answer("show"))
    assert await hit(router, "GET", "/items/new") == ("show", {"name": "new"})
    assert (await hit(router, "POST", "/items/new"))[0] == "create"
    response = await call(router, "DELETE", "/items/new")
    assert response.headers["allow"] == "GET, HEAD, POST"


# -- registration -----------------------------------------------------------------------------


async def test_decorators_register_their_method_and_return_the_function() -> None:
    router = Router()
    names = ["get", "head", "post", "put", "patch", "delete", "options"]
    handlers = {}
    for name in names:
        fn = answer(name)
        handlers[name] = getattr(router, name)("/m")(fn)
        assert handlers[name] is fn
    for name in names:
        assert (await hit(router, name.upper(), "/m"))[0] == name


async def test_route_without_handler_is_a_decorator_for_several_methods() -> None:
    router = Router()

    @router.route(["GET", "POST"], "/both")
    async def both(request: Request) -> Response:
        return Response.text(request.method)

    assert (await call(router, "POST", "/both")).body == b"POST"
    assert (await call(router, "GET", "/both")).body == b"GET"
    assert (await both(Request("GET", "/"))).body == b"GET"  # still a plain function


async def test_a_service_can_be_a_handler() -> None:
    router = Router()
    router.route("GET", "/svc", service_fn(answer("svc")))
    assert (await hit(router, "GET", "/svc"))[0] == "svc"


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("/items/{id:int}", "/items/{id:int}"),
        ("/items/{id:int}", "/items/{key:int}"),  # same place, same converter: unreachable
        ("/u/{name}", "/u/{name:str}"),
        ("/f/{a:path}", "/f/{b:path}"),
        ("/static", "/static"),
    ],
)
def test_same_method_and_pattern_twice_raises(first: str, second: str) -> None:
    router = Router()
    router.route(["GET", "POST"], first, answer("one"))
    with pytest.raises(ValueError, match=r"route POST .* conflicts with POST .*registered"):
        router.route(["PUT", "POST"], second, answer("two"))
    # Nothing of the refused registration is kept: PUT was not added.
    router.route("PUT", second, answer("three"))


def test_same_pattern_with_another_method_or_converter_is_no_conflict() -> None:
    router = Router()
    router.route("GET", "/items/{id:int}", answer("get"))
    router.route("POST", "/items/{id:int}", answer("post"))
    router.route("GET", "/items/{name}", answer("str"))


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("items", "must start with '/'"),
        ("/items/{id:float}", "unknown converter 'float'"),
        ("/items/x{id}", "literal text or one whole parameter"),
        ("/items/{id", "literal text or one whole parameter"),
        ("/items/{1d}", "literal text or one whole parameter"),
        ("/f/{rest:path}/more", "only be the last segment"),
        ("/a/{x}/b/{x:int}", "parameter 'x' appears twice"),
    ],
)
def test_malformed_patterns_raise(pattern: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Router().route("GET", pattern, answer("x"))


@pytest.mark.parametrize("methods", ["GE T", "", [], ["GET", "P(ST"]])
def test_malformed_methods_raise(methods: str | list[str]) -> None:
    with pytest.raises(ValueError, match="method"):
        Router().route(methods, "/x", answer("x"))


def test_mount_prefix_rules() -> None:
    router = Router()
    with pytest.raises(ValueError, match="not of a mount prefix"):
        router.mount("/f/{rest:path}", Router())
    with pytest.raises(ValueError, match="must start with '/'"):
        router.mount("api", Router())
    router.mount("/api", Router())
    with pytest.raises(ValueError, match="conflicts with the mount '/api'"):
        router.mount("/api/", Router())


# -- mounts -----------------------------------------------------------------------------------


def api_router() -> Router:
    api = Router()
    api.route("GET", "/", answer("api-root"))
    api.route("GET", "/items/{id:int}", answer("api-item"))
    api.route("POST", "/items", answer("api-create"))
    return api


async def test_mounted_router_sees_the_path_below_the_prefix() -> None:
    router = Router()
    router.mount("/api", api_router())
    assert await hit(router, "GET", "/api/items/5") == ("api-item", {"id": 5})
    assert (await hit(router, "GET", "/api"))[0] == "api-root"
    assert (await hit(router, "GET", "/api/"))[0] == "api-root"
    assert (await call(router, "GET", "/apix/items/5")).status == 404
    assert (await call(router, "GET", "/api/nope")).status == 404
    response = await call(router, "GET", "/api/items")
    assert response.status == 405
    assert response.headers["allow"] == "POST"


async def test_mount_prefix_params_are_merged_with_the_sub_routers() -> None:
    posts = Router()
    posts.route("GET", "/posts/{pid:int}", answer("post"))
    users = Router()
    users.mount("/users/{uid:int}", posts)
    top = Router()
    top.mount("/v1", users)
    assert await hit(top, "GET", "/v1/users/3/posts/9") == ("post", {"uid": 3, "pid": 9})
    assert (await call(top, "GET", "/v1/users/x/posts/9")).status == 404


async def test_own_routes_win_over_a_mount_and_other_methods_go_to_it() -> None:
    router = Router()
    router.route("GET", "/api/health", answer("own-health"))
    sub = Router()
    sub.route("POST", "/health", answer("sub-health"))
    router.mount("/api", sub)
    assert (await hit(router, "GET", "/api/health"))[0] == "own-health"
    assert (await hit(router, "POST", "/api/health"))[0] == "sub-health"


async def test_root_mount_is_the_fallback() -> None:
    router = Router()
    router.route("GET", "/own", answer("own"))
    router.mount("/", api_router())
    assert (await hit(router, "GET", "/own"))[0] == "own"
    assert await hit(router, "GET", "/items/1") == ("api-item", {"id": 1})
    assert (await hit(router, "GET", "/"))[0] == "api-root"


async def test_any_service_can_be_mounted_and_gets_root_path_in_a_copy() -> None:
    seen: list[Request] = []

    async def inner(request: Request) -> Response:
        seen.append(request)
        return Response.text("inner")

    router = Router()
    router.mount("/u/{uid:int}/svc", service_fn(inner))
    request = Request("PATCH", "/u/4/svc/deep/er?q=1", extensions={"trace": "t1"})
    assert (await router(request)).body == b"inner"
    (got,) = seen
    assert got is not request
    assert got.extensions == {
        "trace": "t1",
        "root_path": "/u/4/svc",
        "path_params": {"uid": 4},
        "route": "/u/{uid:int}/svc/*",  # the metrics' label: the mount's template
    }
    assert (got.method, got.target, got.path, got.query) == (
        "PATCH",
        request.target,
        request.path,
        "q=1",
    )
    assert got.body is request.body and got.headers is request.headers
    # the caller's request gets only the route template (the server's metrics read it there)
    assert request.extensions == {"trace": "t1", "route": "/u/{uid:int}/svc/*"}


async def test_router_under_middleware_mounted_in_a_router() -> None:
    # A generic mount (not a Router) passes root_path down; the inner Router reads it.
    top = Router()
    top.mount("/api/{ver:int}", ServiceBuilder().timeout(1).service(api_router()))
    assert await hit(top, "GET", "/api/2/items/8") == ("api-item", {"ver": 2, "id": 8})
    assert (await hit(top, "GET", "/api/2"))[0] == "api-root"
    assert (await call(top, "GET", "/api/2/zzz")).status == 404


async def test_a_generic_mount_inside_a_mounted_router_gets_the_whole_root_path() -> None:
    # top -> (a Router, reached directly) -> (a Router under middleware): the inner one must
    # see the prefix both routers above it consumed.
    seen: list[str] = []

    async def inner(request: Request) -> Response:
        seen.append(request.extensions["root_path"])
        return Response.text("inner")

    users = Router()
    users.mount("/{uid:int}/svc", service_fn(inner))
    users.mount("/{uid:int}/api", ServiceBuilder().timeout(1).service(api_router()))
    top = Router()
    top.mount("/v1/users", users)
    assert (await call(top, "GET", "/v1/users/5/svc/x")).body == b"inner"
    assert seen == ["/v1/users/5/svc"]
    assert await hit(top, "GET", "/v1/users/5/api/items/6") == ("api-item", {"uid": 5, "id": 6})


async def test_the_same_request_routed_twice_gets_the_same_answer() -> None:
    # Retry and Hedge send one Request object again; routing must not change it.
    top = Router()
    top.mount("/api", ServiceBuilder().timeout(1).service(api_router()))
    request = Request("GET", "/api/items/3")
    first = body(await top(request))
    second = body(await top(request))
    assert first == second == {"h": "api-item", "params": {"id": 3}}


async def test_two_concurrent_calls_with_one_request_both_route_right() -> None:
    top = Router()
    top.mount("/api", ServiceBuilder().timeout(1).service(api_router()))
    request = Request("GET", "/api/items/3")
    results: list[Any] = []

    async def one() -> None:
        results.append(body(await top(request)))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(one)
        nursery.start_soon(one)
    assert results == [{"h": "api-item", "params": {"id": 3}}] * 2


# -- Router as a Service ----------------------------------------------------------------------


async def test_handler_exceptions_propagate_unchanged() -> None:
    router = Router()

    @router.get("/boom")
    async def boom(request: Request) -> Response:
        raise KeyError("boom")

    with pytest.raises(KeyError, match="boom"):
        await call(router, "GET", "/boom")


async def test_router_is_a_service_with_readiness() -> None:
    router = Router()
    router.route("GET", "/x", answer("x"))
    assert isinstance(router, Service)
    assert router.is_ready()
    async with router.ready() as reserved:
        assert (await reserved(Request("GET", "/x"))).status == 200
    with router.ready_nowait() as reserved:
        assert (await reserved(Request("GET", "/nope"))).status == 404


async def test_router_composes_with_a_timeout_layer(autojump_clock: trio.abc.Clock) -> None:
    router = Router()
    cancelled = trio.Event()

    @router.get("/fast")
    async def fast(request: Request) -> Response:
        await runtime.time.sleep(0.5)
        return Response.text("fast")

    @router.get("/slow")
    async def slow(request: Request) -> Response:
        try:
            await runtime.time.sleep(5)
        except trio.Cancelled:
            cancelled.set()
            raise
        return Response.text("slow")  # pragma: no cover - the timeout cancels it

    svc: Service[Request, Response] = ServiceBuilder().timeout(1).service(router)
    assert (await call(svc, "GET", "/fast")).body == b"fast"
    assert (await call(svc, "GET", "/nope")).status == 404
    start = trio.current_time()
    with pytest.raises(Elapsed):
        await call(svc, "GET", "/slow")
    assert trio.current_time() - start == pytest.approx(1.0)
    assert cancelled.is_set()


def test_request_copy_keeps_every_field() -> None:
    # The generic mount copies the request with attrs.evolve: every init field must survive.
    request = Request("GET", "/a?b", http_version="1.0", peer_address=("h", 1), scheme="https")
    copy = attrs.evolve(request, extensions={"k": 1})
    for field in attrs.fields(Request):
        if field.name != "extensions":
            assert getattr(copy, field.name) == getattr(request, field.name), field.name


# -- served over HTTP/1.1 ---------------------------------------------------------------------


async def test_router_served_by_the_http_server() -> None:
    # The router as the server's service, read back by h11 as the client on one keep-alive
    # connection: 200 with the typed parameter, HEAD through GET without a body, 405 with
    # Allow, 404 for a non-int, and a mounted router.
    router = Router()

    @router.get("/items/{id:int}")
    async def item(request: Request) -> Response:
        return Response.json({"id": request.extensions["path_params"]["id"]})

    router.mount("/api", api_router())
    listener = MemoryListener()
    async with trio.open_nursery() as nursery:
        await nursery.start(HttpServer(router, [listener]).serve)
        client = H11Client(await listener.connect())
        ok = await client.request("GET", "/items/7")
        head = await client.request("HEAD", "/items/7")
        not_allowed = await client.request("DELETE", "/items/7")
        not_found = await client.request("GET", "/items/seven")
        mounted = await client.request("GET", "/api/items/8")
        await client.stream.aclose()
        nursery.cancel_scope.cancel()
    assert (ok.status_code, json.loads(ok.body)) == (200, {"id": 7})
    assert (head.status_code, head.body) == (200, b"")
    assert head.headers[b"content-length"] == ok.headers[b"content-length"]
    assert (not_allowed.status_code, not_allowed.reason) == (405, b"Method Not Allowed")
    assert not_allowed.headers[b"allow"] == b"GET, HEAD"
    assert not_found.status_code == 404
    assert mounted.status_code == 200
    assert json.loads(mounted.body) == {"h": "api-item", "params": {"id": 8}}


@attrs.frozen
class Answer:
    status_code: int
    reason: bytes
    headers: dict[bytes, bytes]
    body: bytes


@attrs.define
class H11Client:
    """A keep-alive HTTP/1.1 client made of h11, one request at a time."""

    stream: trio.abc.Stream
    conn: h11.Connection = attrs.field(factory=lambda: h11.Connection(h11.CLIENT))

    async def request(self, method: str, target: str) -> Answer:
        request = h11.Request(method=method, target=target, headers=[("Host", "a")])
        await self.stream.send_all(self.conn.send(request) + self.conn.send(h11.EndOfMessage()))
        head: h11.Response | None = None
        body = b""
        while True:
            event = self.conn.next_event()
            if event is h11.NEED_DATA:
                self.conn.receive_data(await self.stream.receive_some())
            elif isinstance(event, h11.Response):
                head = event
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                break
            else:
                raise AssertionError(f"unexpected {event!r}")
        assert head is not None
        self.conn.start_next_cycle()
        return Answer(head.status_code, head.reason, dict(head.headers), body)


# -- a property: the tree agrees with one regex per route ---------------------------------------

SEGMENTS = ["a", "b", "1", "22"]
PATH_SEGMENTS = [*SEGMENTS, "x", "", "007"]
METHODS = ["GET", "POST", "HEAD"]
PARAMS = {"{str}": ("", "([^/]+)"), "{int}": (":int", "([0-9]+)")}

RouteSpec = tuple[str, tuple[str, ...], bool]  # method, segments, ends with {rest:path}
route_spec = st.tuples(
    st.sampled_from(METHODS),
    st.lists(st.sampled_from([*SEGMENTS, *PARAMS]), max_size=3).map(tuple),
    st.booleans(),
)
request_spec = st.tuples(
    st.sampled_from(METHODS), st.lists(st.sampled_from(PATH_SEGMENTS), max_size=4)
)


def pattern_of(segments: tuple[str, ...], rest: bool) -> str:
    parts = [f"{{p{i}{PARAMS[s][0]}}}" if s in PARAMS else s for i, s in enumerate(segments)]
    if rest:
        parts.append(f"{{p{len(segments)}:path}}")
    return "/" + "/".join(parts)


def expected_params(segments: tuple[str, ...], rest: bool, path: str) -> dict[str, Any] | None:
    """What the route's parameters are for ``path`` by one regex, or None if it doesn't match."""
    parts = [PARAMS[s][1] if s in PARAMS else re.escape(s) for s in segments]
    names = [(f"p{i}", s) for i, s in enumerate(segments) if s in PARAMS]
    if rest:
        parts.append("(.*)")
        names.append((f"p{len(segments)}", "{path}"))
    m = re.fullmatch("/" + "/".join(parts), path)
    if m is None:
        return None
    return {
        name: int(value) if kind == "{int}" else value
        for (name, kind), value in zip(names, m.groups(), strict=True)
    }


def kind_at(segments: tuple[str, ...], rest: bool, i: int) -> tuple[int, str]:
    """The precedence rank of a route's segment ``i`` (0 static, 1 param, 2 path) and its text."""
    if not segments and not rest:
        segments = ("",)  # "/" is one empty static segment
    if i < len(segments):
        return (1 if segments[i] in PARAMS else 0), segments[i]
    return (2, "{path}") if rest else (3, "")


@hypothesis.given(
    routes=st.lists(route_spec, max_size=8),
    requests=st.lists(request_spec, min_size=1, max_size=6),
)
async def test_router_agrees_with_a_regex_per_route(
    routes: list[RouteSpec], requests: list[tuple[str, list[str]]]
) -> None:
    router = Router()
    kept: list[RouteSpec] = []
    for spec in routes:
        try:
            router.route(spec[0], pattern_of(spec[1], spec[2]), answer(str(len(kept))))
        except ValueError:
            assert spec in kept, f"refused {spec}, which conflicts with nothing"
            continue
        assert spec not in kept, f"accepted {spec} twice"
        kept.append(spec)

    for method, path_segments in requests:
        path = "/" + "/".join(path_segments)
        matching = {
            i: params
            for i, (_, segments, rest) in enumerate(kept)
            if (params := expected_params(segments, rest, path)) is not None
        }
        takes = {method, "GET"} if method == "HEAD" else {method}
        with_method = [i for i in matching if kept[i][0] in takes]
        response = await call(router, method, path)
        if response.status == 404:
            assert not matching, path
            continue
        if response.status == 405:
            assert matching and not with_method, path
            allow = {kept[i][0] for i in matching}
            allow |= {"HEAD"} if "GET" in allow else set()
            assert response.headers["allow"] == ", ".join(sorted(allow))
            continue
        assert response.status == 200
        data = body(response)
        winner = int(data["h"])
        assert winner in with_method, (method, path)
        assert data["params"] == matching[winner]
        _, segments, rest = kept[winner]
        for other in with_method:
            _, other_segments, other_rest = kept[other]
            for i in range(max(len(segments), len(other_segments)) + 1):
                mine = kind_at(segments, rest, i)
                theirs = kind_at(other_segments, other_rest, i)
                if mine != theirs:  # the first place they differ decides
                    assert mine[0] <= theirs[0], (method, path, kept[winner], kept[other])
                    break
            else:  # same pattern: HEAD's own route wins over GET's
                if method == "HEAD":
                    assert kept[winner][0] == "HEAD" or kept[other][0] != "HEAD"
