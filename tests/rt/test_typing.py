"""spawn's arguments are type-checked against the function (TypeVarTuple, as Trio does)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

SNIPPET = """
import runtime

async def work(x: int, y: str) -> float:
    return 1.0

async def main() -> None:
    rt = runtime.current()
    ok: runtime.JoinHandle[float] = runtime.spawn(work, 1, "a")
    runtime.spawn(work, "1", "a")  # line 10: wrong type
    rt.spawn(work, 1)  # line 11: missing argument
    async with runtime.JoinSet[float]() as tasks:
        tasks.spawn(work, 1, 2)  # line 13: wrong type
    await runtime.spawn_blocking(len, 3)  # line 14: wrong type
    await ok
"""


def test_spawn_arguments_are_checked_by_mypy(tmp_path: Path) -> None:
    api = pytest.importorskip("mypy.api")
    source = tmp_path / "snippet.py"
    source.write_text(textwrap.dedent(SNIPPET))
    out, _, _ = api.run(
        ["--strict", "--no-error-summary", "--cache-dir", str(tmp_path / "cache"), str(source)]
    )
    lines = sorted(int(line.split(":")[1]) for line in out.splitlines() if ": error:" in line)
    assert lines == [10, 11, 13, 14], out
