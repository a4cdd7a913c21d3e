"""docs/tutorial/shared-state.md: its commands print what the page shows, and its Try this holds.

The examples run under a MockClock, so the timings they print are exact and machine-independent.
The console blocks are run as the page writes them; the Try this items are run through the
examples' flags, or by making the edit the page describes to the example's source.
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

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "tutorial" / "shared-state.md"
EXAMPLES = ROOT / "examples"
CONSOLE = re.compile(r"^```console\n(.*?)^```", re.MULTILINE | re.DOTALL)


def page() -> str:
    return PAGE.read_text(encoding="utf-8")


def console_commands(text: str) -> list[tuple[str, list[str]]]:
    """Each ``$`` line of the page's console blocks, with the lines shown under it."""
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


def test_the_page_shows_both_examples_run() -> None:
    """A guard: a page whose console blocks the next test stopped finding would pass vacuously."""
    commands = [command for command, _ in console_commands(page())]
    assert commands == [
        "python examples/shared_state_broken.py",
        "python examples/shared_state_fixed.py",
    ]


def test_every_command_prints_what_the_page_shows() -> None:
    for command, shown in console_commands(page()):
        assert run(command) == shown, command


def test_the_examples_are_included_as_python() -> None:
    text = page()
    for name in ("shared_state_broken.py", "shared_state_fixed.py"):
        assert f'```python\n--8<-- "examples/{name}"\n```' in text


def test_try_this_fewer_deposits_the_convoy_scales_with_the_tasks() -> None:
    text = page()
    assert (
        "`python examples/shared_state_broken.py --deposits 20`. The locked run takes 10.0 s"
        in (" ".join(text.split()))
    )
    broken = run("python examples/shared_state_broken.py --deposits 20")
    assert broken[1] == "lock held across the await: 20 deposits took 10.0s, total 200 of 200"
    fixed = run("python examples/shared_state_fixed.py --deposits 20")
    assert [line.split(": ", 1)[1] for line in fixed] == [
        "20 deposits took 0.5s, total 200 of 200"
    ] * 2


def test_try_this_a_limit_on_the_call_slows_the_calls_not_the_dict() -> None:
    assert "Both fixes now take 5.0 s" in " ".join(page().split())
    out = run("python examples/shared_state_fixed.py --limit 10")
    assert out == [
        "authorize, then update with no await: 100 deposits took 5.0s, total 1000 of 1000",
        "one task owns the accounts: 100 deposits took 5.0s, total 1000 of 1000",
    ]


def edited_broken_example(old: str, new: str) -> ModuleType:
    """examples/shared_state_broken.py with the edit a Try this describes, as a module."""
    source = (EXAMPLES / "shared_state_broken.py").read_text(encoding="utf-8")
    assert source.count(old) == 1, old
    module = ModuleType("edited_shared_state_broken")
    exec(compile(source.replace(old, new), "edited_shared_state_broken", "exec"), module.__dict__)
    return module


def run_main(module: ModuleType, capsys: pytest.CaptureFixture[str]) -> list[str]:
    trio.run(module.main, clock=trio.testing.MockClock(autojump_threshold=0))
    return capsys.readouterr().out.splitlines()


def test_try_this_reading_after_the_await_loses_nothing(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert "The no lock run now prints `total 1000 of 1000` in 0.5s" in " ".join(page().split())
    module = edited_broken_example(
        "    balance = bank[account]  # read ...\n"
        "    await authorize(account, amount)  # ... every other task runs here ...\n",
        "    await authorize(account, amount)\n    balance = bank[account]\n",
    )
    assert run_main(module, capsys)[0] == "no lock: 100 deposits took 0.5s, total 1000 of 1000"


def test_try_this_authorizing_before_the_lock_ends_the_convoy(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert "The locked run now takes 0.5 s too" in " ".join(page().split())
    module = edited_broken_example(
        "    async with lock:\n"
        "        balance = bank[account]\n"
        "        await authorize(account, amount)  # the mistake: half a second with the lock"
        " held\n",
        "    await authorize(account, amount)\n"
        "    async with lock:\n"
        "        balance = bank[account]\n",
    )
    out = run_main(module, capsys)
    assert out[1] == "lock held across the await: 100 deposits took 0.5s, total 1000 of 1000"


def test_the_unedited_examples_run_in_process_too(capsys: pytest.CaptureFixture[str]) -> None:
    """The edit helper with no edit gives the page's output: the edits above are the change."""
    module = edited_broken_example("AMOUNT = 10\n", "AMOUNT = 10\n")
    assert run_main(module, capsys) == console_commands(page())[0][1]
