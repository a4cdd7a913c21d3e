"""The tutorial's example programs run and print what the tutorial says."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from collections import Counter
from pathlib import Path
from types import ModuleType

import pytest
import trio.testing

import runtime

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

# What docs/tutorial/first-program.md shows. The JoinSet lines come in the order the tasks
# finish, which the delays (10, 20, 30 ms) decide.
FIRST_PROGRAM_OUTPUT = [
    "spawned load-config",
    "got config after 0.02s",
    "finished: orders after 0.01s",
    "finished: stock after 0.02s",
    "finished: users after 0.03s",
]


def run_example(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )


def load_example(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"example_{Path(name).stem}", EXAMPLES / name)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_first_program_prints_what_the_tutorial_shows(capsys: pytest.CaptureFixture[str]) -> None:
    """The exact output, order included, with the program's sleeps on a MockClock.

    Under the real clock the finishing order rests on 10 ms gaps between sleeps, which a
    loaded machine can blur; the MockClock makes the order the delays say, every time.
    """
    example = load_example("first_program.py")
    config = runtime.RuntimeConfig(handle_signals=False)
    results = runtime.run(
        example.main, config=config, clock=trio.testing.MockClock(autojump_threshold=0)
    )
    assert capsys.readouterr().out.splitlines() == FIRST_PROGRAM_OUTPUT
    assert results == [line.removeprefix("finished: ") for line in FIRST_PROGRAM_OUTPUT[2:]]


def test_first_program_runs_as_a_script() -> None:
    """As a script, on the real clock: the same lines; the JoinSet's order is not checked."""
    out = run_example("first_program.py").stdout.splitlines()
    assert out[:2] == FIRST_PROGRAM_OUTPUT[:2]  # sequential in main: no race
    assert Counter(out[2:]) == Counter(FIRST_PROGRAM_OUTPUT[2:])
