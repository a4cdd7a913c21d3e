"""``python -m runtime serve module:app`` (and ``trio-runtime serve``) as a user runs it: a
subprocess, its printed line read for the address, requests over real sockets, SIGTERM or
SIGINT to stop it."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import trustme

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent


class Served:
    """A running ``serve`` process and the address it printed."""

    def __init__(self, argv: list[str], env: dict[str, str] | None = None) -> None:
        self.process = subprocess.Popen(
            argv,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            env={**os.environ, **(env or {})},
        )
        assert self.process.stdout is not None
        self.line = self.process.stdout.readline().rstrip("\n")

    @property
    def url(self) -> str:
        assert self.line.startswith("listening on "), self.line + self.stop()[1]
        return self.line.removeprefix("listening on ")

    def next_line(self) -> str:
        assert self.process.stdout is not None
        return self.process.stdout.readline().rstrip("\n")

    def stop(self, signum: int = signal.SIGTERM) -> tuple[int, str]:
        """Signal it, wait for it; its exit code and stderr."""
        if self.process.poll() is None:
            self.process.send_signal(signum)
        _, err = self.process.communicate(timeout=30)
        return self.process.returncode, err


def serve_command(*args: str, app: str = "serve_app:app") -> list[str]:
    return [
        sys.executable,
        "-m",
        "runtime",
        "serve",
        app,
        "--app-dir",
        str(HERE),
        "--port",
        "0",
        "--log-level",
        "warning",
        *args,
    ]


@pytest.fixture
def served() -> Iterator[list[Served]]:
    """Every process a test starts is stopped (killed if need be) at its end."""
    started: list[Served] = []
    yield started
    for s in started:
        if s.process.poll() is None:
            s.process.kill()
            s.process.communicate()


def start(started: list[Served], argv: list[str], env: dict[str, str] | None = None) -> Served:
    s = Served(argv, env)
    started.append(s)
    return s


def test_serve_prints_its_address_serves_the_app_and_drains_on_sigterm(
    served: list[Served],
) -> None:
    s = start(served, serve_command())
    assert s.line.startswith("listening on http://127.0.0.1:")
    response = httpx.get(s.url + "/scope")
    scope = response.json()
    assert response.status_code == 200
    assert scope["scheme"] == "http" and scope["path"] == "/scope"
    assert scope["client"][0] == "127.0.0.1"
    assert scope["server"] == ["127.0.0.1", int(s.url.rsplit(":", 1)[1])]
    assert scope["state"]["started_by"] == s.process.pid  # lifespan state reached the request
    code, err = s.stop(signal.SIGTERM)
    assert code == 0, err
    assert "lifespan shutdown" in err
    assert "Traceback" not in err


def test_sigint_drains_and_exits_0_too(served: list[Served]) -> None:
    s = start(served, serve_command())
    assert httpx.get(s.url).status_code == 200
    code, err = s.stop(signal.SIGINT)
    assert code == 0, err
    assert "lifespan shutdown" in err


def test_the_installed_trio_runtime_script_serves_too(served: list[Served]) -> None:
    script = shutil.which("trio-runtime", path=str(Path(sys.executable).parent))
    assert script is not None, "trio-runtime is not installed next to this python"
    argv = serve_command()
    s = start(served, [script, *argv[3:]])
    assert httpx.get(s.url).text == f"hello from {s.process.pid}"
    assert s.stop()[0] == 0


def test_a_failed_lifespan_startup_exits_3_with_the_apps_message(served: list[Served]) -> None:
    s = start(served, serve_command(), env={"ASGI_TEST_FAIL_STARTUP": "no database at db:5432"})
    assert s.line == ""  # it never listened
    code, err = s.stop()
    assert code == 3
    assert "error: lifespan startup failed: no database at db:5432" in err


def test_an_app_that_cannot_be_found_is_one_line_and_exit_2(served: list[Served]) -> None:
    s = start(served, serve_command(app="serve_app:nothing"))
    code, err = s.stop()
    assert code == 2
    assert err.strip() == 'error: attribute "nothing" not found in module "serve_app"'
    s = start(served, serve_command(app="no_such_module:app"))
    code, err = s.stop()
    assert code == 2 and err.startswith('error: could not import module "no_such_module"')


def test_root_path_and_proxy_headers_reach_the_scope(served: list[Served]) -> None:
    s = start(served, serve_command("--root-path", "/api"))
    headers = {"x-forwarded-for": "198.51.100.9", "x-forwarded-proto": "https"}
    scope = httpx.get(s.url + "/scope", headers=headers).json()
    assert scope["root_path"] == "/api" and scope["path"] == "/api/scope"
    assert scope["client"] == ["198.51.100.9", 0] and scope["scheme"] == "https"
    assert s.stop()[0] == 0
    s = start(served, serve_command("--no-proxy-headers"))
    scope = httpx.get(s.url + "/scope", headers=headers).json()
    assert scope["client"][0] == "127.0.0.1" and scope["scheme"] == "http"
    assert s.stop()[0] == 0


def test_uds_serves_on_a_unix_socket(served: list[Served], tmp_path: Path) -> None:
    path = tmp_path / "app.sock"
    s = start(served, serve_command("--uds", str(path)))
    assert s.line == f"listening on unix:{path}"
    with httpx.Client(transport=httpx.HTTPTransport(uds=str(path))) as client:
        scope = client.get("http://localhost/scope").json()
    assert scope["server"] == [str(path), None]
    assert s.stop()[0] == 0


def test_tls_prints_https_and_serves_https(served: list[Served], tmp_path: Path) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    (tmp_path / "server.pem").write_bytes(b"".join(p.bytes() for p in cert.cert_chain_pems))
    cert.private_key_pem.write_to_path(str(tmp_path / "server.key"))
    s = start(
        served,
        serve_command(
            "--ssl-certfile",
            str(tmp_path / "server.pem"),
            "--ssl-keyfile",
            str(tmp_path / "server.key"),
        ),
    )
    assert s.line.startswith("listening on https://127.0.0.1:")
    context = ssl.create_default_context()
    ca.configure_trust(context)
    scope = httpx.get(s.url + "/scope", verify=context).json()
    assert scope["scheme"] == "https"
    assert s.stop()[0] == 0


def test_limit_concurrency_answers_503_beyond_the_limit_and_the_app_is_in_the_task_tree(
    served: list[Served],
) -> None:
    s = start(served, serve_command("--limit-concurrency", "1", "--admin", "127.0.0.1:0"))
    assert s.line.startswith("admin on http://127.0.0.1:")
    admin = s.line.removeprefix("admin on ")
    s.line = s.next_line()
    port = int(s.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port)) as slow:
        slow.sendall(b"GET /slow HTTP/1.1\r\nHost: a\r\n\r\n")
        assert s.next_line() == "slow started"
        busy = httpx.get(s.url)
        assert busy.status_code == 503
        assert "concurrency limit" in busy.text
        tree = json.dumps(httpx.get(admin + "/tasks").json())
        assert "asgi GET /slow" in tree  # the app's task, in the runtime's tree
    code, err = s.stop()
    assert code == 0, err


def test_workers_share_the_port_and_stop_together(served: list[Served]) -> None:
    s = start(served, serve_command("--workers", "2"))
    assert s.line.startswith("listening on http://127.0.0.1:")
    pids = set()
    for _ in range(200):
        with httpx.Client() as client:  # a new connection each time: the kernel spreads them
            pids.add(client.get(s.url).text)
        if len(pids) == 2:
            break
    assert len(pids) == 2
    code, err = s.stop()
    assert code == 0, err
    assert err.count("lifespan shutdown") == 2
