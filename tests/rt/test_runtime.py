"""run, open_runtime, main, the registry, statistics, config and spawn_blocking."""

from __future__ import annotations

import ast
import threading
from pathlib import Path

import pytest
import trio
import trio.testing

import runtime
from runtime import RuntimeConfig, TaskState

QUIET = RuntimeConfig(handle_signals=False)


def test_run_returns_mains_value() -> None:
    async def main(a: int, b: int) -> int:
        await trio.sleep(0)
        return a + b

    assert runtime.run(main, 2, 3, config=QUIET) == 5


def test_run_reraises_mains_exception_unwrapped() -> None:
    async def main() -> None:
        runtime.spawn(trio.sleep_forever)
        raise LookupError("from main")

    with pytest.raises(LookupError, match="from main") as info:
        runtime.run(main, config=QUIET)
    assert type(info.value) is LookupError


def test_run_with_mock_clock_and_main_decorator() -> None:
    @runtime.main
    async def plain() -> str:
        await trio.sleep(3600)  # an hour of mock time, no real waiting
        return "slept"

    @runtime.main(config=QUIET)
    async def configured(x: int) -> int:
        return runtime.current().config.shutdown_grace + x  # type: ignore[return-value]

    assert configured(1) == 11.0
    assert runtime.run(plain.__wrapped__, clock=trio.testing.MockClock(autojump_threshold=0)) == (
        "slept"
    )


async def test_current_inside_open_runtime() -> None:
    async with runtime.open_runtime(QUIET) as rt:
        assert runtime.current() is rt
        assert runtime.rt.try_current() is rt
    assert runtime.rt.try_current() is None


async def test_registry_snapshot(rt: runtime.Runtime) -> None:
    release = trio.Event()
    handles = [runtime.spawn(release.wait, name=f"waiter-{i}") for i in range(3)]
    await trio.testing.wait_all_tasks_blocked()
    snapshot = rt.tasks()
    assert [t.name for t in snapshot] == ["waiter-0", "waiter-1", "waiter-2"]
    assert {t.state for t in snapshot} == {TaskState.RUNNING}
    assert all(t.ended_at is None and t.age >= 0 for t in snapshot)
    assert [t.id for t in snapshot] == [h.id for h in handles]
    release.set()
    for h in handles:
        await h
    assert rt.tasks() == []
    info = handles[0].info()
    assert info.state is TaskState.DONE and info.ended_at is not None


async def test_statistics_counts(rt: runtime.Runtime) -> None:
    async def ok() -> None:
        await trio.sleep(0)

    async def bad() -> None:
        raise RuntimeError("x")

    await runtime.spawn(ok)
    with pytest.raises(RuntimeError):
        await runtime.spawn(bad)
    h = runtime.spawn(trio.sleep_forever)
    await trio.testing.wait_all_tasks_blocked()
    stats = rt.statistics()
    assert (stats.alive, stats.spawned, stats.completed, stats.failed) == (1, 3, 1, 1)
    h.abort()
    with pytest.raises(runtime.JoinError):
        await h
    stats = rt.statistics()
    assert (stats.alive, stats.cancelled, stats.shutting_down) == (0, 1, False)


async def test_registry_returns_to_baseline_after_10000_tasks(rt: runtime.Runtime) -> None:
    baseline = len(rt._registry.live)

    async def tiny(i: int) -> int:
        return i

    async with runtime.JoinSet[int]() as tasks:
        for i in range(5_000):
            tasks.spawn(tiny, i)
        total = sum(await tasks.join_all())
    for i in range(5_000):
        runtime.spawn(tiny, i)
    await trio.testing.wait_all_tasks_blocked()
    assert total == sum(range(5_000))
    assert len(rt._registry.live) == baseline
    assert len(rt.tasks()) == baseline
    assert rt.statistics().spawned == 10_000
    assert rt.statistics().completed == 10_000


async def test_spawn_blocking_returns_and_raises(rt: runtime.Runtime) -> None:
    assert await runtime.spawn_blocking(sum, [1, 2, 3]) == 6
    with pytest.raises(ZeroDivisionError):
        await runtime.spawn_blocking(lambda: 1 / 0)


