"""The pytest plugin of trio-runtime (registered as ``trio_runtime`` through ``pytest11``).

It is inert until a test asks for one of its fixtures:

* ``mock_runtime``: a :class:`~runtime.Runtime` (signals left to pytest), with the test run
  under Trio's :class:`~trio.testing.MockClock` with ``autojump_threshold=0``: time jumps
  ahead whenever every task waits, so a test of minutes takes milliseconds.
* ``sim``: an open :class:`~runtime.testing.sim.Sim` seeded with ``sim_seed``, inside
  ``mock_runtime``.
* ``sim_seed``: the seed; 0 unless ``--sim-seed N`` is given. ``@pytest.mark.sim_seeds(n)``
  runs the test once for each of the seeds ``0..n-1``, and ``--sim-seeds N`` does the same
  for every test that uses the seed (overriding the marker's count).

When a test that used a seed fails, its report names the seed and the command that runs it
again alone.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Generator
from typing import Any

import pytest

SEED_OPTION = "--sim-seed"
SEEDS_OPTION = "--sim-seeds"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("trio-runtime", "trio-runtime simulation")
    group.addoption(
        SEED_OPTION,
        type=int,
        default=None,
        help="the seed for tests that use sim_seed (default 0); first seed of a sweep",
    )
    group.addoption(
        SEEDS_OPTION,
        type=int,
        default=None,
        help="run every test that uses sim_seed over this many seeds",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "sim_seeds(n): run this simulation test once per seed in 0..n-1"
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "sim_seed" not in metafunc.fixturenames:
        return
    first = metafunc.config.getoption(SEED_OPTION)
    count = metafunc.config.getoption(SEEDS_OPTION)
    marker = metafunc.definition.get_closest_marker("sim_seeds")
    if count is None:
        count = int(marker.args[0]) if marker is not None else 1
    if count < 1:
        raise pytest.UsageError(f"{SEEDS_OPTION} must be at least 1, got {count}")
    start = first if first is not None else 0
    seeds = list(range(start, start + count))
    metafunc.parametrize("sim_seed", seeds, ids=[f"seed={seed}" for seed in seeds])


_CLOCKED = frozenset({"mock_runtime", "sim", "sim_seed"})


def _run_under_autojump(fn: Any, *, clock: Any = None, instruments: Any = ()) -> Any:
    """``trio.run`` for a test that uses the simulation: a jumping MockClock unless the test
    chose a clock of its own (``mock_clock``, ``autojump_clock``)."""
    import trio
    import trio.testing

    if clock is None:
        clock = trio.testing.MockClock(autojump_threshold=0)
    return trio.run(fn, clock=clock, instruments=instruments)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # pytest-trio hands a clock to trio.run only when the test itself asks for it; a test
    # that uses the sim (maybe through a fixture of its own) gets the jumping clock anyway.
    for item in items:
        if _CLOCKED & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.trio(run=_run_under_autojump), append=False)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, Any, None]:
    outcome = yield
    report = outcome.get_result()
    callspec = getattr(item, "callspec", None)
    seed = callspec.params.get("sim_seed") if callspec is not None else None
    if seed is None or not report.failed:
        return
    report.sections.append(("simulation seed", replay_line(item.nodeid, seed)))


def replay_line(nodeid: str, seed: int) -> str:
    """What a failed simulation test reports: its seed and the command that replays it."""
    test = nodeid.split("[", 1)[0]
    return f"failed with sim seed {seed}; replay: pytest '{test}' {SEED_OPTION} {seed}"


@pytest.fixture
def sim_seed(request: pytest.FixtureRequest) -> int:
    """The simulation's seed (parametrized by the plugin: see the module's docstring)."""
    seed = request.config.getoption(SEED_OPTION)
    return int(seed) if seed is not None else 0


@pytest.fixture
async def mock_runtime() -> AsyncIterator[Any]:
    """A runtime under a jumping mock clock, without signal handling.

    The test runs under ``trio.testing.MockClock(autojump_threshold=0)`` (the plugin asks
    pytest-trio for it), unless it asks for ``mock_clock`` or ``autojump_clock`` itself.
    """
    import runtime

    config = runtime.RuntimeConfig(handle_signals=False, shutdown_grace=1.0)
    async with runtime.open_runtime(config) as rt:
        yield rt


@pytest.fixture
async def sim(sim_seed: int, mock_runtime: Any) -> AsyncIterator[Any]:
    """An open simulated world, seeded with ``sim_seed``."""
    from .sim import Sim

    async with Sim(seed=sim_seed) as world:
        yield world
