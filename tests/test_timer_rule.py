"""One timer rule, one semaphore rule, checked on the source.

Every timer in the middleware and transport layers goes through ``runtime.time`` (the wheel):
per-request deadlines are the reason the wheel exists, so a ``trio.sleep`` or
``trio.move_on_after`` there bypasses it. Likewise every limit counts permits with the
budgeted ``runtime.sync.Semaphore``, not ``trio.Semaphore`` or ``trio.CapacityLimiter``.

The check reads the syntax tree, so it sees aliases (``import trio as t``,
``from trio import sleep as nap``) and references that are not calls (``_sleep =
trio.sleep``), and it ignores comments and docstrings.

``ALLOWED`` lets a ``runtime/net`` function keep a direct Trio timer while it is converted;
an entry that no longer matches anything fails the test, so the list only shrinks.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest

ROOT = Path(__file__).resolve().parent.parent

SCANNED = ("runtime/service", "runtime/net", "runtime/http")
"""Packages under the rule (``runtime/http`` once it exists)."""

TIMERS = frozenset(
    {"sleep", "sleep_until", "move_on_after", "move_on_at", "fail_after", "fail_at"}
)
"""Trio functions that make a timer: use ``runtime.time``'s of the same name (or ``timeout``)."""

LIMITERS = frozenset({"Semaphore", "CapacityLimiter"})
"""Trio permit counters: use ``runtime.sync.Semaphore``."""

DEADLINE_KEYWORDS = frozenset({"deadline", "relative_deadline"})
"""``trio.CancelScope`` keywords that make it a timer."""

ALLOWED: dict[tuple[str, str], str] = {}
"""``(file, function qualname) -> reason``: runtime/net only, to be emptied."""


@attrs.frozen
class Violation:
    """One use of Trio's clock or counters where the rule says ``runtime.time``/``sync``."""

    path: str
    line: int
    function: str
    what: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line} in {self.function or '<module>'}: {self.what}"


class _Finder(ast.NodeVisitor):
    """Collects violations in one module, with the qualname of the enclosing function."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.found: list[Violation] = []
        self._scope: list[str] = []
        self._trio_names: set[str] = set()  # names bound to the trio module
        self._imported: dict[str, str] = {}  # local name -> trio attribute it was imported as

    def _report(self, node: ast.AST, what: str) -> None:
        line = getattr(node, "lineno", 0)
        self.found.append(Violation(self.path, line, ".".join(self._scope), what))

    def _enter(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) -> None:
        self._scope.append(node.name)
        self.generic_visit(node)
        self._scope.pop()

    visit_FunctionDef = _enter
    visit_AsyncFunctionDef = _enter
    visit_ClassDef = _enter

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if alias.name == "trio":
                self._trio_names.add(alias.asname or "trio")

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.module != "trio":
            return
        for alias in node.names:
            if alias.name in TIMERS | LIMITERS:
                self._report(node, f"from trio import {alias.name}")
            self._imported[alias.asname or alias.name] = alias.name

    def _trio_attribute(self, node: ast.expr) -> str | None:
        """``"sleep"`` for ``trio.sleep`` (or an alias of it), else None."""
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in self._trio_names
        ):
            return node.attr
        if isinstance(node, ast.Name):
            return self._imported.get(node.id)
        return None

    def _check_reference(self, node: ast.Attribute | ast.Name) -> None:
        name = self._trio_attribute(node)
        if name in TIMERS:
            self._report(node, f"trio.{name}: use runtime.time.{name}")
        elif name in LIMITERS:
            self._report(node, f"trio.{name}: use runtime.sync.Semaphore")

    def visit_Attribute(self, node: ast.Attribute) -> None:
        self._check_reference(node)
        self.generic_visit(node)

    def visit_Name(self, node: ast.Name) -> None:
        self._check_reference(node)

    def visit_Call(self, node: ast.Call) -> None:
        if self._trio_attribute(node.func) == "CancelScope":
            for keyword in node.keywords:
                if keyword.arg in DEADLINE_KEYWORDS:
                    self._report(
                        node,
                        f"trio.CancelScope({keyword.arg}=...): use runtime.time.move_on_at "
                        "or move_on_after",
                    )
        self.generic_visit(node)


def scan(path: Path) -> list[Violation]:
    """The violations in one file."""
    finder = _Finder(path.relative_to(ROOT).as_posix())
    finder.visit(ast.parse(path.read_text(), filename=str(path)))
    return sorted(finder.found, key=lambda v: v.line)


def scanned_files() -> Iterator[Path]:
    for package in SCANNED:
        yield from sorted((ROOT / package).rglob("*.py"))


def test_every_timer_and_limit_goes_through_the_runtime() -> None:
    violations = [v for path in scanned_files() for v in scan(path)]
    unexpected = [v for v in violations if (v.path, v.function) not in ALLOWED]
    assert not unexpected, (
        "use runtime.time for timers and runtime.sync.Semaphore for limits:\n"
        + "\n".join(map(str, unexpected))
    )


def test_the_allow_list_is_for_runtime_net_only_and_every_entry_is_still_needed() -> None:
    assert all(path.startswith("runtime/net/") for path, _ in ALLOWED)
    used = {(v.path, v.function) for path in scanned_files() for v in scan(path)}
    stale = sorted(set(ALLOWED) - used)
    assert not stale, f"converted, so remove from ALLOWED in {__file__}: {stale}"


_SAMPLE = """
import trio
import trio as t
from trio import sleep as nap, CancelScope

_sleep = trio.sleep

class C:
    limit: trio.CapacityLimiter

    async def f(self):
        await t.move_on_at(1)
        await nap(1)
        with CancelScope(deadline=3), trio.CancelScope(), trio.CancelScope(relative_deadline=1):
            pass
        sem = t.Semaphore(1)
        "trio.sleep(1) in a string is fine"
        return trio.current_time()
"""


@pytest.mark.parametrize(
    ("line", "function", "what"),
    [
        (4, "", "from trio import sleep"),
        (6, "", "trio.sleep"),
        (9, "C", "trio.CapacityLimiter"),
        (12, "C.f", "trio.move_on_at"),
        (13, "C.f", "trio.sleep"),
        (14, "C.f", "trio.CancelScope(deadline=...)"),
        (14, "C.f", "trio.CancelScope(relative_deadline=...)"),
        (16, "C.f", "trio.Semaphore"),
    ],
)
def test_the_finder_sees_aliases_references_and_deadlines(
    line: int, function: str, what: str
) -> None:
    finder = _Finder("sample.py")
    finder.visit(ast.parse(_SAMPLE))
    hits = [(v.line, v.function, v.what) for v in finder.found]
    assert any(h[:2] == (line, function) and h[2].startswith(what) for h in hits), hits


def test_the_finder_reports_nothing_else() -> None:
    finder = _Finder("sample.py")
    finder.visit(ast.parse(_SAMPLE))
    assert len(finder.found) == 8, [str(v) for v in finder.found]
