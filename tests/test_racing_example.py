"""docs/tutorial/racing.md: its command prints what the page shows, and its Try this holds.

examples/racing.py runs under a MockClock, so its timings are exact and machine-independent.
The console block is run as the page writes it; the Try this items run through the example's
flags, or by making the edit the page describes to the example's source.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
import trio
import trio.testing

import runtime
from runtime.rt import ShutdownError

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "tutorial" / "racing.md"
EXAMPLE = ROOT / "examples" / "racing.py"
CONSOLE = re.compile(r"^```console\n(.*?)^```", re.MULTILINE | re.DOTALL)


def page() -> str:
    return PAGE.read_text(encoding="utf-8")


def prose() -> str:
    """The page with its line breaks undone, to find a sentence that wraps."""
    return " ".join(page().split())


def console_commands(text: str) -> list[tuple[str, list[str]]]:
    commands: list[tuple[str, list[str]]] = []
    for block in CONSOLE.findall(text):
        for line in block.splitlines():
            if line.startswith("$ "):
                commands.append((line[2:], []))
            else:
                commands[-1][1].append(line)
    return commands


def run(command: str) -> list[str]:
    argv = shlex.split(command)
    assert argv[0] == "python"
    done = subprocess.run(
        [sys.executable, *argv[1:]],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert done.stderr == ""
    return done.stdout.splitlines()


def shown_output() -> list[str]:
    ((command, shown),) = console_commands(page())
    assert command == "python examples/racing.py"
    return shown


def test_the_command_prints_what_the_page_shows() -> None:
    assert len(shown_output()) == 6
    assert run("python examples/racing.py") == shown_output()


def test_the_example_is_included_as_python() -> None:
    assert '```python\n--8<-- "examples/racing.py"\n```' in page()


def test_try_this_more_patience_gets_the_answer() -> None:
    line = "answer or timeout: 42 after 0.5s"
    assert f"the second line reads `{line}`" in prose()
    out = run("python examples/racing.py --patience 1")
    assert out[1] == line
    assert out[:1] + out[2:] == shown_output()[:1] + shown_output()[2:]


def test_try_this_unshielded_goodbyes_never_happen() -> None:
    line = "first of three: mirror-b won; goodbyes from nobody; returned after 0.10s"
    assert f"the first line reads `{line}`" in prose()
    out = run("python examples/racing.py --no-shield")
    assert out == [line, *shown_output()[1:]]


def edited_example(old: str, new: str) -> ModuleType:
    """examples/racing.py with the edit a Try this describes, as a module."""
    source = EXAMPLE.read_text(encoding="utf-8")
    assert source.count(old) == 1, old
    module = ModuleType("edited_racing")
    exec(compile(source.replace(old, new), "edited_racing", "exec"), module.__dict__)
    return module


def run_main(module: ModuleType) -> None:
    config = runtime.RuntimeConfig(handle_signals=False)
    runtime.run(module.main, config=config, clock=trio.testing.MockClock(autojump_threshold=0))


def test_the_unedited_example_runs_in_process_too(capsys: pytest.CaptureFixture[str]) -> None:
    """The edit helper with no edit gives the page's output: the edits below are the change."""
    run_main(edited_example("T = TypeVar", "T = TypeVar"))
    assert capsys.readouterr().out.splitlines() == shown_output()


def test_try_this_an_unshielded_job_is_lost(capsys: pytest.CaptureFixture[str]) -> None:
    line = "shutdown at 1.0s: 2 jobs done (the last at 0.8s), 7 still queued, 1 lost"
    assert f"the last line reads `{line}`" in prose()
    run_main(edited_example("move_on_after(2, shield=True)", "move_on_after(2)"))
    assert capsys.readouterr().out.splitlines() == [*shown_output()[:-1], line]


def test_try_this_a_race_that_never_cancels(capsys: pytest.CaptureFixture[str]) -> None:
    assert "the first line says `returned after 0.30s`" in prose()
    assert "fails with `ShutdownError: main did not finish`" in prose()
    module = edited_example(
        "            winner.append((index, result))\n            nursery.cancel_scope.cancel()\n",
        "            winner.append((index, result))\n",
    )
    with pytest.raises(ShutdownError, match=r"^main did not finish"):
        run_main(module)
    first = capsys.readouterr().out.splitlines()[0]
    assert first == "first of three: mirror-b won; goodbyes from nobody; returned after 0.30s"


def load() -> ModuleType:
    return edited_example("T = TypeVar", "T = TypeVar")


async def test_race_returns_the_first_and_waits_for_the_losers(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """What the page says of race(): the index of the winner, and no loser outlives it."""
    example = load()
    unwound: list[str] = []

    async def after(seconds: float, name: str) -> str:
        try:
            await trio.sleep(seconds)
            return name
        finally:
            unwound.append(name)

    index, name = await example.race(lambda: after(3, "slow"), lambda: after(1, "fast"))
    assert (index, name) == (1, "fast")
    assert sorted(unwound) == ["fast", "slow"]
    assert trio.current_time() == 1


async def test_a_racer_that_raises_comes_out_in_an_exception_group(
    autojump_clock: trio.testing.MockClock,
) -> None:
    assert "inside an `ExceptionGroup`" in prose()
    example = load()
    cancelled: list[bool] = []

    async def slow() -> None:
        try:
            await trio.sleep(10)
        except trio.Cancelled:
            cancelled.append(True)
            raise

    async def broken() -> None:
        await trio.sleep(1)
        raise ConnectionError("mirror went away")

    with pytest.RaisesGroup(ConnectionError):
        await example.race(slow, broken)
    assert cancelled == [True]
    assert trio.current_time() == 1
