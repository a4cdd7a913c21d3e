"""The API reference renders what the docstrings say.

One ``mkdocs build --strict`` per session (a module-scoped fixture) checks the built HTML: no
Sphinx role is left as literal text, cross-references are links, the protocol dunders
(``Service.__call__``, ``JoinHandle.__await__``, ``JoinSet.__aiter__``) are shown, and classes
show their constructor's parameters, attrs classes included. Faster tests load a small package
of their own through Griffe and tools/griffe_runtime.py, the extension that does the work.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXTENSION = ROOT / "tools" / "griffe_runtime.py"
LITERAL_ROLE = re.compile(r":(?:py:)?(?:class|func|meth|attr|data|exc|mod|obj|const):")
ROLE_LINK = re.compile(r'<a class="autorefs autorefs-internal sphinx-role"[^>]*href="([^"]*)"')


def _need(module: str) -> None:
    if importlib.util.find_spec(module) is None:
        message = f"needs {module}: pip install -e '.[docs]'"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", html))


def _section(html: str, identifier: str) -> str:
    """The HTML of one rendered object, up to the next heading of the same or a higher level."""
    start = re.search(rf'<h(\d) id="{re.escape(identifier)}"', html)
    assert start, f"{identifier} is not rendered"
    level = int(start.group(1))
    end = re.compile(rf'<h[1-{level}] id="').search(html, start.end())
    return html[start.start() : end.start() if end else len(html)]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    _need("mkdocs")
    _need("mkdocstrings_handlers.python")
    out = tmp_path_factory.mktemp("site")
    build = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(out)],
        cwd=ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=50,
    )
    assert build.returncode == 0, build.stdout + build.stderr
    return out


def _page(site: Path, name: str) -> str:
    return (site / "reference" / name / "index.html").read_text(encoding="utf-8")


def test_no_sphinx_role_is_left_as_text(site: Path) -> None:
    pages = sorted((site / "reference").rglob("*.html"))
    assert len(pages) > 10
    left = {
        str(page.relative_to(site)): LITERAL_ROLE.findall(page.read_text(encoding="utf-8"))
        for page in pages
    }
    assert {page: found for page, found in left.items() if found} == {}


def test_roles_become_links_within_and_across_pages(site: Path) -> None:
    links = [
        href
        for page in (site / "reference").rglob("*.html")
        for href in ROLE_LINK.findall(page.read_text(encoding="utf-8"))
    ]
    assert len(links) > 100
    assert all("#runtime." in href for href in links)
    # JoinHandle's ":class:`JoinError`" links on its own page; HttpServer's
    # ":class:`~runtime.net.Server`" links to the net page, titled by the last name.
    handle = _section(_page(site, "rt"), "runtime.rt.JoinHandle")
    assert re.search(
        r'sphinx-role"[^>]*href="#runtime\.rt\.JoinError"><code>JoinError</code>', handle
    )
    server = _section(_page(site, "http"), "runtime.http.HttpServer")
    assert re.search(r'href="\.\./net/#runtime\.net\.Server"><code>Server</code></a>', server)


def test_protocol_dunders_are_shown(site: Path) -> None:
    middleware = _page(site, "middleware")
    assert 'id="runtime.service.Service.__call__"' in _section(
        middleware, "runtime.service.Service"
    )
    assert 'id="runtime.service.Timeout.__call__"' in middleware
    rt = _page(site, "rt")
    assert 'id="runtime.rt.JoinHandle.__await__"' in rt
    assert 'id="runtime.rt.JoinSet.__aiter__"' in rt
    # Private names stay hidden, and so do dunders that are no protocol a user calls.
    assert not re.search(r'id="runtime\.[\w.]*\.(_[a-z]\w*|__repr__|__init__|__aexit__)"', rt)


def test_constructors_show_their_parameters(site: Path) -> None:
    net = _page(site, "net")
    # An attrs class: the __init__ attrs generates, with annotations and defaults.
    # (The signature is spaced as a formatter left it: with ruff or black installed it breaks
    # after "(", without one it does not; compare with the spaces after "(" taken out.)
    connector = _text(_section(net, "runtime.net.TcpConnector")).replace("( ", "(")
    assert "TcpConnector(connect_timeout: float | None = DEFAULT_CONNECT_TIMEOUT," in connector
    assert re.search(
        r"happy_eyeballs_delay: float = 0\.25, nodelay: bool = True,?\s*\)", connector
    )
    # A class with its own __init__: the signature, and the Args table of the class docstring.
    server = _text(_section(net, "runtime.net.Server")).replace("( ", "(")
    assert "Server(handler: Callable[[C], Awaitable[object]], listeners:" in server
    assert "Parameters: Name Type Description Default handler" in server


def test_included_examples_are_highlighted_as_python(site: Path) -> None:
    include = re.compile(r'^```(\w*)\n--8<-- "([^"]+\.py)"\n```', re.MULTILINE)
    fences = {
        (str(path.relative_to(ROOT)), file): language
        for path in (ROOT / "docs").rglob("*.md")
        for language, file in include.findall(path.read_text(encoding="utf-8"))
    }
    assert len(fences) > 10
    assert {where: lang for where, lang in fences.items() if lang != "python"} == {}
    page = (site / "tutorial" / "first-program" / "index.html").read_text(encoding="utf-8")
    block = next(b for b in page.split("<pre>") if "Run it: python examples/first_program.py" in b)
    assert '<span class="kn">import</span>' in block.split("</pre>")[0]


# --- the extension on a package of its own (no mkdocs build) --------------------------------


@pytest.fixture(scope="module")
def extension() -> ModuleType:
    _need("griffe")
    spec = importlib.util.spec_from_file_location("griffe_runtime", EXTENSION)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


PACKAGE = {
    "__init__.py": '''
        """A package.

        See :class:`~pkg.mod.Conn`, :func:`pkg.mod.open_conn`, :mod:`.mod` and
        :class:`trio.Nursery`.
        """
        from pkg.mod import Conn, open_conn
    ''',
    "mod.py": '''
        import attrs

        class Base:
            def close(self) -> None:
                """Close it."""

        class Conn(Base):
            """A connection: :meth:`send`, :meth:`close`, :attr:`size`, :meth:`!nolink`,
            :class:`the config <Config>`, :data:`LIMIT` and :meth:`missing`."""

            size: int = 0

            def send(self) -> None:
                """Like :meth:`close`, and :meth:`.Conn.send` is this one."""

        LIMIT = 3

        @attrs.frozen
        class Config:
            """Settings."""

            limit: int = 5
            names: list[str] = attrs.field(factory=list)
            _secret: str = attrs.field(default="x")
            hidden: int = attrs.field(default=0, init=False)
            strict: bool = attrs.field(default=False, kw_only=True)

        @attrs.define(init=False)
        class Manual:
            """Makes its own."""

        def open_conn() -> Conn:
            """Open a :class:`Conn`."""
            return Conn()
    ''',
}


@pytest.fixture(scope="module")
def package(extension: ModuleType, tmp_path_factory: pytest.TempPathFactory) -> Any:
    import griffe

    root = tmp_path_factory.mktemp("src")
    (root / "pkg").mkdir()
    for name, source in PACKAGE.items():
        (root / "pkg" / name).write_text(textwrap.dedent(source), encoding="utf-8")
    reference = extension.RuntimeReference()
    pkg = griffe.load("pkg", search_paths=[root], extensions=griffe.load_extensions(reference))
    pkg.reference = reference
    return pkg


def _ref(path: str, title: str) -> str:
    return f'<autoref identifier="{path}" class="sphinx-role" optional>`{title}`</autoref>'


def test_roles_resolve_like_sphinx(package: Any) -> None:
    text = package.docstring.value
    assert _ref("pkg.mod.Conn", "Conn") in text  # ~ keeps the last name
    assert _ref("pkg.mod.open_conn", "pkg.mod.open_conn()") in text  # :func: gets ()
    assert _ref("pkg.mod", "mod") in text  # a leading dot is relative
    assert "`trio.Nursery`" in text and "trio.Nursery" not in text.replace("`trio.Nursery`", "")

    conn = package["mod.Conn"].docstring.value
    assert _ref("pkg.mod.Conn.send", "send()") in conn  # the class's own member
    assert _ref("pkg.mod.Base.close", "close()") in conn  # an inherited one
    assert _ref("pkg.mod.Conn.size", "size") in conn
    assert "`nolink()`" in conn and "pkg.mod.Conn.nolink" not in conn  # ! asks for no link
    assert _ref("pkg.mod.Config", "the config") in conn  # an explicit title
    assert _ref("pkg.mod.LIMIT", "LIMIT") in conn  # the module's name, from a class
    assert "`missing()`" in conn  # resolves to nothing: plain code, no link to break

    send = package["mod.Conn.send"].docstring.value
    assert (
        send
        == f"Like {_ref('pkg.mod.Base.close', 'close()')}, and "
        + _ref("pkg.mod.Conn.send", "Conn.send()")
        + " is this one."
    )
    assert _ref("pkg.mod.Conn", "Conn") in package["mod.open_conn"].docstring.value
    assert (package.reference.linked, package.reference.plain) == (11, 3)


def test_attrs_classes_get_their_generated_init(package: Any) -> None:
    init = package["mod.Config"].members["__init__"]
    shown = [(p.name, str(p.default), p.kind.value) for p in init.parameters][1:]
    assert shown == [
        ("limit", "5", "positional or keyword"),
        ("names", "list()", "positional or keyword"),
        ("secret", "'x'", "positional or keyword"),  # attrs drops the underscore
        ("strict", "False", "keyword-only"),  # init=False leaves "hidden" out
    ]
    assert "__init__" not in package["mod.Manual"].members  # init=False: its own, or none
    assert "__init__" not in package["mod.Conn"].members  # not an attrs class
