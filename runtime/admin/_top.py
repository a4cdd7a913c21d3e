"""``python -m runtime top``: a live terminal view of a process, read from its admin endpoint.

It is a client in a process of its own: every ``--interval`` seconds it asks the admin
endpoint for ``GET /tasks`` and ``GET /metrics`` (urllib, in a worker thread, so the view never
waits on the network) and draws the task tree, a pane of figures and, on request, one task's
await stack (``GET /tasks/<id>/stack``).

What does not draw is plain functions over plain data (:func:`parse_admin_address`,
:func:`parse_tasks`, :func:`tree_rows`, :func:`read_figures`, :func:`request_rates`), tested
without a terminal; the textual app only lays their output out.

Request rates are deltas of ``runtime_http_requests_total`` between two polls, so the first
poll shows none. A counter that went down (the process was restarted on the same port) gives
no rate for that poll rather than a negative one.

An endpoint that cannot be reached at start is an error (exit 1, before any drawing); one that
goes away later is shown on the status line and asked again at every interval, keeping the
last tree on screen.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import socket
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, ClassVar

import attrs
from prometheus_client.parser import text_string_to_metric_families
from textual import on
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import DataTable, Footer, Static

HINT = "start the process with an admin port (python -m runtime demo prints it)"
SORTS = ("id", "age", "name")  # the order ``s`` cycles through; id is the spawn order
DEFAULT_INTERVAL = 1.0  # seconds: fresh enough to watch, a negligible load on the process
_MIN_INTERVAL = 0.1
_MAX_TIMEOUT = 5.0  # seconds an HTTP request may take before the endpoint counts as down
_COLUMNS = (
    ("id", "id"),
    ("task", "task"),
    ("kind", "kind"),
    ("state", "state"),
    ("age", "age"),
    ("detail", "detail"),  # before waiting_in: short, and what tells connections apart
    ("waiting_in", "waiting in"),
)
_TOP_ROUTES = 8  # request-rate lines in the figures pane, busiest first


# -- plain data ---------------------------------------------------------------------------------


class AdminUnreachable(Exception):
    """The admin endpoint did not answer, or answered something that is not the admin's.

    Attributes:
        url: The endpoint's base URL.
        reason: What went wrong, short ("connection refused", "timed out").
    """

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"cannot reach the admin endpoint at {url} ({reason}); {HINT}")
        self.url = url
        self.reason = reason


class TaskEnded(Exception):
    """``GET /tasks/<id>/stack`` answered 404: the task finished since the tree was drawn."""


@attrs.frozen
class TaskInfo:
    """One task of ``GET /tasks`` (see the admin contract for each field)."""

    id: int
    parent: int | None
    name: str
    kind: str
    state: str
    age: float | None
    waiting_in: str | None
    detail: str | None


@attrs.frozen
class Snapshot:
    """One answer of ``GET /tasks``: the process's id, its tasks (parents first) and counts."""

    pid: int | None
    tasks: tuple[TaskInfo, ...]
    shutting_down: bool = False


@attrs.frozen
class Frame:
    """One frame of an await stack, outermost first."""

    file: str
    line: int | None
    function: str
    code: str | None


@attrs.frozen
class Figures:
    """The figures read from one ``GET /metrics``.

    Attributes:
        values: Every sample without labels, by sample name (``runtime_timers_pending``).
        connections: ``runtime_server_connections_active`` by server.
        requests: ``runtime_http_requests_total`` by (server, route), summed over method and
            status.
    """

    values: Mapping[str, float] = attrs.field(factory=dict)
    connections: Mapping[str, float] = attrs.field(factory=dict)
    requests: Mapping[tuple[str, str], float] = attrs.field(factory=dict)


def parse_admin_address(text: str) -> str:
    """The base URL for ``--admin``: ``HOST:PORT`` or ``http://HOST:PORT``.

    Raises:
        ValueError: For anything else, saying what is expected.
    """
    raw = text.strip()
    parts = urllib.parse.urlsplit(raw if "://" in raw else f"http://{raw}")
    expected = f"--admin {text!r}: expected HOST:PORT or http://HOST:PORT, e.g. 127.0.0.1:9901"
    if parts.scheme != "http":
        raise ValueError(f"{expected} (the admin endpoint serves plain http)")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"{expected} (bad port)") from None
    if not parts.hostname or port is None or parts.path not in ("", "/") or parts.query:
        raise ValueError(expected)
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"http://{host}:{port}"