async def test_spawn_blocking_respects_the_cap() -> None:
    cap = 2
    lock = threading.Lock()
    active = 0
    peak = 0
    release = threading.Event()
    two_in = threading.Event()

    def work(i: int) -> int:
        nonlocal active, peak
        with lock:
            active += 1
            peak = max(peak, active)
            if active == cap:
                two_in.set()
        release.wait(timeout=30)
        with lock:
            active -= 1
        return i

    config = RuntimeConfig(handle_signals=False, max_blocking_threads=cap)
    async with runtime.open_runtime(config) as rt, runtime.JoinSet[int]() as tasks:
        for i in range(6):
            tasks.spawn(runtime.spawn_blocking, work, i)
        await trio.to_thread.run_sync(two_in.wait, 30)
        await trio.testing.wait_all_tasks_blocked()
        assert rt._blocking_limiter.statistics().tasks_waiting == 4
        release.set()
        assert sorted(await tasks.join_all()) == list(range(6))
    assert peak == cap


async def test_cancelled_spawn_blocking_abandons_result_not_work(rt: runtime.Runtime) -> None:
    entered = threading.Event()
    release = threading.Event()
    finished = threading.Event()

    def work() -> str:
        entered.set()
        release.wait(timeout=30)
        finished.set()
        return "discarded"

    with trio.CancelScope() as scope:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(runtime.spawn_blocking, work)
            await trio.to_thread.run_sync(entered.wait, 30)
            scope.cancel()
    assert scope.cancelled_caught
    assert not finished.is_set()
    release.set()
    assert await trio.to_thread.run_sync(finished.wait, 30)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("shutdown_grace", -1, "'shutdown_grace' must be >= 0"),
        ("max_blocking_threads", 0, "'max_blocking_threads' must be > 0"),
        ("coop_budget", 0, "'coop_budget' must be > 0"),
        ("timer_tick", 0.0, "'timer_tick' must be > 0"),
        ("timer_slots", 48, "power of two"),
        ("unhandled", "ignore", "unhandled"),
    ],
)
def test_config_validation(field: str, value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RuntimeConfig(**{field: value})  # type: ignore[arg-type]


async def test_config_sets_the_coop_budget() -> None:
    before = runtime.rt._coop.budget()
    async with runtime.open_runtime(RuntimeConfig(handle_signals=False, coop_budget=7)):
        assert runtime.rt._coop.budget() == 7
    assert runtime.rt._coop.budget() == before


async def test_services_are_per_runtime(rt: runtime.Runtime) -> None:
    started = trio.Event()

    async def driver() -> None:
        started.set()
        await trio.sleep_forever()

    def factory(r: runtime.Runtime) -> list[str]:
        r.start_system_task(driver, name="test-driver")
        return ["state"]

    first = rt.service("key", factory)
    assert rt.service("key", factory) is first
    await started.wait()


def test_the_task_module_does_not_import_the_runtime_module() -> None:
    import runtime.rt._task as task_module

    tree = ast.parse(Path(task_module.__file__).read_text())
    imported = {
        node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module
    }
    assert "_runtime" not in imported  # no rt._runtime <-> rt._task cycle


def _runtime_private_fields() -> set[str]:
    """The underscore attributes a Runtime has once built (what its __init__ sets).

    Call it inside Trio: the runtime's limiter needs a running loop."""
    return {name for name in vars(runtime.Runtime(QUIET)) if name.startswith("_")}


def _stores_from_outside(path: Path, fields: set[str]) -> list[str]:
    """Assignments to ``<expr>.<field>`` where ``<expr>`` is not ``self``.

    ``self.<field>`` in another class is that class's own attribute of the same name."""
    found: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = list(node.targets)
        elif isinstance(node, ast.AugAssign | ast.AnnAssign):
            targets = [node.target]
        for sub in (sub for target in targets for sub in ast.walk(target)):
            if not (isinstance(sub, ast.Attribute) and sub.attr in fields):
                continue
            if not (isinstance(sub.value, ast.Name) and sub.value.id == "self"):
                found.append(f"{path.name}:{sub.lineno} {ast.unparse(sub)} = ...")
    return found


async def test_only_the_runtime_itself_assigns_its_private_fields() -> None:
    """open_runtime used to set rt._task_nursery, rt._system_nursery and rt._shutdown."""
    fields = _runtime_private_fields()
    assert {"_task_nursery", "_system_nursery", "_shutdown"} <= fields
    package = Path(runtime.__file__).parent
    found = [
        store
        for path in sorted(package.rglob("*.py"))
        for store in _stores_from_outside(path, fields)
    ]
    assert found == []
