"""``python -m runtime top`` against a stub admin endpoint (stdlib ``http.server`` in a thread).

The view is driven with textual's Pilot (``App.run_test``) on asyncio, inside plain test
functions; the pure parts (addresses, ages, the tree order, metrics, rates) are tested alone.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from textual.widgets import DataTable, Static

from runtime.admin._top import (
    AdminClient,
    Figures,
    StackScreen,
    TaskInfo,
    TopApp,
    format_age,
    main,
    parse_admin_address,
    read_figures,
    request_rates,
    short_name,
    tree_rows,
)

GUARD = 5.0  # seconds; a hang guard for waiting on the view, not a performance claim

TASKS: dict[str, Any] = {
    "pid": 4321,
    "now": 30.0,
    "runtime": {
        "alive": 3,
        "spawned": 9,
        "completed": 5,
        "failed": 1,
        "cancelled": 0,
        "shutting_down": False,
    },
    "tasks": [
        {
            "id": 1,
            "parent": None,
            "name": "runtime",
            "kind": "root",
            "state": "running",
            "age": 30.0,
            "waiting_in": "Runtime._serve",
            "detail": None,
        },
        {
            "id": 2,
            "parent": 1,
            "name": "runtime.time.driver",
            "kind": "system",
            "state": "running",
            "age": None,
            "waiting_in": "TimerWheel.serve",
            "detail": None,
        },
        {
            "id": 7,
            "parent": 1,
            "name": "serve_demo",
            "kind": "task",
            "state": "running",
            "age": 12.4,
            "waiting_in": "Server.serve",
            "detail": None,
        },
        {
            "id": 31,
            "parent": 7,
            "name": "connection",
            "kind": "connection",
            "state": "running",
            "age": 3.0,
            "waiting_in": "SocketStream.receive_some",
            "detail": "echo: peer 127.0.0.1:50312",
        },
        {
            "id": 32,
            "parent": 7,
            "name": "pkg.mod.Pool._fill",
            "kind": "trio",
            "state": "running",
            "age": None,
            "waiting_in": None,
            "detail": None,
        },
        {
            "id": 8,
            "parent": 1,
            "name": "worker",
            "kind": "joinset",
            "state": "running",
            "age": 200.0,
            "waiting_in": "Receiver.receive",
            "detail": None,
        },
    ],
}

METRICS = """\
# HELP runtime_tasks_alive Live tasks.
# TYPE runtime_tasks_alive gauge
runtime_tasks_alive 3.0
# TYPE runtime_tasks_spawned counter
runtime_tasks_spawned_total 9.0
# TYPE runtime_timers_pending gauge
runtime_timers_pending 17.0
# TYPE runtime_timer_lag_seconds gauge
runtime_timer_lag_seconds 0.0025
# TYPE runtime_reactor_registered_fds gauge
runtime_reactor_registered_fds 5.0
# TYPE runtime_reactor_events_per_wakeup gauge
runtime_reactor_events_per_wakeup 1.5
# TYPE runtime_server_connections_active gauge
runtime_server_connections_active{server="echo"} 4.0
runtime_server_connections_active{server="admin"} 1.0
# TYPE runtime_http_requests counter
runtime_http_requests_total{method="GET",route="/api/{id:int}",server="http",status="200"} %(n)s
runtime_http_requests_total{method="GET",route="/api/{id:int}",server="http",status="404"} 2.0
runtime_http_requests_total{method="GET",route="/tasks",server="admin",status="200"} 1.0
"""

STACK = {
    "id": 1,
    "name": "runtime",
    "frames": [
        {
            "file": "/srv/app/runtime/_demo.py",
            "line": 108,
            "function": "serve_demo",
            "code": "async with trio.open_nursery() as nursery:",
        },
        {
            "file": "/venv/lib/python3.11/site-packages/trio/_core/_run.py",
            "line": 1104,
            "function": "NurseryManager.__aexit__",
            "code": None,
        },
    ],
}


class Stub:
    """Canned admin answers by path; ``answers`` may be changed while it serves."""

    def __init__(self) -> None:
        self.answers: dict[str, tuple[int, str, bytes]] = {}
        self.set_json("/tasks", TASKS)
        self.set_metrics(items=10)
        self.set_json("/tasks/1/stack", STACK)
        stack_31 = {**STACK, "id": 31, "name": "connection"}
        self.set_json("/tasks/31/stack", stack_31)
        self.set_json("/tasks/32/stack", {"error": "no live task 32"}, status=404)
        self.server: ThreadingHTTPServer | None = None
        self.port = 0

    def set_json(self, path: str, document: Any, status: int = 200) -> None:
        self.answers[path] = (status, "application/json", json.dumps(document).encode())

    def set_metrics(self, *, items: float) -> None:
        body = (METRICS % {"n": items}).encode()
        self.answers["/metrics"] = (200, "text/plain; version=0.0.4", body)

    def start(self) -> None:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                status, ctype, body = stub.answers.get(
                    self.path, (404, "application/json", b'{"error": "not found"}')
                )
                self.send_response(status)
                self.send_header("content-type", ctype)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def stop(self) -> None:
        assert self.server is not None
        self.server.shutdown()
        self.server.server_close()
        self.server = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture
def stub() -> Iterator[Stub]:
    s = Stub()
    s.start()
    yield s
    if s.server is not None:
        s.stop()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def run_view(stub: Stub, scenario: Callable[[TopApp, Any], Any]) -> TopApp:
    """Run ``scenario(app, pilot)`` in a 160x48 view of ``stub``, polled only on request."""
    app = TopApp(AdminClient(stub.url, timeout=2.0), interval=600.0, initial=None)

    async def drive() -> None:
        async with app.run_test(size=(160, 48)) as pilot:
            await until(app, lambda: app.polls >= 1)
            await scenario(app, pilot)

    asyncio.run(drive())
    return app


async def until(app: TopApp, predicate: Callable[[], bool]) -> None:
    await asyncio.wait_for(app.wait_until(predicate), GUARD)


def rows(app: TopApp) -> list[list[str]]:
    table: DataTable[str] = app.query_one("#tasks", DataTable)
    return [[str(cell) for cell in table.get_row_at(i)] for i in range(table.row_count)]


def column(app: TopApp, index: int) -> list[str]:
    return [row[index] for row in rows(app)]


def figures(app: TopApp) -> str:
    return str(app.query_one("#figures", Static).content)


def stack_text(app: TopApp) -> str:
    assert isinstance(app.screen, StackScreen)
    title = str(app.screen.query_one("#stack-title", Static).content)
    return title + "\n" + str(app.screen.query_one("#stack-frames", Static).content)


# -- the view ---------------------------------------------------------------------------------


def test_tree_nests_each_task_under_its_parent(stub: Stub) -> None:
    async def scenario(app: TopApp, pilot: Any) -> None:
        assert rows(app) == [
            ["1", "runtime", "root", "running", "30.0s", "", "Runtime._serve"],
            ["2", "├─ time.driver", "system", "running", "-", "", "TimerWheel.serve"],
            ["7", "├─ serve_demo", "task", "running", "12.4s", "", "Server.serve"],
            [
                "31",
                "│  ├─ connection",
                "connection",
                "running",
                "3.0s",
                "echo: peer 127.0.0.1:50312",
                "SocketStream.receive_some",
            ],
            ["32", "│  └─ Pool._fill", "trio", "running", "-", "", "-"],
            ["8", "└─ worker", "joinset", "running", "3m20s", "", "Receiver.receive"],
        ]
        assert "pid 4321" in app.status and "6 tasks" in app.status

    run_view(stub, scenario)


def test_s_cycles_the_order_among_siblings(stub: Stub) -> None:
    async def scenario(app: TopApp, pilot: Any) -> None:
        assert column(app, 0) == ["1", "2", "7", "31", "32", "8"]
        assert "sort: id" in app.status
        await pilot.press("s")
        await until(app, lambda: "sort: age" in app.status)
        assert column(app, 0) == ["1", "8", "7", "31", "32", "2"]  # oldest first, "-" last
        await pilot.press("s")
        await until(app, lambda: "sort: name" in app.status)
        assert column(app, 0) == ["1", "7", "32", "31", "2", "8"]  # by the name drawn
        await pilot.press("s")
        await until(app, lambda: "sort: id" in app.status)
        assert column(app, 0) == ["1", "2", "7", "31", "32", "8"]

    run_view(stub, scenario)


def test_a_refresh_keeps_the_selected_task_when_the_tree_changes(stub: Stub) -> None:
    async def scenario(app: TopApp, pilot: Any) -> None:
        await pilot.press("down", "down", "down")
        assert app.selected_task() is not None and app.selected_task().id == 31  # type: ignore[union-attr]
        fewer = {**TASKS, "tasks": [t for t in TASKS["tasks"] if t["id"] != 2]}
        stub.set_json("/tasks", fewer)
        await pilot.press("r")
        await until(app, lambda: app.polls >= 2)
        assert column(app, 0) == ["1", "7", "31", "32", "8"]
        assert app.selected_task().id == 31  # type: ignore[union-attr]

    run_view(stub, scenario)


def test_the_figures_pane_shows_the_metrics_and_request_rates(stub: Stub) -> None:
    async def scenario(app: TopApp, pilot: Any) -> None:
        text = figures(app)
        for label, value in [
            ("live (spawned)", "3"),
            ("in the tree", "6"),
            ("pending", "17"),
            ("lag", "2.50 ms"),
            ("registered fds", "5"),
            ("events per wake-up", "1.50"),
            ("echo", "4"),
            ("admin", "1"),
        ]:
            assert any(
                line.strip().startswith(label) and line.strip().endswith(value)
                for line in text.splitlines()
            ), (label, value, text)
        assert "(from the next poll on)" in text
        stub.set_metrics(items=1010)  # 1000 more requests on one route
        await pilot.press("r")
        await until(app, lambda: app.polls >= 2)
        lines = figures(app).split("requests/s\n", 1)[1].splitlines()
        assert lines[0].strip().startswith("http /api/{id:int}")
        assert float(lines[0].split()[-1]) > 0
        assert lines[1].split() == ["admin", "/tasks", "0.0"]

    run_view(stub, scenario)


def test_k_and_enter_show_the_await_stack_and_escape_closes_it(stub: Stub) -> None:
    async def scenario(app: TopApp, pilot: Any) -> None:
        await pilot.press("k")
        await until(app, lambda: isinstance(app.screen, StackScreen))
        text = stack_text(app)
        assert "await stack of task 1: runtime" in text
        assert "/srv/app/runtime/_demo.py:108 in serve_demo" in text
        assert "    async with trio.open_nursery() as nursery:" in text
        assert "trio/_core/_run.py:1104 in NurseryManager.__aexit__" in text
        await pilot.press("escape")
        await until(app, lambda: not isinstance(app.screen, StackScreen))
        await pilot.press("down", "down", "down", "enter")
        await until(app, lambda: isinstance(app.screen, StackScreen))
        assert "await stack of task 31: connection" in stack_text(app)

    run_view(stub, scenario)


def test_the_stack_of_a_task_that_ended_says_so(stub: Stub) -> None:
    async def scenario(app: TopApp, pilot: Any) -> None:
        await pilot.press("down", "down", "down", "down", "k")
        await until(app, lambda: isinstance(app.screen, StackScreen))
        text = stack_text(app)
        assert "await stack of task 32: pkg.mod.Pool._fill" in text
        assert "the task has ended (no live task 32)" in text

    run_view(stub, scenario)


@pytest.mark.parametrize("key", ["q", "ctrl+c"])
def test_q_and_ctrl_c_exit_with_status_0(stub: Stub, key: str) -> None:
    async def scenario(app: TopApp, pilot: Any) -> None:
        await pilot.press(key)

    app = run_view(stub, scenario)
    assert app.return_code == 0


def test_an_endpoint_gone_later_is_shown_and_polled_again(stub: Stub) -> None:
    async def scenario(app: TopApp, pilot: Any) -> None:
        stub.stop()
        await pilot.press("r")
        await until(app, lambda: app.polls >= 2)
        assert "cannot reach the admin endpoint (connection refused)" in app.status
        assert "retrying every 600 s" in app.status
        assert app.query_one("#status").has_class("-down")
        assert len(rows(app)) == 6  # the last tree stays
        stub.start()  # the same port again
        await pilot.press("r")
        await until(app, lambda: app.polls >= 3)
        assert "pid 4321" in app.status
        assert not app.query_one("#status").has_class("-down")

    run_view(stub, scenario)


# -- the command ------------------------------------------------------------------------------


def test_main_says_so_and_returns_1_when_nothing_listens(
    capsys: pytest.CaptureFixture[str],
) -> None:
    port = closed_port()
    assert main(["--admin", f"127.0.0.1:{port}"]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err == (
        f"error: cannot reach the admin endpoint at http://127.0.0.1:{port} (connection "
        "refused); start the process with an admin port (python -m runtime demo prints it)\n"
    )


def test_main_returns_1_for_a_port_that_is_not_an_admin_endpoint(
    stub: Stub, capsys: pytest.CaptureFixture[str]
) -> None:
    del stub.answers["/tasks"]
    assert main(["--admin", stub.url]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: cannot reach the admin endpoint at {stub.url} (GET /tasks")
    assert "HTTP 404" in err


def test_main_rejects_a_bad_address(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--admin", "https://127.0.0.1:9901"])
    assert exc.value.code == 2
    assert "expected HOST:PORT or http://HOST:PORT" in capsys.readouterr().err


# -- the pure parts ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "url"),
    [
        ("127.0.0.1:9901", "http://127.0.0.1:9901"),
        ("http://127.0.0.1:9901", "http://127.0.0.1:9901"),
        ("http://localhost:80/", "http://localhost:80"),
        (" [::1]:9901 ", "http://[::1]:9901"),
    ],
)
def test_admin_addresses(text: str, url: str) -> None:
    assert parse_admin_address(text) == url


@pytest.mark.parametrize(
    "text", ["127.0.0.1", "https://127.0.0.1:1", "127.0.0.1:99999", "h:1/metrics", ":9901"]
)
def test_bad_admin_addresses(text: str) -> None:
    with pytest.raises(ValueError, match="expected HOST:PORT"):
        parse_admin_address(text)


@pytest.mark.parametrize(
    ("age", "text"),
    [
        (None, "-"),
        (0.04, "0.0s"),
        (59.94, "59.9s"),
        (61, "1m01s"),
        (3725, "1h02m"),
        (90061, "1d01h"),
    ],
)
def test_ages(age: float | None, text: str) -> None:
    assert format_age(age) == text


@pytest.mark.parametrize(
    ("name", "short"),
    [
        ("runtime.net._server.Server._accept_loop", "Server._accept_loop"),
        (
            "runtime.admin._server.serve_admin.<locals>.serve_then_stop",
            "serve_admin.<locals>.serve_then_stop",
        ),
        ("runtime.time.driver", "time.driver"),
        ("serve_demo", "serve_demo"),
        ("job 3.1.2", "job 3.1.2"),
    ],
)
def test_short_names(name: str, short: str) -> None:
    assert short_name(name) == short


def test_a_task_whose_parent_ended_is_drawn_as_a_root() -> None:
    def task(id: int, parent: int | None) -> TaskInfo:
        return TaskInfo(id, parent, f"t{id}", "task", "running", None, None, None)

    drawn = [(t.id, prefix) for t, prefix in tree_rows([task(1, None), task(3, 2), task(4, 3)])]
    assert drawn == [(1, ""), (3, ""), (4, "└─ ")]


def test_request_rates_are_deltas_and_a_reset_gives_none() -> None:
    before = read_figures(METRICS % {"n": 10})
    after = read_figures(METRICS % {"n": 30})
    assert before.requests[("http", "/api/{id:int}")] == 12.0  # summed over statuses
    assert request_rates(before, after, 2.0) == {
        ("http", "/api/{id:int}"): 10.0,
        ("admin", "/tasks"): 0.0,
    }
    assert request_rates(after, before, 2.0) is None  # the process restarted
    assert request_rates(before, after, 0.0) is None
    new_route = Figures(requests={("http", "/"): 4.0})
    assert request_rates(Figures(), new_route, 1.0) == {("http", "/"): 4.0}