def parse_tasks(document: Any) -> Snapshot:
    """A :class:`Snapshot` from the decoded JSON of ``GET /tasks``.

    Raises:
        ValueError: When the document is not shaped like the admin's answer.
    """
    try:
        tasks = tuple(_task(item) for item in document["tasks"])
        shutting_down = bool((document.get("runtime") or {}).get("shutting_down", False))
        pid = document.get("pid")
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"not the admin's /tasks document ({exc!r})") from None
    return Snapshot(pid if isinstance(pid, int) else None, tasks, shutting_down)


def _task(item: Mapping[str, Any]) -> TaskInfo:
    age = item.get("age")
    return TaskInfo(
        id=int(item["id"]),
        parent=None if item.get("parent") is None else int(item["parent"]),
        name=str(item.get("name") or "?"),
        kind=str(item.get("kind") or "?"),
        state=str(item.get("state") or "?"),
        age=None if age is None else float(age),
        waiting_in=item.get("waiting_in"),
        detail=item.get("detail"),
    )


def parse_stack(document: Any) -> tuple[Frame, ...]:
    """The frames of ``GET /tasks/<id>/stack``, outermost first.

    Raises:
        ValueError: When the document is not shaped like the admin's answer.
    """
    try:
        return tuple(
            Frame(str(f["file"]), f.get("line"), str(f["function"]), f.get("code"))
            for f in document["frames"]
        )
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"not the admin's stack document ({exc!r})") from None


