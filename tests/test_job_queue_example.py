"""examples/job_queue.py: the pool, the API, what the admin endpoint shows, and the drain."""

from __future__ import annotations

import http.client
import importlib.util
import json
import re
import select
import signal
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import trio
import trio.testing
from prometheus_client import generate_latest

import runtime
from runtime.http import Body, Request, Response
from runtime.metrics import registry
from runtime.rt import open_runtime

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "job_queue.py"


def load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("example_job_queue", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


HANG_GUARD = 30.0
LISTENING = re.compile(r"^listening on http://127\.0\.0\.1:(\d+)$")


async def call(router: Any, method: str, target: str, body: object = None) -> tuple[int, Any]:
    data = b"" if body is None else json.dumps(body).encode()
    request = Request(method, target, body=Body(data))
    response: Response = await router(request)
    return response.status, json.loads(bytes(response.body))  # type: ignore[arg-type]


async def test_the_pool_runs_four_jobs_at_a_time_and_the_tree_shows_them(
    autojump_clock: trio.testing.MockClock,
) -> None:
    example = load_example()
    async with open_runtime() as rt:
        await check_the_pool(example, rt)


async def check_the_pool(example: ModuleType, rt: runtime.Runtime) -> None:
    queue = example.JobQueue()
    router = example.api(queue)
    pool = runtime.spawn(queue.work, name="job pool")
    for _ in range(6):
        assert (await call(router, "POST", "/jobs", {"seconds": 1}))[0] == 202
    await trio.testing.wait_all_tasks_blocked()
    states = [(await call(router, "GET", f"/jobs/{n}"))[1]["state"] for n in range(1, 7)]
    assert states == ["running"] * 4 + ["queued"] * 2
    tree = rt.task_tree()
    (pool_node,) = [n for n in tree if n.name == "job pool"]
    jobs = [n for n in tree if n.name.startswith("job ") and n.kind == "joinset"]
    assert sorted(n.name for n in jobs) == ["job 1", "job 2", "job 3", "job 4"]
    assert {n.parent for n in jobs} == {pool_node.id}
    assert {n.waiting_in for n in jobs} == {"JobQueue.run"}  # where, not the sleep's insides
    assert (pool_node.kind, pool_node.waiting_in) == ("task", "JoinSet.join_next")  # as shown
    text = generate_latest(registry()).decode()
    assert 'runtime_channel_buffered{channel="jobs",kind="mpsc"} 2.0' in text
    await runtime.time.sleep(2.5)
    assert [(await call(router, "GET", f"/jobs/{n}"))[1]["state"] for n in range(1, 7)] == [
        "done"
    ] * 6
    assert (
        'runtime_service_requests_total{service="jobs"} 6.0'
        in generate_latest(registry()).decode()
    )
    queue.sender.close()
    await pool


async def test_bad_jobs_are_422_and_a_full_queue_is_503() -> None:
    example = load_example()
    queue = example.JobQueue()
    router = example.api(queue)
    assert (await call(router, "POST", "/jobs", {"seconds": -1}))[0] == 422
    assert (await call(router, "POST", "/jobs", {"seconds": "soon"}))[0] == 422
    assert (await call(router, "POST", "/jobs", [1]))[0] == 422
    for _ in range(example.QUEUE):  # nobody works the queue: it fills
        assert (await call(router, "POST", "/jobs", {"seconds": 0}))[0] == 202
    assert await call(router, "POST", "/jobs", {"seconds": 0}) == (
        503,
        {"error": "the queue is full"},
    )
    assert (await call(router, "GET", "/jobs/999"))[0] == 404


def get(port: int, method: str, path: str, body: object = None) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=HANG_GUARD)
    try:
        data = None if body is None else json.dumps(body).encode()
        conn.request(method, path, body=data)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def test_the_script_serves_the_api_and_admin_and_drains_the_queue_on_sigterm() -> None:
    proc = subprocess.Popen(
        [sys.executable, str(EXAMPLE), "--port", "0", "--log-level", "INFO"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        ports = []
        ready, _, _ = select.select([proc.stdout], [], [], HANG_GUARD)
        assert ready, "no listening line (hung?)"
        for _ in range(2):  # the second may sit in the reader's buffer: no select for it
            match = LISTENING.match(proc.stdout.readline().rstrip("\n"))
            assert match
            ports.append(int(match[1]))
        api, admin = ports
        # what docs/tutorial/watch-a-server.md shows
        assert get(api, "POST", "/jobs", {"seconds": 0.5}) == (202, b'{"id":1,"state":"queued"}')
        for _ in range(2):
            assert get(api, "POST", "/jobs", {"seconds": 0.5})[0] == 202
        assert get(admin, "GET", "/ready") == (200, b"ready\n")
        status, body = get(admin, "GET", "/metrics")
        assert status == 200
        posted = b'{method="POST",route="/jobs",server="jobs-api",status="202"} 3.0'
        assert b"runtime_http_requests_total" + posted in body
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=HANG_GUARD)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert "jobs-api: drained" in err
    assert "admin: drained" in err
    assert "0 tasks cancelled" in err  # the queued jobs finished within the grace
    assert "Traceback" not in err
