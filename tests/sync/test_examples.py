"""The pipeline tutorial's examples run and print what the tutorial says.

Both run in-process as ``__main__``. The broken one proves its hang without hanging: it runs
under a mock clock, so its 60-second watchdog fires as soon as every task is stuck.
"""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent.parent / "examples"

TOTALS = ["alpha: 6 words", "beta: 3 words", "gamma: 10 words"]


def run_example(name: str, capsys: pytest.CaptureFixture[str]) -> list[str]:
    runpy.run_path(str(EXAMPLES / name), run_name="__main__")
    return capsys.readouterr().out.splitlines()


def test_pipeline_fixed_shuts_itself_down(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_example("pipeline_fixed.py", capsys) == [
        *TOTALS,
        "done after 0.4s: every stage finished and closed its channel",
    ]


def test_pipeline_broken_hangs_until_the_watchdog(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_example("pipeline_broken.py", capsys) == [
        *TOTALS,
        "stuck for 60s: the pages channel still has 1 open sender, "
        "so count_words waits for more pages forever",
    ]