def format_age(age: float | None) -> str:
    """A task's age, short: ``4.2s``, ``3m07s``, ``2h05m``, ``3d04h``; ``-`` when unknown."""
    if age is None:
        return "-"
    if age < 60:
        return f"{age:.1f}s"
    seconds = int(age)
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    if seconds < 86400:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 86400}d{seconds % 86400 // 3600:02d}h"


def short_name(name: str) -> str:
    """A task name for the tree: a dotted code path keeps its last two parts.

    ``runtime.net._server.Server._accept_loop`` is drawn ``Server._accept_loop`` and
    ``pkg.mod.serve.<locals>.loop`` ``serve.<locals>.loop``; the stack view shows the whole
    name. Names that are not dotted paths (``connection``, ``job 3``) are kept as they are.
    """
    parts = name.split(".")
    if len(parts) < 3 or not all(p.isidentifier() or p == "<locals>" for p in parts):
        return name
    keep = 3 if parts[-2] == "<locals>" else 2
    return ".".join(parts[-keep:])


def _sort_key(sort: str) -> Callable[[TaskInfo], tuple[Any, ...]]:
    if sort == "age":  # oldest first; tasks of unknown age after the others
        return lambda t: (t.age is None, -(t.age or 0.0), t.id)
    if sort == "name":
        return lambda t: (short_name(t.name), t.id)
    return lambda t: (t.id,)


def tree_rows(tasks: Iterable[TaskInfo], sort: str = "id") -> list[tuple[TaskInfo, str]]:
    """The tasks in drawing order, each with the tree prefix to draw before its name.

    Siblings are ordered by ``sort`` (one of :data:`SORTS`); children follow their parent. A
    task whose parent is not in the list (it ended between two looks) is drawn as a root.
    """
    tasks = list(tasks)
    ids = {t.id for t in tasks}
    children: dict[int | None, list[TaskInfo]] = {}
    for t in tasks:
        children.setdefault(t.parent if t.parent in ids else None, []).append(t)
    key = _sort_key(sort)
    rows: list[tuple[TaskInfo, str]] = []

    def walk(parent: int | None, indent: str, top: bool) -> None:
        kids = sorted(children.get(parent, ()), key=key)
        for i, t in enumerate(kids):
            last = i == len(kids) - 1
            rows.append((t, "" if top else indent + ("└─ " if last else "├─ ")))
            walk(t.id, "" if top else indent + ("   " if last else "│  "), False)

    walk(None, "", True)
    return rows


def read_figures(text: str) -> Figures:
    """The figures of a ``GET /metrics`` answer (Prometheus text format)."""
    values: dict[str, float] = {}
    connections: dict[str, float] = {}
    requests: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            name, labels, value = sample.name, sample.labels, float(sample.value)
            if name == "runtime_server_connections_active":
                connections[labels.get("server", "?")] = value
            elif name == "runtime_http_requests_total":
                route = (labels.get("server", "?"), labels.get("route", "?"))
                requests[route] = requests.get(route, 0.0) + value
            elif not labels:
                values[name] = value
    return Figures(values, connections, requests)


def request_rates(
    before: Figures, after: Figures, seconds: float
) -> dict[tuple[str, str], float] | None:
    """Requests per second by (server, route) between two polls ``seconds`` apart.

    A route new in ``after`` counts from 0. Returns None when there is no rate to give: no
    time passed, or a counter went down (the process was restarted).
    """
    if seconds <= 0:
        return None
    rates: dict[tuple[str, str], float] = {}
    for route, count in after.requests.items():
        delta = count - before.requests.get(route, 0.0)
        if delta < 0:
            return None
        rates[route] = delta / seconds
    return rates


def figures_text(
    figures: Figures | None,
    rates: Mapping[tuple[str, str], float] | None,
    snapshot: Snapshot | None,
) -> str:
    """The figures pane, as plain text lines."""
    if figures is None:
        return "no metrics yet"
    v = figures.values
    lines: list[str] = []

    def row(label: str, value: str) -> None:
        lines.append(f"  {label:<20}{value:>10}")

    def count(name: str) -> str:
        return "-" if name not in v else f"{v[name]:.0f}"

    lines.append("tasks")
    row("live (spawned)", count("runtime_tasks_alive"))
    row("in the tree", "-" if snapshot is None else str(len(snapshot.tasks)))
    row("spawned in all", count("runtime_tasks_spawned_total"))
    lines.append("timers")
    row("pending", count("runtime_timers_pending"))
    lag = v.get("runtime_timer_lag_seconds")
    row("lag", "-" if lag is None else f"{lag * 1000:.2f} ms")
    lines.append("reactor")
    row("registered fds", count("runtime_reactor_registered_fds"))
    per_wake = v.get("runtime_reactor_events_per_wakeup")
    row("events per wake-up", "-" if per_wake is None else f"{per_wake:.2f}")
    row("parked tasks", count("runtime_reactor_parked_tasks"))
    lines.append("connections active")
    for server, active in sorted(figures.connections.items()):
        row(server, f"{active:.0f}")
    if not figures.connections:
        lines.append("  (no servers)")
    lines.append("requests/s")
    lines.extend(_rate_lines(rates))
    return "\n".join(lines)


def _rate_lines(rates: Mapping[tuple[str, str], float] | None) -> list[str]:
    if rates is None:
        return ["  (from the next poll on)"]
    if not rates:
        return ["  (no HTTP requests yet)"]
    busiest = sorted(rates.items(), key=lambda item: (-item[1], item[0]))[:_TOP_ROUTES]
    lines = []
    for (server, route), rate in busiest:
        label = f"{server} {route}"
        label = label if len(label) <= 22 else label[:21] + "…"
        lines.append(f"  {label:<22}{rate:>8.1f}")
    return lines


def frames_text(frames: Sequence[Frame]) -> str:
    """An await stack as text: one line per frame (file:line in function) and its code."""
    if not frames:
        return "(no frames: the task is running right now or has not started)"
    lines = []
    for frame in frames:
        where = _short_path(frame.file) + ("" if frame.line is None else f":{frame.line}")
        lines.append(f"{where} in {frame.function}")
        if frame.code:
            lines.append(f"    {frame.code}")
    return "\n".join(lines)


def _short_path(path: str) -> str:
    marker = "site-packages" + os.sep
    if marker in path:
        return path.split(marker, 1)[1]
    try:
        relative = os.path.relpath(path)
    except ValueError:
        return path
    return path if relative.startswith("..") else relative


# -- the client ---------------------------------------------------------------------------------


@attrs.frozen
class AdminClient:
    """A blocking client of one admin endpoint (run it in a thread).

    Attributes:
        url: The base URL, ``http://HOST:PORT``.
        timeout: Seconds one request may take before the endpoint counts as unreachable.
    """

    url: str
    timeout: float = 2.0
    # No proxy: the admin port is local, and an http_proxy in the environment must not
    # send its requests elsewhere.
    _opener: urllib.request.OpenerDirector = attrs.field(
        factory=lambda: urllib.request.build_opener(urllib.request.ProxyHandler({})),
        eq=False,
        repr=False,
    )

    def tasks(self) -> Snapshot:
        """``GET /tasks``.

        Raises:
            AdminUnreachable: When it does not answer the admin's JSON.
        """
        try:
            return parse_tasks(self._json("/tasks"))
        except ValueError as exc:
            raise AdminUnreachable(self.url, f"GET /tasks: {exc}") from None

    def figures(self) -> Figures:
        """``GET /metrics``.

        Raises:
            AdminUnreachable: When it does not answer Prometheus text.
        """
        body = self._get("/metrics")
        try:
            return read_figures(body.decode("utf-8", "replace"))
        except ValueError as exc:
            raise AdminUnreachable(
                self.url, f"GET /metrics: not Prometheus text ({exc})"
            ) from None

    def stack(self, task_id: int) -> tuple[Frame, ...]:
        """``GET /tasks/<id>/stack``.

        Raises:
            TaskEnded: When the task has ended (404).
            AdminUnreachable: When the endpoint does not answer.
        """
        path = f"/tasks/{task_id}/stack"
        try:
            return parse_stack(self._json(path))
        except ValueError as exc:
            raise AdminUnreachable(self.url, f"GET {path}: {exc}") from None

    def _json(self, path: str) -> Any:
        body = self._get(path)
        try:
            return json.loads(body)
        except ValueError:
            raise ValueError("the answer is not JSON; is it an admin port?") from None

    def _get(self, path: str) -> bytes:
        request = urllib.request.Request(self.url + path, headers={"accept": "*/*"})
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                body: bytes = response.read()
                return body
        except urllib.error.HTTPError as exc:
            if exc.code == 404 and path.endswith("/stack"):
                raise TaskEnded(_error_text(exc)) from None
            raise AdminUnreachable(self.url, f"GET {path} answered HTTP {exc.code}") from None
        except (OSError, http.client.HTTPException) as exc:
            raise AdminUnreachable(self.url, _reason(exc)) from None


def _error_text(exc: urllib.error.HTTPError) -> str:
    try:
        return str(json.loads(exc.read())["error"])
    except Exception:
        return f"HTTP {exc.code}"


def _reason(exc: BaseException) -> str:
    """A short reason for a failed request: "connection refused", "timed out"."""
    if isinstance(exc, urllib.error.URLError) and isinstance(exc.reason, BaseException):
        exc = exc.reason
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, TimeoutError | socket.timeout):
        return "timed out"
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve the host: {exc.strerror}"
    if isinstance(exc, ConnectionError | http.client.HTTPException):
        return f"connection lost: {type(exc).__name__}"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return str(exc) or type(exc).__name__


