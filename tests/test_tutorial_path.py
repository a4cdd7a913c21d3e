"""The tutorial is one path: from the first page, "Next" links alone visit every step, in the
order of the nav, and each step says what the learner now knows and has a Try this."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TUTORIAL = ROOT / "docs" / "tutorial"
NEXT = re.compile(r"^Next: .*?\[[^\]]+\]\(([^)]+)\)", re.MULTILINE | re.DOTALL)


def _nav_steps() -> list[str]:
    text = (ROOT / "mkdocs.yml").read_text()
    section = text.split("\n  - Tutorial:\n", 1)[1].split("\n  - ", 1)[0]
    pages = re.findall(r"(?:^|: )tutorial/([\w-]+\.md)$", section, re.MULTILINE)
    return [page for page in pages if page != "index.md"]


def _next_of(page: str) -> str | None:
    text = (TUTORIAL / page).read_text()
    last = text.rstrip().rsplit("\n\n", 1)[-1]  # the closing paragraph
    found = NEXT.search(last) or NEXT.search(text.rsplit("## What you now know", 1)[-1])
    return found.group(1) if found else None


def test_next_links_alone_walk_the_whole_path_in_nav_order() -> None:
    steps = _nav_steps()
    assert steps[0] == "first-program.md" and steps[-1] == "simulate.md"
    walked = [steps[0]]
    while (following := _next_of(walked[-1])) is not None and following.endswith(".md"):
        if following.startswith("../"):
            break  # the end of the path points out of the tutorial
        assert following not in walked, f"{walked[-1]} loops back to {following}"
        walked.append(following)
    assert walked == steps


def test_every_step_says_what_the_learner_now_knows() -> None:
    for step in _nav_steps():
        text = (TUTORIAL / step).read_text()
        assert "\n## What you now know\n" in text, step


def test_the_index_lists_the_steps_in_path_order() -> None:
    index = (TUTORIAL / "index.md").read_text()
    listed = re.findall(r"^\d+\. \[[^\]]+\]\(([^)]+)\)", index, re.MULTILINE)
    assert listed == _nav_steps()


def test_the_home_page_and_the_tutorial_index_lead_to_the_first_step() -> None:
    home = (ROOT / "docs" / "index.md").read_text()
    assert NEXT.search(home.rstrip().rsplit("\n\n", 1)[-1]).group(1) == "tutorial/index.md"  # type: ignore[union-attr]
    assert _next_of("index.md") == "first-program.md"
