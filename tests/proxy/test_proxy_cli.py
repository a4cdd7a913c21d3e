"""``python -m runtime proxy`` as a process: --check, the printed lines, stdlib http.server
as the upstream, the JSON access log, SIGHUP reload (good and bad configs) and SIGTERM."""

from __future__ import annotations

import http.client
import json
import re
import select
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

GUARD = 30.0
LISTENING = re.compile(r"^listening on http://127\.0\.0\.1:(\d+)$")
ADMIN = re.compile(r"^admin on http://127\.0\.0\.1:(\d+)$")
SERVING = re.compile(r"port (\d+)")


def config(upstream_port: int, *, timeout: float = 5.0) -> str:
    return f"""
[admin]
listen = "127.0.0.1:0"

[[listeners]]
name = "web"
listen = "127.0.0.1:0"

[[routes]]
listener = "web"
path_prefix = "/"
upstream = "files"
timeout = {timeout}
per_try_timeout = 1.0
retries = 2
max_concurrency = 1000

[[upstreams]]
name = "files"
endpoints = ["127.0.0.1:{upstream_port}"]
"""


def read_line(stream: object, what: str) -> str:
    ready, _, _ = select.select([stream], [], [], GUARD)
    assert ready, f"no {what} line within {GUARD} s"
    return stream.readline().rstrip("\n")  # type: ignore[attr-defined, no-any-return]


@pytest.fixture
def files(tmp_path: Path) -> Iterator[int]:
    """stdlib http.server serving a small file, as the upstream."""
    (tmp_path / "hello.txt").write_text("hello from http.server\n")
    proc = subprocess.Popen(
        [sys.executable, "-u", "-m", "http.server", "0", "--bind", "127.0.0.1"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        match = SERVING.search(read_line(proc.stdout, "http.server"))
        assert match
        yield int(match[1])
    finally:
        proc.terminate()
        proc.wait(timeout=GUARD)


def run_check(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "runtime", "proxy", "--config", str(path), "--check"],
        capture_output=True,
        text=True,
        timeout=GUARD,
    )


def test_check_accepts_a_good_config_and_names_every_problem_of_a_bad_one(
    tmp_path: Path,
) -> None:
    good = tmp_path / "good.toml"
    good.write_text(config(9000))
    result = run_check(good)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"{good}: ok (1 listeners, 1 routes, 1 upstreams)"
    bad = tmp_path / "bad.toml"
    bad.write_text(
        config(9000).replace("timeout = 5.0", "timeout = -1\ntime_out = 3")
        + '\n[[routes]]\nlistener = "nope"\nupstream = "files"\n'
    )
    result = run_check(bad)
    assert result.returncode == 2
    assert "routes[0].timeout: must be a positive number of seconds, got -1" in result.stderr
    assert "routes[0].time_out: unknown key" in result.stderr
    missing = tmp_path / "missing.toml"
    result = run_check(missing)
    assert result.returncode == 2 and "cannot read the file" in result.stderr


def get(port: int, path: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=GUARD)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def test_the_proxy_serves_reloads_and_drains(tmp_path: Path, files: int) -> None:
    path = tmp_path / "proxy.toml"
    path.write_text(config(files))
    proc = subprocess.Popen(
        [sys.executable, "-m", "runtime", "proxy", "--config", str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        web = LISTENING.match(read_line(proc.stdout, "listening"))
        assert proc.stdout is not None
        admin = ADMIN.match(proc.stdout.readline().rstrip("\n"))  # printed with the first
        assert web and admin, "the proxy's lines"
        port, admin_port = int(web[1]), int(admin[1])
        assert get(port, "/hello.txt") == (200, b"hello from http.server\n")
        assert get(admin_port, "/ready")[0] == 200
        status, body = get(admin_port, "/config")
        assert status == 200 and json.loads(body)["reloads"] == 0

        path.write_text(config(files, timeout=7.0))  # a valid change: taken at SIGHUP
        proc.send_signal(signal.SIGHUP)
        deadline_polls = 200
        while json.loads(get(admin_port, "/config")[1])["reloads"] == 0:
            deadline_polls -= 1
            assert deadline_polls, "SIGHUP was not acted on"
        shown = json.loads(get(admin_port, "/config")[1])["config"]
        assert shown["routes"][0]["timeout"] == 7.0
        assert get(port, "/hello.txt")[0] == 200  # still serving, on the new routes

        path.write_text("this is not toml [")  # an invalid one: refused, the old one stays
        proc.send_signal(signal.SIGHUP)
        assert get(port, "/hello.txt")[0] == 200
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=GUARD)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    marker = "runtime.proxy.access: "
    access = [json.loads(line.split(marker, 1)[1]) for line in err.splitlines() if marker in line]
    assert any(a["status"] == 200 and a["upstream"] == "files" for a in access)
    # the line run-the-proxy.md shows has the fields a real one has, in the same order
    doc = (
        Path(__file__).resolve().parents[2] / "docs" / "how-to" / "run-the-proxy.md"
    ).read_text()
    shown = next(line for line in doc.splitlines() if line.startswith('{"request_id"'))
    assert list(json.loads(shown)) == list(access[0])
    assert "reload refused, the running config stays" in err
    assert "web: drained" in err
    assert "Traceback" not in err


def test_check_of_the_example_prints_what_the_how_to_shows() -> None:
    root = Path(__file__).resolve().parent.parent.parent
    result = subprocess.run(
        [sys.executable, "-m", "runtime", "proxy", "--config", "examples/proxy.toml", "--check"],
        capture_output=True,
        text=True,
        timeout=GUARD,
        cwd=root,
    )
    assert result.returncode == 0, result.stderr
    shown = "examples/proxy.toml: ok (1 listeners, 2 routes, 2 upstreams)"  # run-the-proxy.md
    assert result.stdout.strip() == shown
    assert shown in (root / "docs" / "how-to" / "run-the-proxy.md").read_text()
