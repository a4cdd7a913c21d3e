"""The benchmarks page, benchmarks/results.json and the pages they cite cannot drift apart.

benchmarks/results.json copies the figures that the docs state. Here: the tables in
docs/explanation/benchmarks.md are exactly what ``benchmarks/plot.py --markdown`` generates
from it; every figure in it is still on its cited page, on the table row or paragraph it
names; every command names a script that exists; the page's own prose quotes only ratios that
are in the file; and plot.py draws a PNG (it needs matplotlib, the ``bench`` extra).
"""

from __future__ import annotations

import importlib.util
import os
import re
import struct
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "explanation" / "benchmarks.md"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
COMMAND = re.compile(r"^python (benchmarks/[\w-]+\.py)(?: .*)?$")
NUMBER = re.compile(r"\d+(?:\.\d+)?")
RATIO = re.compile(r"(?<![\d.])\d+\.\d+x")


def _load_plot() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "benchmarks_plot", ROOT / "benchmarks" / "plot.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


plot = _load_plot()
RESULTS: dict[str, Any] = plot.load()
BENCHMARKS: list[dict[str, Any]] = RESULTS["benchmarks"]
FIGURES = [(bench, figure) for bench in BENCHMARKS for figure in bench["figures"]]
FIGURE_IDS = [
    f"{bench['name']}-{i}" for bench in BENCHMARKS for i, _ in enumerate(bench["figures"])
]


def units(text: str) -> list[str]:
    """A page's table rows, one each, and its other lines joined into paragraphs."""
    found: list[str] = []
    paragraph: list[str] = []
    for line in [*text.splitlines(), ""]:
        stripped = line.strip()
        if stripped.startswith("|") or not stripped:
            if paragraph:
                found.append(" ".join(paragraph))
                paragraph = []
            if stripped:
                found.append(stripped)
        else:
            paragraph.append(stripped)
    return found


def slugs(text: str) -> set[str]:
    """The anchors that mkdocs' toc gives the page's headings (its default slugify)."""
    found = set()
    for heading in re.findall(r"^#+\s+(.*)$", text, re.MULTILINE):
        words = re.sub(r"[^\w\s-]", "", heading).strip().lower()
        found.add(re.sub(r"[-\s]+", "-", words))
    return found


def cited(bench: dict[str, Any]) -> str:
    return (ROOT / bench["explained_in"]["page"]).read_text(encoding="utf-8")


def test_the_page_holds_exactly_the_generated_tables() -> None:
    page = PAGE.read_text(encoding="utf-8")
    start, end = page.index(plot.BEGIN), page.index(plot.END) + len(plot.END) + 1
    assert page[start:end] == plot.markdown(RESULTS)
    assert page.count(plot.BEGIN) == 1


def test_the_generated_tables_have_a_row_per_figure() -> None:
    rows = [u for u in units(plot.markdown(RESULTS)) if u.startswith("| ") and "---" not in u]
    assert len(rows) == len(FIGURES) + len(BENCHMARKS)  # one header row per table
    assert len(BENCHMARKS) == len({bench["name"] for bench in BENCHMARKS})


@pytest.mark.parametrize(("bench", "figure"), FIGURES, ids=FIGURE_IDS)
def test_every_figure_is_on_its_cited_page(bench: dict[str, Any], figure: dict[str, Any]) -> None:
    page = cited(bench)
    where = [u for u in units(page) if figure["on"] in u]
    assert where, f"{figure['on']!r} is not on {bench['explained_in']['page']}"
    assert any(figure["shown"] in u for u in where), (
        f"{figure['shown']!r} is not on the row or paragraph of {figure['on']!r} in "
        f"{bench['explained_in']['page']}: {where}"
    )
    numbers = {float(n) for n in NUMBER.findall(figure["shown"])}
    if not numbers:  # "no wrk timeouts"
        numbers = {0.0} if figure["shown"].startswith("no ") else set()
    assert set(plot.values(figure)) <= numbers, "the value is the number the page shows"


