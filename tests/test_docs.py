"""Every ```python block in README.md and docs/ runs here, so the docs can't rot.

Each block is a complete program. It is executed in-process as ``__main__`` in a fresh
namespace, and must finish on its own (use ``trio.testing.MockClock`` for anything that waits).
Blocks that include an example file through ``--8<--`` are covered by that example's own test.

A block followed by "It prints:" and a ```text block must print exactly that text: the
output shown in the docs is checked too.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
FENCE = re.compile(r"^```python[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
SHOWN = re.compile(r"\s*It prints:\s*\n```text\n(.*?)^```", re.MULTILINE | re.DOTALL)


def _snippets() -> list[tuple[str, str, str | None]]:
    found = []
    for path in [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]:
        text = path.read_text(encoding="utf-8")
        for index, match in enumerate(FENCE.finditer(text)):
            code = match.group(1)
            if code.lstrip().startswith("--8<--"):
                continue
            shown = SHOWN.match(text, match.end())
            expected = shown.group(1) if shown else None
            found.append((f"{path.relative_to(ROOT)}#{index}", code, expected))
    return found


SNIPPETS = _snippets()


def test_docs_have_snippets() -> None:
    assert len(SNIPPETS) > 0


@pytest.mark.parametrize(("where", "code", "expected"), SNIPPETS, ids=[w for w, *_ in SNIPPETS])
def test_snippet_runs(
    where: str,
    code: str,
    expected: str | None,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(ROOT)  # snippets may name files such as examples/echo_server.py
    namespace = {"__name__": "__main__", "__file__": where}
    exec(compile(code, where, "exec"), namespace)
    if expected is not None:
        assert capsys.readouterr().out == expected, "the output the docs show"


def test_shown_outputs_are_found() -> None:
    assert any(expected is not None for *_, expected in SNIPPETS)
