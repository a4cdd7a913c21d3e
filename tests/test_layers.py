"""Lower layers never import higher ones (DESIGN.md). This test reads every import in runtime/."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "runtime"

# Lowest first, as in DESIGN.md. A module may import its own layer and any layer listed
# before it. ``testing`` stands beside the stack: it may import any layer, no layer imports it.
ORDER = ["rt", "time", "sync", "io", "net", "service", "metrics", "http", "admin", "proxy"]
BESIDE = "testing"
RANK = {name: rank for rank, name in enumerate(ORDER)}
RANK[BESIDE] = len(ORDER)  # above everything: nothing below may import it

DESIGN = PACKAGE.parent.parent / "shared" / "DESIGN.md"


def _layer_of_module(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "runtime" or len(parts) < 2:
        return None
    return parts[1] if parts[1] in RANK else None


def _imports(path: Path, package: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    rel = path.relative_to(package.parent).with_suffix("")
    package_parts = list(rel.parts[:-1])
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package_parts[: len(package_parts) - (node.level - 1)]
                module = ".".join([*base, *(node.module.split(".") if node.module else [])])
                if not node.module:
                    found.extend((node.lineno, f"{module}.{a.name}") for a in node.names)
                    continue
            else:
                module = node.module or ""
            found.append((node.lineno, module))
    return found


def _violations(package: Path = PACKAGE) -> list[str]:
    problems = []
    for path in sorted(package.rglob("*.py")):
        rel = path.relative_to(package)
        if len(rel.parts) < 2 or rel.parts[0] not in RANK:
            continue  # runtime/__init__.py and __main__.py sit on top of everything
        own = rel.parts[0]
        for lineno, module in _imports(path, package):
            target = _layer_of_module(module)
            if target is not None and RANK[target] > RANK[own]:
                problems.append(f"runtime/{rel}:{lineno} ({own}) imports {module} ({target})")
    return problems


def test_no_upward_imports() -> None:
    assert _violations() == []


def test_checker_sees_an_upward_import(tmp_path: Path) -> None:
    fake = tmp_path / "runtime"
    (fake / "rt").mkdir(parents=True)
    (fake / "rt" / "bad.py").write_text("from ..net import serve\nimport runtime.service\n")
    (fake / "net").mkdir()
    (fake / "net" / "fine.py").write_text("from ..rt import spawn\nfrom . import _x\n")
    assert _violations(fake) == [
        "runtime/rt/bad.py:1 (rt) imports runtime.net (net)",
        "runtime/rt/bad.py:2 (rt) imports runtime.service (service)",
    ]


def test_every_package_in_runtime_is_a_known_layer() -> None:
    packages = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()}
    assert packages <= set(RANK), f"add {packages - set(RANK)} to ORDER (and to DESIGN.md)"


def test_the_order_is_the_one_design_md_states() -> None:
    if not DESIGN.exists():
        import pytest

        pytest.skip(f"{DESIGN} is not beside this checkout")
    text = DESIGN.read_text(encoding="utf-8")
    assert "The order, bottom up: " + ", ".join(ORDER) + "." in text.replace("\n", " ")


def test_star_import_does_not_shadow_the_stdlib() -> None:
    import sys

    import runtime

    namespace: dict[str, object] = {}
    exec("from runtime import *", namespace)
    shadowed = {name for name in namespace if name in sys.stdlib_module_names}
    assert shadowed == set()
    assert set(runtime.__all__) <= set(dir(runtime))
