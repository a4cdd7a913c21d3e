"""benchmarks/service.py still runs (a few calls, one round: the numbers are not checked)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import trio

BENCHMARK = Path(__file__).resolve().parents[2] / "benchmarks" / "service.py"


def test_benchmark_runs_every_shape(capsys: pytest.CaptureFixture[str]) -> None:
    spec = importlib.util.spec_from_file_location("service_benchmark", BENCHMARK)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    trio.run(module.main, 64, 1)
    out = capsys.readouterr().out
    for shape in ["listed, sequential", "listed, 32 tasks", "shed-first, sequential"]:
        assert shape in out
    assert "issue's stack" in out


async def test_both_contenders_compute_the_same_answers() -> None:
    spec = importlib.util.spec_from_file_location("service_benchmark", BENCHMARK)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for order in ["listed", "shed-first"]:
        ours, peer = module.stack(order), module.handwritten(order)
        assert [await ours(n) for n in range(5)] == [await peer(n) for n in range(5)]
