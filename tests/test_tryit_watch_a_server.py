"""The Try this of docs/tutorial/watch-a-server.md: each stated result, and the page still
says it. examples/job_queue.py runs as a process; its two listening lines give the ports."""

from __future__ import annotations

import http.client
import json
import re
import select
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "job_queue.py"
PAGE = ROOT / "docs" / "tutorial" / "watch-a-server.md"
HANG_GUARD = 30.0  # seconds; a hang guard for slow machines, not a performance claim
LISTENING = re.compile(r"listening on http://127\.0\.0\.1:(\d+)")


def page() -> str:
    """The page's Try this section, its lines joined (a stated result may wrap)."""
    text = PAGE.read_text(encoding="utf-8")
    section = text.split("## Try this", 1)[1].split("## What you now know", 1)[0]
    return " ".join(section.split())


class JobQueue:
    """examples/job_queue.py with some arguments, once it printed both listening lines."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(EXAMPLE), "--port", "0", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        assert select.select([self.proc.stdout], [], [], HANG_GUARD)[0], "no listening line"
        ports = []
        for _ in range(2):  # the second may sit in the reader's buffer: no select for it
            line = self.proc.stdout.readline().rstrip("\n")
            match = LISTENING.fullmatch(line)
            assert match, f"unexpected line {line!r}"
            ports.append(int(match[1]))
        self.api, self.admin = ports

    def call(self, port: int, method: str, path: str, body: object = None) -> tuple[int, str]:
        return self.call_full(port, method, path, body)[:2]  # type: ignore[return-value]

    def call_full(
        self, port: int, method: str, path: str, body: object = None
    ) -> tuple[int, str, http.client.HTTPResponse]:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=HANG_GUARD)
        try:
            data = None if body is None else json.dumps(body).encode()
            conn.request(method, path, body=data)
            response = conn.getresponse()
            return response.status, response.read().decode(), response
        finally:
            conn.close()


@pytest.fixture
def start() -> Iterator[Callable[..., JobQueue]]:
    started: list[JobQueue] = []

    def run(*args: str) -> JobQueue:
        started.append(JobQueue(*args))
        return started[-1]

    yield run
    for queue in started:
        queue.proc.kill()
        queue.proc.communicate()


def test_gets_of_a_job_count_under_the_route_template(start: Callable[..., JobQueue]) -> None:
    jobs = start()
    assert jobs.call(jobs.api, "POST", "/jobs", {"seconds": 0.5})[0] == 202
    assert jobs.call(jobs.api, "GET", "/jobs/1")[0] == 200
    assert jobs.call(jobs.api, "GET", "/jobs/1")[0] == 200
    assert jobs.call(jobs.api, "GET", "/jobs/999")[0] == 404
    status, metrics = jobs.call(jobs.admin, "GET", "/metrics")
    assert status == 200
    gets = 'runtime_http_requests_total{method="GET",'
    lines = [line for line in metrics.splitlines() if line.startswith(gets)]
    labels = 'method="GET",route="/jobs/{id:int}",server="jobs-api"'
    assert lines == [
        f'runtime_http_requests_total{{{labels},status="200"}} 2.0',
        f'runtime_http_requests_total{{{labels},status="404"}} 1.0',
    ]
    section = page()
    assert "Ask for job 1 twice" in section and "(`/jobs/999`)" in section
    for line in lines:
        assert line in section


def test_a_full_queue_takes_104_jobs_and_refuses_the_rest(
    start: Callable[..., JobQueue],
) -> None:
    jobs = start()
    answers = [jobs.call_full(jobs.api, "POST", "/jobs", {"seconds": 10}) for _ in range(110)]
    codes = [status for status, _, _ in answers]
    assert codes == [202] * 104 + [503] * 6
    assert {response.getheader("retry-after") for _, _, response in answers[104:]} == {"1"}
    metrics = jobs.call(jobs.admin, "GET", "/metrics")[1]
    buffered = 'runtime_channel_buffered{channel="jobs",kind="mpsc"} 100.0'
    assert buffered in metrics.splitlines()
    section = page()
    assert "-d '{\"seconds\": 10}'" in section and "$(seq 110)" in section
    assert "The first 104 get `202` and the last 6 `503`" in section
    assert "`retry-after: 1`" in section
    assert f"`/metrics` says `{buffered}`" in section


def test_a_grace_of_one_second_cancels_the_job_and_still_exits_zero(
    start: Callable[..., JobQueue],
) -> None:
    jobs = start("--grace", "1", "--log-level", "INFO")
    assert jobs.call(jobs.api, "POST", "/jobs", {"seconds": 10}) == (
        202,
        '{"id":1,"state":"queued"}',
    )
    jobs.proc.send_signal(signal.SIGINT)  # Ctrl-C
    assert jobs.proc.stderr is not None
    drained = []
    for line in jobs.proc.stderr:  # the log, line by line, as it comes
        if line.rstrip().endswith(("jobs-api: drained", "admin: drained")):
            drained.append(line.rsplit(" ", 2)[-2])
        if len(drained) == 2:
            break
    assert drained == ["jobs-api:", "admin:"]
    # The admin endpoint is gone, though the job still runs: the pool is not a server.
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", jobs.admin), timeout=HANG_GUARD).close()
    rest = jobs.proc.stderr.read()
    assert jobs.proc.wait(timeout=HANG_GUARD) == 0
    last = rest.strip().splitlines()[-1]
    # The job, and the pool if the final cancel reaches it before the job's end does.
    match = re.search(
        r"shutdown complete in 1\.\d+s: \d+ tasks drained, ([12]) tasks cancelled$", last
    )
    assert match, last
    section = page()
    assert "Restart with `--grace 1 --log-level INFO`, queue one job of ten seconds" in section
    assert "`jobs-api: drained` and `admin: drained` at once" in section
    assert "`shutdown complete in 1.002s` (the time varies a little)" in section
    assert "its count of tasks cancelled is not 0 any more" in section
    assert "The process still exits 0." in section
    stop_it = " ".join(PAGE.read_text(encoding="utf-8").split())
    assert "the admin endpoint closes too, even while jobs still run" in stop_it
