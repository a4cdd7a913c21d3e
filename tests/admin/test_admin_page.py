"""The admin page as a document: self-contained, data as text, polling ``/tasks``; served at
``/`` by the admin server. Its behaviour in a browser is tests/admin/test_admin_browser.py."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import trio

from runtime.admin import serve_admin
from runtime.admin._page import PAGE, render_page
from runtime.http import Client
from runtime.rt import open_runtime


class _Document(HTMLParser):
    """The tags, attributes and inline script and style of a page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.script = ""
        self.style = ""
        self._in: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in = tag if tag in ("script", "style") else None

    def handle_endtag(self, tag: str) -> None:
        self._in = None

    def handle_data(self, data: str) -> None:
        if self._in == "script":
            self.script += data
        elif self._in == "style":
            self.style += data


def _parse(page: str) -> _Document:
    document = _Document()
    document.feed(page)
    document.close()
    return document


def test_page_loads_nothing_from_elsewhere() -> None:
    document = _parse(render_page())
    assert render_page().startswith("<!doctype html>")
    for tag, attrs in document.tags:
        for name in ("src", "href", "action", "srcset", "data"):
            value = attrs.get(name)
            assert value is None or value.startswith("data:"), (tag, name, value)
    assert [tag for tag, _ in document.tags].count("script") == 1
    assert "@import" not in document.style and "url(" not in document.style
    assert not re.search(r"https?:|wss?:|//[a-z0-9]", PAGE.replace("<!doctype", ""), re.I)
    policy = next(
        attrs["content"] or ""
        for tag, attrs in document.tags
        if tag == "meta" and attrs.get("http-equiv") == "Content-Security-Policy"
    )
    assert "default-src 'none'" in policy and "connect-src 'self'" in policy


def test_data_goes_into_the_page_as_text() -> None:
    script = _parse(PAGE).script
    assert ".textContent = " in script
    for unsafe in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert unsafe not in script, unsafe
    assert "new Function" not in script


def test_page_polls_tasks_every_second_and_fetches_stacks() -> None:
    script = _parse(PAGE).script
    assert re.search(r'fetchJson\("tasks"\)', script)
    assert re.search(r'fetch\(url, \{ cache: "no-store"', script)
    assert 'INTERVAL_MS = Math.max(200, 1000 * (parseFloat(params.get("interval")) || 1))' in (
        script
    )
    assert "setTimeout(poll, INTERVAL_MS)" in script
    assert '"tasks/" + encodeURIComponent(id) + "/stack"' in script
    assert "r.status === 404" in script


def test_render_page_escapes_the_title() -> None:
    page = render_page('<script>alert("x") & co')
    escaped = "&lt;script&gt;alert(&quot;x&quot;) &amp; co"
    assert page.count(escaped) == 2  # the <title> and the heading
    assert "<script>alert" not in page
    assert "__ADMIN_PAGE_TITLE__" not in page
    assert render_page().count("<title>trio-runtime admin</title>") == 1


async def test_admin_server_serves_the_page_at_the_root() -> None:
    with trio.fail_after(10):
        async with open_runtime() as rt, trio.open_nursery() as nursery, Client() as client:
            admin = await nursery.start(serve_admin, "127.0.0.1", 0)
            response = await client.get(f"{admin.url}/")
            rt.shutdown()
    assert response.status == 200
    assert response.headers.get("content-type") == "text/html; charset=utf-8"
    assert bytes(response.body).decode() == render_page()