# -- the view -----------------------------------------------------------------------------------


class Polled(Message):
    """One poll's outcome, posted by the polling thread."""

    def __init__(
        self, snapshot: Snapshot | None, figures: Figures | None, at: float, error: str | None
    ) -> None:
        super().__init__()
        self.snapshot = snapshot
        self.figures = figures
        self.at = at
        self.error = error


class StackFetched(Message):
    """The answer to a stack request, posted by the thread that asked."""

    def __init__(self, task: TaskInfo, frames: tuple[Frame, ...] | None, error: str) -> None:
        super().__init__()
        self.task = task
        self.frames = frames
        self.error = error


class StackScreen(ModalScreen[None]):
    """One task's await stack (or why there is none); Escape closes it."""

    DEFAULT_CSS = """
    StackScreen { align: center middle; }
    #stack-box { width: 90%; height: 80%; border: thick $primary; background: $surface; }
    #stack-title { height: 1; padding: 0 1; background: $primary; color: $text; }
    #stack-frames { padding: 0 1; }
    #stack-help { height: 1; padding: 0 1; color: $text-muted; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "close", "Close")]

    def __init__(self, title: str, body: str) -> None:
        super().__init__()
        self.title_text = title
        self.body_text = body

    def compose(self) -> ComposeResult:
        with Vertical(id="stack-box"):
            yield Static(self.title_text, id="stack-title", markup=False)
            with VerticalScroll():
                yield Static(self.body_text, id="stack-frames", markup=False)
            yield Static("Escape closes", id="stack-help")

    def action_close(self) -> None:
        """Close the stack view."""
        self.dismiss(None)


class TopApp(App[int]):
    """The live view of one admin endpoint.

    Args:
        client: The admin endpoint's client.
        interval: Seconds between polls.
        initial: A first snapshot to draw before the first poll answers.

    Attributes:
        polls: How many poll outcomes (answers or failures) the view has applied.
        sort: The current order among siblings, one of :data:`SORTS`.
        status: The status line's text.
    """

    TITLE = "runtime top"
    CSS = """
    #status { height: 1; padding: 0 1; background: $boost; }
    #status.-down { background: $error; }
    #body { height: 1fr; }
    #tasks { width: 1fr; }
    #figures { width: 36; padding: 0 1; border-left: solid $primary; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit_top", "Quit"),
        Binding("ctrl+c", "quit_top", "Quit", show=False, priority=True),
        Binding("s", "cycle_sort", "Sort"),
        Binding("k", "stack", "Stack (Enter)"),
        Binding("r", "poll", "Refresh"),
    ]

    def __init__(
        self, client: AdminClient, *, interval: float = DEFAULT_INTERVAL, initial: Snapshot | None
    ) -> None:
        super().__init__()
        self.client = client
        self.interval = interval
        self.polls = 0
        self.sort = SORTS[0]
        self.status = ""
        self._snapshot = initial
        self._figures: Figures | None = None
        self._rates: dict[tuple[str, str], float] | None = None
        self._last_at = 0.0
        self._polling = False
        self._down_since: str | None = None
        self._down_reason = ""
        self._rows: dict[str, tuple[str, ...]] = {}
        self._changed = asyncio.Event()

    def compose(self) -> ComposeResult:
        yield Static("", id="status", markup=False)
        with Horizontal(id="body"):
            yield DataTable[str](id="tasks", cursor_type="row", zebra_stripes=True)
            yield Static("", id="figures", markup=False)
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#tasks", DataTable)
        for key, label in _COLUMNS:
            table.add_column(label, key=key)
        table.focus()
        self._redraw()
        self.action_poll()
        self.set_interval(self.interval, self.action_poll)

    async def wait_until(self, predicate: Callable[[], bool]) -> None:
        """Wait until ``predicate()`` holds, checking it after each applied change."""
        while not predicate():
            self._changed.clear()
            await self._changed.wait()

    # -- polling

    def action_poll(self) -> None:
        """Poll the endpoint now (unless a poll is under way)."""
        if not self._polling:
            self._polling = True
            self.run_worker(self._poll, thread=True, group="poll", exit_on_error=False)

    def _poll(self) -> None:
        try:
            snapshot, figures = self.client.tasks(), self.client.figures()
        except AdminUnreachable as exc:
            self.post_message(Polled(None, None, time.monotonic(), exc.reason))
        except Exception as exc:  # a poll that dies would stop the polling for good
            self.post_message(Polled(None, None, time.monotonic(), f"bad answer: {exc!r}"))
        else:
            self.post_message(Polled(snapshot, figures, time.monotonic(), None))

    @on(Polled)
    def _polled(self, message: Polled) -> None:
        self._polling = False
        self.polls += 1
        if message.error is not None:
            self._down_since = self._down_since or time.strftime("%H:%M:%S")
            self._down_reason = message.error
            self._rates = None
        else:
            if self._figures is not None and message.figures is not None and self._last_at:
                before = self._figures
                self._rates = request_rates(before, message.figures, message.at - self._last_at)
            self._down_since = None
            self._snapshot, self._figures = message.snapshot, message.figures
            self._last_at = message.at
        self._redraw()
        self._changed.set()

    # -- drawing

    def _redraw(self) -> None:
        self._draw_status()
        self._draw_tree()
        figures = self.query_one("#figures", Static)
        figures.update(figures_text(self._figures, self._rates, self._snapshot))

    def _draw_status(self) -> None:
        line = self.query_one("#status", Static)
        where = self.client.url
        if self._down_since is not None:
            self.status = (
                f"{where}: cannot reach the admin endpoint ({self._down_reason}) since "
                f"{self._down_since}; retrying every {self.interval:g} s"
            )
        else:
            snap = self._snapshot
            pid = "?" if snap is None or snap.pid is None else snap.pid
            count = 0 if snap is None else len(snap.tasks)
            draining = " · shutting down" if snap is not None and snap.shutting_down else ""
            self.status = (
                f"{where} · pid {pid} · {count} tasks{draining} · sort: {self.sort} (s)"
                f" · every {self.interval:g} s"
            )
        line.update(self.status)
        line.set_class(self._down_since is not None, "-down")

    def _draw_tree(self) -> None:
        table: DataTable[str] = self.query_one("#tasks", DataTable)
        tasks = () if self._snapshot is None else self._snapshot.tasks
        rows = {str(t.id): _cells(t, prefix) for t, prefix in tree_rows(tasks, self.sort)}
        if list(rows) == list(self._rows):
            for key, cells in rows.items():
                for (column, _), old, new in zip(_COLUMNS, self._rows[key], cells, strict=True):
                    if old != new:
                        table.update_cell(key, column, new)
        else:
            self._rebuild(table, rows)
        self._rows = rows

    def _rebuild(self, table: DataTable[str], rows: dict[str, tuple[str, ...]]) -> None:
        selected = self._selected_key(table)
        index, scroll_y = table.cursor_row, table.scroll_y
        table.clear()
        for key, cells in rows.items():
            table.add_row(*cells, key=key)
        if selected in rows:
            index = list(rows).index(selected)
        if rows:
            table.move_cursor(row=min(index, len(rows) - 1), scroll=False)
            table.scroll_to(y=scroll_y, animate=False)

    def _selected_key(self, table: DataTable[str]) -> str | None:
        if not self._rows or table.row_count == 0:
            return None
        try:
            return table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        except Exception:  # the cursor is outside the table (it was just cleared)
            return None

    def selected_task(self) -> TaskInfo | None:
        """The task under the cursor, if any."""
        key = self._selected_key(self.query_one("#tasks", DataTable))
        if key is None or self._snapshot is None:
            return None
        return next((t for t in self._snapshot.tasks if str(t.id) == key), None)

    # -- keys

    def action_cycle_sort(self) -> None:
        """Order siblings by the next key of :data:`SORTS`."""
        self.sort = SORTS[(SORTS.index(self.sort) + 1) % len(SORTS)]
        self._redraw()

    def action_stack(self) -> None:
        """Show the await stack of the task under the cursor."""
        task = self.selected_task()
        if task is not None:
            self.run_worker(lambda: self._fetch_stack(task), thread=True, exit_on_error=False)

    @on(DataTable.RowSelected)
    def _row_selected(self) -> None:
        self.action_stack()

    def _fetch_stack(self, task: TaskInfo) -> None:
        try:
            frames = self.client.stack(task.id)
        except TaskEnded as exc:
            self.post_message(StackFetched(task, None, f"the task has ended ({exc})"))
        except AdminUnreachable as exc:
            self.post_message(StackFetched(task, None, f"cannot get the stack: {exc.reason}"))
        except Exception as exc:
            self.post_message(StackFetched(task, None, f"cannot get the stack: {exc!r}"))
        else:
            self.post_message(StackFetched(task, frames, ""))

    @on(StackFetched)
    async def _stack_fetched(self, message: StackFetched) -> None:
        task = message.task
        title = f"await stack of task {task.id}: {task.name}"
        body = message.error if message.frames is None else frames_text(message.frames)
        if isinstance(self.screen, StackScreen):
            self.screen.dismiss(None)
        await self.push_screen(StackScreen(title, body))
        self._changed.set()

    def action_quit_top(self) -> None:
        """Leave with exit status 0."""
        self.exit(0)