@pytest.mark.parametrize("bench", BENCHMARKS, ids=[b["name"] for b in BENCHMARKS])
def test_every_command_names_an_existing_script(bench: dict[str, Any]) -> None:
    commands = [bench["command"], *(f["command"] for f in bench["figures"] if "command" in f)]
    for command in commands:
        match = COMMAND.match(command)
        assert match, f"{command!r} is not `python benchmarks/SCRIPT.py ...`"
        assert (ROOT / match.group(1)).is_file(), f"{match.group(1)} does not exist"
        assert command.startswith(bench["command"])
    assert bench["command"] in cited(bench), "the page names the command its figures come from"


@pytest.mark.parametrize("bench", BENCHMARKS, ids=[b["name"] for b in BENCHMARKS])
def test_every_record_is_complete(bench: dict[str, Any]) -> None:
    assert bench["explained_in"]["anchor"] in slugs(cited(bench)), "the link's anchor exists"
    for figure in bench["figures"]:
        assert figure["peer"] in [*bench["peers"], "—"]
        assert figure["better"] in {"higher", "lower"}
        for target in figure.get("targets", []):
            assert target["op"] in plot.OPS
            assert target["kind"] in {"target", "stretch"}
        value = figure["value"]
        assert value is None or isinstance(value, int | float) or len(value) == 2


def test_met_and_missed_follow_the_figures() -> None:
    by_case = {(b["name"], f["peer"], f["case"]): f for b, f in FIGURES}
    assert len(by_case) == len(FIGURES)
    echo = by_case["echo", "plain Trio (trio.serve_tcp)", "64 connections, 64 B"]
    assert plot.met_text(echo) == "yes"
    p50 = by_case["proxy", "—", "added p50 at 1,000 req/s"]
    assert plot.met_text(p50) == "yes"
    missed = dict(p50, value=1.5)
    assert plot.met_text(missed) == "**no**", "above the 1 ms target is a miss"
    spread = dict(by_case["spawn", "nursery.start_soon + trio.Event", "sequential"])
    assert plot.met_text(spread) == "yes"
    spread["value"] = [1.25, 1.6]
    assert plot.met_text(spread) == "**no**", "every end of a spread must meet the target"
    redis = by_case["redis", "redis-server", "GET, unpipelined"]
    assert plot.met_text(redis) == "yes; stretch: yes"
    service = by_case[
        "service", "hand-written with Trio primitives", "the issue's six-layer stack (listed)"
    ]
    assert plot.met_text(service) == "no figure stated"


def test_the_prose_quotes_only_ratios_in_the_results() -> None:
    page = PAGE.read_text(encoding="utf-8")
    start, end = page.index(plot.BEGIN), page.index(plot.END)
    prose = page[:start] + page[end:]
    known = set()
    for _, figure in FIGURES:
        known.update(RATIO.findall(plot.shown(figure)))
        known.update(RATIO.findall(plot.targets_text(figure)))
    quoted = RATIO.findall(prose)
    assert quoted, "the prose names the misses"
    assert set(quoted) <= known, set(quoted) - known


def _need_matplotlib() -> None:
    if importlib.util.find_spec("matplotlib") is None:
        message = "needs matplotlib: pip install -e '.[bench]'"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == PNG_SIGNATURE, "not a PNG"
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_plot_writes_the_same_png_twice(tmp_path: Path) -> None:
    _need_matplotlib()
    made = []
    for name in ["a.png", "b.png"]:
        out = tmp_path / name
        argv = [sys.executable, "benchmarks/plot.py", "benchmarks/results.json", "--out", str(out)]
        proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=50)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.startswith("wrote ")
        made.append(out.read_bytes())
    width, height = _png_size(made[0])
    assert width == 1100 and height > 400
    assert made[0] == made[1], "the same results give the same bytes"
    assert b"Software" not in made[0], "no software (or date) in the metadata"
    committed = (ROOT / "docs" / "assets" / "benchmarks.png").read_bytes()
    assert _png_size(committed) == (width, height), "regenerate: python benchmarks/plot.py"


def test_every_missed_target_is_named_in_the_prose() -> None:
    page = PAGE.read_text(encoding="utf-8")
    section = page.split("## Targets met and missed")[1].split("\n## ")[0]
    missed = [f for _, f in FIGURES if "**no**" in plot.met_text(f)]
    assert missed
    for figure in missed:
        for quoted in RATIO.findall(figure["shown"]) or [figure["shown"]]:
            assert quoted in section, f"the miss {quoted} ({figure['case']}) is not named"
