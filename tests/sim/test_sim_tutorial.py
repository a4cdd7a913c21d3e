"""docs/tutorial/simulate.md: the shown run, and each Try this, as the page states them."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "tutorial" / "simulate.md"
EXAMPLE = ROOT / "examples" / "sim_topology.py"


def _shown_session() -> tuple[list[str], list[str]]:
    block = re.search(r"```console\n\$ (.*?)\n(.*?)```", PAGE.read_text(), re.DOTALL)
    assert block is not None
    command, output = block.group(1), block.group(2)
    return command.split(), output.splitlines()


def _run(*args: str) -> list[str]:
    result = subprocess.run(
        [sys.executable, str(EXAMPLE), *args],
        capture_output=True,
        text=True,
        timeout=50,
        check=True,
        cwd=ROOT,
    )
    return result.stdout.splitlines()


def test_the_shown_run_prints_what_the_page_shows_and_again_the_same() -> None:
    command, shown = _shown_session()
    assert command[:2] == ["python", "examples/sim_topology.py"]
    assert _run(*command[2:]) == shown
    assert _run(*command[2:]) == shown  # Try this: the same digest again


def test_try_this_no_faults_is_all_answered_with_another_digest() -> None:
    _, shown = _shown_session()
    lines = _run("--seed", "7", "--requests", "1000", "--no-faults")
    assert "statuses: {'200': 1000}" in lines
    assert any(re.fullmatch(r"simulated: 0\.3\d\d s, trace: \d+ events", line) for line in lines)
    digest = lines[-1]
    assert digest != shown[-1]
    assert f"(`{digest.split()[-1][:6]}...`)" in PAGE.read_text()


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("example_sim_topology_tutorial", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_try_this_without_retries_the_faults_cost_requests() -> None:
    topology = _load()
    assert "retries = 2" in topology.PROXY_CONFIG
    topology.PROXY_CONFIG = topology.PROXY_CONFIG.replace("retries = 2", "retries = 0")
    outcome = topology.run_sync(7, 1000)
    assert outcome.statuses == {"200": 976, "502": 20, "504": 4}
    text = " ".join(PAGE.read_text().split())
    assert "976 answer `200`, 20 get `502`" in text and "4 get `504`" in text