def _cells(task: TaskInfo, prefix: str) -> tuple[str, ...]:
    return (
        str(task.id),
        prefix + short_name(task.name),
        task.kind,
        task.state,
        format_age(task.age),
        task.detail or "",
        task.waiting_in or "-",
    )


# -- the command --------------------------------------------------------------------------------


def _admin_arg(text: str) -> str:
    try:
        return parse_admin_address(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _interval_arg(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= _MIN_INTERVAL:
        raise argparse.ArgumentTypeError(
            f"--interval {text!r}: expected seconds, at least {_MIN_INTERVAL}"
        )
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="trio-runtime top", description="A live view of a process's admin endpoint."
    )
    parser.add_argument(
        "--admin", required=True, type=_admin_arg, help="the admin endpoint, HOST:PORT"
    )
    parser.add_argument(
        "--interval",
        type=_interval_arg,
        default=DEFAULT_INTERVAL,
        help=f"seconds between polls (default {DEFAULT_INTERVAL:g})",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """``python -m runtime top``: returns 0 after ``q``, 1 when the endpoint is unreachable."""
    args = _parser().parse_args(argv)
    client = AdminClient(args.admin, timeout=min(_MAX_TIMEOUT, max(1.0, args.interval * 2)))
    try:
        initial = client.tasks()
    except AdminUnreachable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    app = TopApp(client, interval=args.interval, initial=initial)
    try:
        app.run()
    except KeyboardInterrupt:
        return 0
    return app.return_code or 0
