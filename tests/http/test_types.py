"""The HTTP values: Headers, Body, Request and the Response helpers."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import attrs
import pytest
import trio

from runtime.http import Body, BodyTooLarge, Headers, Request, Response

# -- Headers ----------------------------------------------------------------------------------


def test_header_names_are_case_insensitive() -> None:
    h = Headers([("Content-Type", "text/plain")])
    assert h["content-type"] == h["CONTENT-TYPE"] == h.get("Content-type") == "text/plain"
    assert "cOnTeNt-TyPe" in h
    assert h.items() == [("content-type", "text/plain")]  # stored lowercased


def test_missing_header() -> None:
    h = Headers()
    with pytest.raises(KeyError):
        h["x-missing"]
    assert h.get("x-missing") is None
    assert h.get("x-missing", "d") == "d"
    assert h.get_all("x-missing") == []
    assert "x-missing" not in h
    assert 42 not in h  # not a str: simply absent


def test_an_empty_value_is_present() -> None:
    h = Headers([("x-empty", "")])
    assert "x-empty" in h
    assert h["x-empty"] == ""


def test_multiple_values_keep_their_order() -> None:
    h = Headers([("Set-Cookie", "a=1"), ("Vary", "Accept"), ("set-cookie", "b=2")])
    h.add("SET-COOKIE", "c=3")
    assert h.get_all("set-cookie") == ["a=1", "b=2", "c=3"]
    assert h["set-cookie"] == "a=1"  # the first one
    assert list(h) == ["set-cookie", "vary", "set-cookie", "set-cookie"]
    assert len(h) == 4


def test_set_replaces_every_value_with_one() -> None:
    h = Headers([("a", "1"), ("B", "2"), ("a", "3")])
    h.set("A", "9")
    assert h.items() == [("b", "2"), ("a", "9")]


def test_remove_drops_every_value_and_ignores_a_missing_name() -> None:
    h = Headers([("a", "1"), ("b", "2"), ("A", "3")])
    h.remove("A")
    assert h.items() == [("b", "2")]
    h.remove("nope")
    assert h.items() == [("b", "2")]


def test_setdefault() -> None:
    h = Headers([("Content-Type", "text/html")])
    assert h.setdefault("content-type", "text/plain") == "text/html"
    assert h.get_all("content-type") == ["text/html"]
    assert h.setdefault("X-New", "v") == "v"
    assert h.items() == [("content-type", "text/html"), ("x-new", "v")]


def test_items_is_a_copy() -> None:
    h = Headers([("a", "1")])
    items = h.items()
    items.append(("b", "2"))
    assert h.items() == [("a", "1")]


def test_construct_from_a_mapping_and_from_bytes_pairs() -> None:
    assert Headers({"Host": "example.com"}).items() == [("host", "example.com")]
    assert Headers([(b"Host", b"example.com")]).items() == [("host", "example.com")]
    assert Headers(None) == Headers() == Headers([])


def test_construct_from_another_headers_copies_it() -> None:
    original = Headers([("ab", "1"), ("Set-Cookie", "x"), ("set-cookie", "y")])
    copy = Headers(original)
    assert copy == original
    copy.add("c", "3")
    assert "c" not in original


def test_raw_round_trips_every_latin1_byte() -> None:
    every_high_byte = bytes(range(0x80, 0x100))
    visible = bytes(range(0x20, 0x7F))
    pairs = [(b"X-Obs-Text", every_high_byte), (b"x-visible", visible), (b"x-empty", b"")]
    h = Headers(pairs)
    assert h.raw() == [
        (b"x-obs-text", every_high_byte),
        (b"x-visible", visible),
        (b"x-empty", b""),
    ]
    assert h["x-obs-text"] == every_high_byte.decode("latin-1")
    assert Headers(h.raw()) == h


def test_equality() -> None:
    a = Headers([("A", "1"), ("b", "2")])
    assert a == Headers([("a", "1"), ("B", "2")])
    assert a != Headers([("a", "1")])
    assert a != Headers([("a", "1"), ("b", "3")])
    # Order is part of the value (the order of repeated fields carries meaning).
    assert a != Headers([("b", "2"), ("a", "1")])
    assert a != [("a", "1"), ("b", "2")]
    with pytest.raises(TypeError):
        hash(a)


def test_repr_shows_the_pairs() -> None:
    assert repr(Headers([("A", "1")])) == "Headers([('a', '1')])"


# -- Body -------------------------------------------------------------------------------------


class Chunks:
    """An async iterable of chunks that records how many were pulled."""

    def __init__(self, *chunks: bytes) -> None:
        self.chunks = chunks
        self.pulled = 0

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._gen()

    async def _gen(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks:
            await trio.lowlevel.checkpoint()
            self.pulled += 1
            yield chunk


async def test_read_whole_body_from_bytes() -> None:
    body = Body(b"hello")
    assert body.length == 5
    assert await body.read() == b"hello"


async def test_read_whole_body_from_other_buffers() -> None:
    assert await Body(bytearray(b"ab")).read() == b"ab"
    assert await Body(memoryview(b"cd")).read() == b"cd"


async def test_empty_body() -> None:
    body = Body()
    assert body.length == 0
    assert await body.read() == b""
    assert [c async for c in Body(b"")] == []


async def test_read_whole_body_from_chunks() -> None:
    source = Chunks(b"ab", b"", b"cd")
    body = Body(source, length=4)
    assert body.length == 4
    assert await body.read() == b"abcd"
    assert source.pulled == 3


async def test_length_is_unknown_for_chunks_without_one() -> None:
    assert Body(Chunks(b"x")).length is None


async def test_read_with_max_bytes_at_the_limit_passes() -> None:
    assert await Body(b"12345").read(max_bytes=5) == b"12345"
    assert await Body(Chunks(b"12", b"345")).read(max_bytes=5) == b"12345"
    assert await Body(b"").read(max_bytes=0) == b""


async def test_content_length_over_the_limit_is_refused_before_reading() -> None:
    source = Chunks(b"x" * 10)
    body = Body(source, length=10)
    with pytest.raises(BodyTooLarge, match="10 bytes exceeds 9 bytes"):
        await body.read(max_bytes=9)
    assert source.pulled == 0  # not a byte pulled from the connection
    # Nothing was consumed, so the body can still be read with a larger limit.
    assert await body.read(max_bytes=10) == b"x" * 10


async def test_streamed_body_over_the_limit_stops_as_soon_as_it_is_over() -> None:
    source = Chunks(b"aaaa", b"bbbb", b"cccc", b"dddd")
    with pytest.raises(BodyTooLarge, match="exceeds 6 bytes"):
        await Body(source).read(max_bytes=6)
    assert source.pulled == 2


async def test_a_body_longer_than_its_stated_length_is_still_counted() -> None:
    source = Chunks(b"x" * 5, b"y" * 5)
    with pytest.raises(BodyTooLarge):
        await Body(source, length=4).read(max_bytes=8)


async def test_streaming_pulls_one_chunk_at_a_time() -> None:
    source = Chunks(b"a", b"b", b"c")
    got = []
    async for chunk in Body(source):
        got.append(chunk)
        assert source.pulled == len(got)  # nothing read ahead of the consumer
    assert got == [b"a", b"b", b"c"]


@pytest.mark.parametrize("make", [lambda: Body(b"data"), lambda: Body(Chunks(b"da", b"ta"))])
async def test_a_body_is_consumed_once(make: object) -> None:
    assert callable(make)
    body: Body = make()
    assert await body.read() == b"data"
    with pytest.raises(RuntimeError, match="already read"):
        await body.read()
    with pytest.raises(RuntimeError, match="already read"):
        body.__aiter__()


async def test_iterating_consumes_too() -> None:
    body = Body(Chunks(b"a"))
    assert [c async for c in body] == [b"a"]
    with pytest.raises(RuntimeError, match="already read"):
        await body.read()


async def test_json_parses_the_body() -> None:
    value = {"name": "J\u00f6rg", "n": [1, 2.5, None, True]}
    assert await Body(json.dumps(value).encode()).json() == value
    assert await Body(Chunks(b'{"a"', b": 1}")).json() == {"a": 1}


async def test_json_has_a_size_limit() -> None:
    with pytest.raises(BodyTooLarge):
        await Body(b"[1, 2, 3]").json(max_bytes=8)
    assert await Body(b"[1, 2, 3]").json(max_bytes=9) == [1, 2, 3]
    with pytest.raises(BodyTooLarge):
        await Body(b"0" * ((1 << 20) + 1)).json()  # default: 1 MiB
    assert await Body(b" " * ((1 << 20) - 1) + b"0").json() == 0


@pytest.mark.parametrize("data", [b"{", b"", b"\xff\xfe\xfa", b"[1,]"])
async def test_json_that_is_not_json_raises_value_error(data: bytes) -> None:
    with pytest.raises(ValueError):
        await Body(data).json()


# -- Request ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "path", "query"),
    [
        ("/", "/", ""),
        ("/items", "/items", ""),
        ("/items?page=2&x=y", "/items", "page=2&x=y"),
        ("/items?", "/items", ""),
        ("/a?b=1?c=2", "/a", "b=1?c=2"),
        ("/a%3Fb?c", "/a%3Fb", "c"),
        ("*", "*", ""),
    ],
)
def test_request_splits_path_and_query(target: str, path: str, query: str) -> None:
    request = Request("GET", target)
    assert (request.target, request.path, request.query) == (target, path, query)


@pytest.mark.parametrize(
    ("target", "authority", "path", "query"),
    [
        ("/a?b", None, "/a", "b"),
        ("http://api.example/items?page=2", "api.example", "/items", "page=2"),
        ("HTTP://api.example:8080", "api.example:8080", "/", ""),
        ("https://[::1]:8443/x#frag", "[::1]:8443", "/x", ""),
        ("http://user:pw@api.example/x", "api.example", "/x", ""),
        ("http://api.example?q=1", "api.example", "/", "q=1"),
        ("http:///no-host", None, "/no-host", ""),
        ("ftp://files.example/x", None, "ftp://files.example/x", ""),  # not ours: kept whole
        ("http://[::1/x", None, "http://[::1/x", ""),  # not a URI: kept whole, no error
    ],
)
def test_request_takes_an_absolute_form_target_apart(
    target: str, authority: str | None, path: str, query: str
) -> None:
    request = Request("GET", target)
    assert (request.authority, request.path, request.query) == (authority, path, query)
    assert request.target == target  # as sent


def test_request_defaults_and_fresh_containers() -> None:
    a, b = Request("GET", "/"), Request("GET", "/")
    assert (a.http_version, a.scheme, a.peer_address) == ("1.1", "http", None)
    assert a.headers == Headers()
    assert a.body.length == 0
    a.extensions["k"] = 1
    a.headers.add("x", "y")
    assert b.extensions == {}
    assert b.headers == Headers()
    assert a.body is not b.body


def test_request_path_and_query_are_not_init_arguments() -> None:
    with pytest.raises(TypeError):
        Request("GET", "/", path="/other")  # type: ignore[call-arg]


async def test_request_json() -> None:
    request = Request("POST", "/", body=Body(b'{"a": [1]}'))
    assert await request.json() == {"a": [1]}
    with pytest.raises(BodyTooLarge):
        await Request("POST", "/", body=Body(b"[1]")).json(max_bytes=2)


# -- Response ---------------------------------------------------------------------------------


def test_response_text() -> None:
    r = Response.text("h\u00e9llo \u20ac", 201)
    assert r.status == 201
    assert r.reason == "Created"
    assert r.body == "h\u00e9llo \u20ac".encode()
    assert r.headers.get_all("content-type") == ["text/plain; charset=utf-8"]


def test_response_json_is_compact_utf8() -> None:
    r = Response.json({"a": [1, "\u00e9"], "b": None})
    assert r.status == 200
    assert r.body == '{"a":[1,"\u00e9"],"b":null}'.encode()
    assert r.headers["content-type"] == "application/json"


@pytest.mark.parametrize("value", [float("nan"), float("inf"), [float("-inf")]])
def test_response_json_refuses_what_json_cannot_say(value: object) -> None:
    # json.dumps writes NaN/Infinity by default, which no JSON parser has to accept.
    with pytest.raises(ValueError):
        Response.json(value)


def test_response_bytes() -> None:
    r = Response.bytes(bytearray(b"\x00\x01"))
    assert r.body == b"\x00\x01"
    assert type(r.body) is bytes
    assert r.headers["content-type"] == "application/octet-stream"
    r = Response.bytes(b"GIF89a", 202, content_type="image/gif")
    assert (r.status, r.headers["content-type"]) == (202, "image/gif")


@pytest.mark.parametrize(
    "make",
    [
        lambda h: Response.text("x", headers=h),
        lambda h: Response.json(1, headers=h),
        lambda h: Response.bytes(b"x", headers=h),
    ],
)
def test_a_given_content_type_wins_and_other_headers_are_kept(make: object) -> None:
    assert callable(make)
    r: Response = make([("Content-Type", "text/csv"), ("X-Extra", "1")])
    assert r.headers.get_all("content-type") == ["text/csv"]
    assert r.headers["x-extra"] == "1"


def test_helpers_take_a_headers_object() -> None:
    given = Headers([("X-A", "1"), ("x-b", "2")])
    r = Response.text("x", headers=given)
    assert r.headers.items() == [
        ("x-a", "1"),
        ("x-b", "2"),
        ("content-type", r.headers["content-type"]),
    ]
    assert "content-type" not in given  # the caller's headers are not changed


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        (100, "Continue"),
        (101, "Switching Protocols"),
        (200, "OK"),
        (204, "No Content"),
        (301, "Moved Permanently"),
        (400, "Bad Request"),
        (404, "Not Found"),
        (405, "Method Not Allowed"),
        (408, "Request Timeout"),
        (413, "Request Entity Too Large"),
        (414, "Request-URI Too Long"),
        (431, "Request Header Fields Too Large"),
        (500, "Internal Server Error"),
        (501, "Not Implemented"),
        (503, "Service Unavailable"),
        (505, "HTTP Version Not Supported"),
    ],
)
def test_standard_reason_phrases(status: int, reason: str) -> None:
    assert Response(status).reason == reason


@pytest.mark.parametrize("status", [299, 499, 599, 600, 999])
def test_an_unregistered_status_still_gets_a_non_empty_reason(status: int) -> None:
    reason = Response(status).reason
    assert reason
    assert reason.isprintable() and reason.isascii()


def test_an_explicit_reason_is_kept() -> None:
    assert Response(200, reason="Fine").reason == "Fine"
    assert Response(418, Headers(), b"", "Short and stout").reason == "Short and stout"


def test_changing_the_status_changes_the_default_reason() -> None:
    # Middleware that rewrites the status must not send "503 OK".
    r = Response.text("x")
    r.status = 503
    assert r.reason == "Service Unavailable"
    assert attrs.evolve(Response(200), status=404).reason == "Not Found"


def test_an_explicit_reason_survives_a_status_change_and_can_be_set() -> None:
    r = Response(200, reason="Fine")
    r.status = 201
    assert r.reason == "Fine"
    assert attrs.evolve(r, status=202).reason == "Fine"
    r.reason = "Made"
    assert r.reason == "Made"


def test_response_defaults() -> None:
    r = Response()
    assert (r.status, r.reason, r.body) == (200, "OK", b"")
    assert r.headers == Headers()
    assert Response().headers is not r.headers
