"""The pytest plugin: seeds, sweeps, the replay line of a failure, the jumping clock."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

TESTS = """
import trio
import pytest


async def test_fails_on_seed_two(sim, sim_seed):
    await trio.sleep(3600)  # an hour of simulated time, none of it real
    assert sim_seed != 2


@pytest.mark.sim_seeds(4)
async def test_marked(sim_seed):
    assert sim_seed in range(4)


async def test_plain(request):
    assert not hasattr(request.node, "callspec")  # the plugin left it unparametrized
"""


def _pytest(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_user.py").write_text(TESTS)
    (tmp_path / "pytest.ini").write_text("[pytest]\ntrio_mode = true\n")
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rA", *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=50,
        check=False,
    )


def test_a_sweep_runs_each_seed_and_a_failure_names_its_replay(tmp_path: Path) -> None:
    result = _pytest(tmp_path, "--sim-seeds", "3", "-k", "seed_two")
    assert result.returncode == 1, result.stdout
    assert "2 passed" in result.stdout and "1 failed" in result.stdout
    assert (
        "failed with sim seed 2; replay: pytest 'test_user.py::test_fails_on_seed_two' "
        "--sim-seed 2" in result.stdout
    )


def test_the_replay_command_runs_that_seed_alone(tmp_path: Path) -> None:
    result = _pytest(tmp_path, "test_user.py::test_fails_on_seed_two", "--sim-seed", "2")
    assert "FAILED test_user.py::test_fails_on_seed_two[seed=2]" in result.stdout
    assert "1 failed" in result.stdout and "passed" not in result.stdout


def test_the_marker_sets_the_count_and_plain_tests_are_untouched(tmp_path: Path) -> None:
    result = _pytest(tmp_path, "-k", "marked or plain")
    assert result.returncode == 0, result.stdout
    for seed in range(4):
        assert f"PASSED test_user.py::test_marked[seed={seed}]" in result.stdout
    assert "PASSED test_user.py::test_plain\n" in result.stdout


@pytest.mark.parametrize("option", ["--sim-seeds"])
def test_a_count_below_one_is_a_usage_error(tmp_path: Path, option: str) -> None:
    result = _pytest(tmp_path, option, "0")
    assert result.returncode != 0
    assert "must be at least 1" in result.stdout + result.stderr


def test_the_replay_line_the_how_to_shows_is_the_one_the_plugin_prints() -> None:
    from runtime.testing.pytest_plugin import replay_line

    howto = (
        Path(__file__).resolve().parents[2] / "docs" / "how-to" / "test-distributed-failures.md"
    )
    nodeid = "tests/sim/test_howto_sim.py::test_a_dead_upstream_costs_no_request[seed=2]"
    assert f"```text\n{replay_line(nodeid, 2)}\n```" in howto.read_text()
