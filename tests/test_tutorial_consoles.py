"""Every ```console block of docs/tutorial/*.md that shows output is checked against the page.

A console block is a shell session: ``$ command`` lines (a command whose quotes are still open
goes on over the next lines), each followed by the lines it prints. ``REGISTRY`` names, for
every block that shows output, the test that runs its commands and compares what they print
with what the page shows; ``test_every_shown_console_block_is_checked`` fails when a block
appears that nobody checks, or when the registry names a test that no longer exists.

The sessions this file runs itself follow the page's conventions, and nothing looser:

- a server is started as the page writes it, with each ``--...port N`` changed to 0; its
  ``listening on`` lines say which port stands for the page's N in the commands that follow.
  A port the command did not choose (the kernel picked it) matches any number, the same one
  wherever it appears again;
- a line ``...`` stands for one or more lines the page leaves out, and ``... `` at the start of
  a line for the log record's time stamp;
- ``date:`` headers are the time of the request, and a page's "one run's timing" figures
  (named per block below) are numbers; everything else is compared exactly;
- ``^C`` is Ctrl-C: the server gets SIGINT there, and the lines after it are its log;
- at the end every server gets SIGTERM, by its pid, and must exit 0 having printed nothing
  more than the page shows.
"""

from __future__ import annotations

import ast
import os
import re
import runpy
import select
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import attrs
import pytest
import trio.testing

import runtime

ROOT = Path(__file__).resolve().parent.parent
TUTORIAL = ROOT / "docs" / "tutorial"
CONSOLE = re.compile(r"^```console\n(.*?)^```", re.MULTILINE | re.DOTALL)
HANG_GUARD = 30.0  # seconds; a guard against a hang, not a performance claim

# (page, index of the ```console block on the page, its first command) -> the test that runs
# that block's commands and compares their output with the block's.
REGISTRY: dict[tuple[str, int, str], str] = {
    ("asgi.md", 0, "python -m runtime serve examples.asgi_app:app --port 8000"): (
        "tests/asgi/test_asgi_tutorial.py::test_the_page_runs_as_written"
    ),
    (
        "asgi.md",
        1,
        'curl -s -X PUT http://127.0.0.1:8000/notes/tea -d \'{"text": "green, 80 degrees"}\'',
    ): ("tests/asgi/test_asgi_tutorial.py::test_the_page_runs_as_written"),
    (
        "asgi.md",
        2,
        "python -m runtime serve examples.asgi_app:app --port 8000 --max-body-bytes 1000",
    ): ("tests/asgi/test_asgi_tutorial.py::test_the_page_runs_as_written"),
    ("build-a-proxy.md", 0, "python examples/http_hello.py --port 9000 &"): (
        "tests/test_tutorial_consoles.py::test_the_session_prints_what_the_page_shows"
    ),
    ("chat-server.md", 0, "python examples/chat_server.py --port 7001"): (
        "tests/test_tutorial_consoles.py::test_the_session_prints_what_the_page_shows"
    ),
    ("echo-server.md", 0, "python examples/echo_server.py --port 7000"): (
        "tests/test_tutorial_consoles.py::test_the_session_prints_what_the_page_shows"
    ),
    (
        "echo-server.md",
        1,
        "python examples/echo_client.py --port 7000 --conns 64 --duration 5 --count 1000",
    ): ("tests/test_tutorial_consoles.py::test_the_session_prints_what_the_page_shows"),
    ("first-program.md", 0, "python examples/first_program.py"): (
        "tests/test_tutorial_consoles.py::test_a_mock_clock_program_prints_what_the_page_shows"
    ),
    ("http-hello.md", 0, "python examples/http_hello.py --port 8000"): (
        "tests/test_tutorial_consoles.py::test_the_session_prints_what_the_page_shows"
    ),
    ("http-hello.md", 1, "curl -i http://127.0.0.1:8000/"): (
        "tests/test_tutorial_consoles.py::test_the_session_prints_what_the_page_shows"
    ),
    ("http-hello.md", 2, "curl -i http://127.0.0.1:8000/nope"): (
        "tests/test_tutorial_consoles.py::test_the_session_prints_what_the_page_shows"
    ),
    ("http-hello.md", 3, "python examples/http_hello.py --port 8000 --workers 2"): (
        "tests/test_tutorial_consoles.py::test_the_session_prints_what_the_page_shows"
    ),
    ("http-hello.md", 4, "python examples/http_hello.py --port 8000 --parser auto"): (
        "tests/test_tutorial_consoles.py::test_the_session_prints_what_the_page_shows"
    ),
    ("http-hello.md", 5, "python examples/http_hello.py --port 8000 --log-level INFO"): (
        "tests/test_tutorial_consoles.py::test_the_session_prints_what_the_page_shows"
    ),
    ("json-api.md", 0, "python examples/json_api.py --port 8000"): (
        "tests/test_tutorial_consoles.py::test_the_session_prints_what_the_page_shows"
    ),
    (
        "json-api.md",
        1,
        'curl -i -X POST http://127.0.0.1:8000/items -d \'{"name": "tea", "price": 3.5}\'',
    ): ("tests/test_tutorial_consoles.py::test_the_session_prints_what_the_page_shows"),
    ("json-api.md", 2, "curl http://127.0.0.1:8000/items/1"): (
        "tests/test_tutorial_consoles.py::test_the_session_prints_what_the_page_shows"
    ),
    (
        "json-api.md",
        3,
        'curl -i -X POST http://127.0.0.1:8000/items -d \'{"price": -1, "id": 7}\'',
    ): ("tests/test_tutorial_consoles.py::test_the_session_prints_what_the_page_shows"),
    ("json-api.md", 4, "curl -i http://127.0.0.1:8000/items/2"): (
        "tests/test_tutorial_consoles.py::test_the_session_prints_what_the_page_shows"
    ),
    ("json-api.md", 5, "curl -i -X DELETE http://127.0.0.1:8000/items/1"): (
        "tests/test_tutorial_consoles.py::test_the_session_prints_what_the_page_shows"
    ),
    ("json-api.md", 6, "python -m runtime demo --http-port 8080"): (
        "tests/test_tutorial_consoles.py::test_the_session_prints_what_the_page_shows"
    ),
    ("middleware.md", 0, "python examples/middleware_stack.py"): (
        "tests/test_tutorial_consoles.py::test_a_mock_clock_script_prints_what_the_page_shows"
    ),
    ("mini-redis.md", 0, "python examples/mini_redis/server.py --port 6380"): (
        "tests/miniredis/test_tutorial.py::test_every_console_session_prints_what_the_page_shows"
    ),
    ("mini-redis.md", 1, "python examples/mini_redis/client.py --port 6380 set greeting hello"): (
        "tests/miniredis/test_tutorial.py::test_every_console_session_prints_what_the_page_shows"
    ),
    ("mini-redis.md", 2, "redis-cli -p 6380 set session abc ex 100"): (
        "tests/miniredis/test_tutorial.py::test_every_console_session_prints_what_the_page_shows"
    ),
    (
        "mini-redis.md",
        3,
        "printf 'SET visits 0\\r\\nINCR visits\\r\\nFLY away\\r\\nINCR visits\\r\\n'"
        " | redis-cli -p 6380 --pipe 2>/dev/null",
    ): ("tests/miniredis/test_tutorial.py::test_every_console_session_prints_what_the_page_shows"),
    ("pipeline.md", 0, "python examples/pipeline_fixed.py"): (
        "tests/test_tutorial_consoles.py::test_a_mock_clock_script_prints_what_the_page_shows"
    ),
    ("pipeline.md", 1, "python examples/pipeline_broken.py"): (
        "tests/test_tutorial_consoles.py::test_a_mock_clock_script_prints_what_the_page_shows"
    ),
    ("racing.md", 0, "python examples/racing.py"): (
        "tests/test_racing_example.py::test_the_command_prints_what_the_page_shows"
    ),
    ("shared-state.md", 0, "python examples/shared_state_broken.py"): (
        "tests/test_shared_state_example.py::test_every_command_prints_what_the_page_shows"
    ),
    ("shared-state.md", 1, "python examples/shared_state_fixed.py"): (
        "tests/test_shared_state_example.py::test_every_command_prints_what_the_page_shows"
    ),
    ("simulate.md", 0, "python examples/sim_topology.py --seed 7 --requests 1000"): (
        "tests/sim/test_sim_tutorial.py::test_the_shown_run_prints_what_the_page_shows_and_again_the_same"
    ),
    ("timeouts.md", 0, "python examples/timeouts.py"): (
        "tests/test_tutorial_consoles.py::test_a_mock_clock_program_prints_what_the_page_shows"
    ),
    (
        "tls.md",
        0,
        "mkdir tls-demo",
    ): "tests/test_tls_example.py::test_tls_tutorial_runs_as_written",
    (
        "tls.md",
        1,
        "python ../examples/echo_server.py --port 7000"
        " --ssl-certfile server.pem --ssl-keyfile server.key",
    ): ("tests/test_tls_example.py::test_tls_tutorial_runs_as_written"),
    (
        "tls.md",
        2,
        "python ../examples/echo_client.py --port 7000"
        " --ssl-cafile client.pem --conns 4 --count 100",
    ): ("tests/test_tls_example.py::test_tls_tutorial_runs_as_written"),
    (
        "tls.md",
        3,
        "mkdir stranger",
    ): "tests/test_tls_example.py::test_tls_tutorial_runs_as_written",
    (
        "tls.md",
        4,
        "python ../examples/echo_client.py --port 7000"
        " --ssl-cafile client.pem --server-hostname example.com",
    ): ("tests/test_tls_example.py::test_tls_tutorial_runs_as_written"),
    ("watch-a-server.md", 0, "python examples/job_queue.py --port 8000 --admin-port 9901"): (
        "tests/test_tutorial_consoles.py::test_the_session_prints_what_the_page_shows"
    ),
    ("watch-a-server.md", 1, "curl -d '{\"seconds\": 0.5}' http://127.0.0.1:8000/jobs"): (
        "tests/test_tutorial_consoles.py::test_the_session_prints_what_the_page_shows"
    ),
    ("ws-chat.md", 0, "python examples/ws_chat.py --port 8000"): (
        "tests/test_tutorial_consoles.py::test_the_session_prints_what_the_page_shows"
    ),
}


# -- the pages' console blocks -------------------------------------------------------------------


@attrs.define
class Command:
    """One command of a block (its ``$`` line, and the lines that finish an open quote) and
    the lines shown under it."""

    line: str
    shown: list[str] = attrs.field(factory=list)


@attrs.frozen
class Block:
    page: str
    index: int
    commands: list[Command]

    @property
    def key(self) -> tuple[str, int, str]:
        return (self.page, self.index, self.commands[0].line)

    @property
    def shows_output(self) -> bool:
        return any(command.shown for command in self.commands)


def _complete(command: str) -> bool:
    try:
        shlex.split(command, comments=True)
    except ValueError:  # "No closing quotation": the command goes on over the next line
        return False
    return True


def parse_block(page: str, index: int, text: str) -> Block:
    commands: list[Command] = []
    for line in text.splitlines():
        if commands and not _complete(commands[-1].line):
            commands[-1].line += "\n" + line
        elif line.startswith("$ "):
            commands.append(Command(line[2:]))
        else:
            assert commands, f"{page}: console block {index} shows output before any command"
            commands[-1].shown.append(line)
    return Block(page, index, commands)


def page_blocks(page: str) -> list[Block]:
    text = (TUTORIAL / page).read_text(encoding="utf-8")
    return [parse_block(page, i, body) for i, body in enumerate(CONSOLE.findall(text))]


def all_blocks() -> list[Block]:
    return [block for path in sorted(TUTORIAL.glob("*.md")) for block in page_blocks(path.name)]


# -- the guard -----------------------------------------------------------------------------------


def _test_functions(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.name.startswith("test")
    }


def test_every_shown_console_block_is_checked() -> None:
    shown = {block.key for block in all_blocks() if block.shows_output}
    assert len(shown) > 30  # the parser still finds the pages' blocks
    unchecked = sorted(shown - REGISTRY.keys())
    assert not unchecked, f"console blocks with output that no test checks: {unchecked}"
    stale = sorted(REGISTRY.keys() - shown)
    assert not stale, f"REGISTRY names blocks the pages no longer have: {stale}"
    for key, where in REGISTRY.items():
        file, _, function = where.partition("::")
        assert (ROOT / file).is_file(), (key, where)
        assert function in _test_functions(ROOT / file), (key, where)


def test_a_command_with_an_open_quote_goes_on_over_the_next_lines() -> None:
    block = parse_block("x.md", 0, '$ python -c "\nprint(1)\n"\n$ echo hi\nhi\n')
    assert [c.line for c in block.commands] == ['python -c "\nprint(1)\n"', "echo hi"]
    assert [c.shown for c in block.commands] == [[], ["hi"]]


# -- comparing output with what a page shows -----------------------------------------------------

HTTP_DATE = r"[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT"
PORT = re.compile(r"(?<=127\.0\.0\.1:)\d+\b")


def expected_pattern(
    shown: list[str], ports: dict[str, str], timings: list[str], *, ports_bind: bool = False
) -> re.Pattern[str]:
    """A regex for output lines (joined with newlines, each ending in one).

    ``ports`` maps a page port to this run's; with ``ports_bind`` the page's ports in
    ``ports`` are captured instead (group ``p<page port>``), to learn them. Any other port
    is one the kernel picked: any number, the same wherever it appears again. ``timings``
    are regexes for the figures of one run on this block's lines.
    """
    seen: set[str] = set()
    variables = [(re.compile(t), r"\d+(?:\.\d+)?") for t in timings]
    variables.append((re.compile(r"(?<=^date: ).*$"), HTTP_DATE))

    def port(number: str) -> str:
        if number in ports and not ports_bind:
            return re.escape(ports[number])
        if number in seen:
            return f"(?P=p{number})"
        seen.add(number)
        return rf"(?P<p{number}>\d+)"

    def line_pattern(line: str) -> str:
        if line == "...":
            return r"(?:[^\n]*\n)+?"
        prefix = ""
        if line.startswith("... "):  # a log record's time stamp, left out
            prefix, line = r"[^\n]+ ", line[4:]
        spans: list[tuple[int, int, str]] = [
            (m.start(), m.end(), port(m.group())) for m in PORT.finditer(line)
        ]
        for regex, replacement in variables:
            spans += [(m.start(), m.end(), replacement) for m in regex.finditer(line)]
        out, at = [prefix], 0
        for start, end, replacement in sorted(spans):
            assert start >= at, f"overlapping figures in {line!r}"
            out += [re.escape(line[at:start]), replacement]
            at = end
        out.append(re.escape(line[at:]))
        return "".join(out) + r"\n"

    return re.compile("".join(line_pattern(line) for line in shown))


def assert_shows(
    got: list[str], shown: list[str], ports: dict[str, str], timings: list[str]
) -> None:
    text = "".join(line + "\n" for line in got)
    assert expected_pattern(shown, ports, timings).fullmatch(text), (
        "the page shows:\n" + "\n".join(shown) + "\n\nthe command printed:\n" + text
    )


def test_the_comparison_leaves_out_only_what_it_says() -> None:
    ports = {"8000": "41234"}
    shown = ["listening on http://127.0.0.1:8000", "date: Wed, 02 Dec 2026 17:13:34 GMT", "..."]
    got = ["listening on http://127.0.0.1:41234", "date: Thu, 03 Dec 2026 07:00:01 GMT", "a", "b"]
    assert_shows(got, shown, ports, [])
    with pytest.raises(AssertionError):  # "..." is at least one line
        assert_shows(got[:2], shown, ports, [])
    with pytest.raises(AssertionError):  # the page's port is this run's port, no other
        assert_shows(["listening on http://127.0.0.1:41235", *got[1:]], shown, ports, [])
    twice = ["a on 127.0.0.1:35039", "b on 127.0.0.1:35039"]  # a port the kernel picked
    assert_shows(["a on 127.0.0.1:5", "b on 127.0.0.1:5"], twice, ports, [])
    with pytest.raises(AssertionError):
        assert_shows(["a on 127.0.0.1:5", "b on 127.0.0.1:6"], twice, ports, [])
    timed = ["... INFO done in 0.001s: 3 left"]
    assert_shows(
        ["2026-12-03 07:00:01,000 INFO done in 0.25s: 3 left"], timed, ports, [r"[\d.]+(?=s:)"]
    )
    with pytest.raises(AssertionError):  # only the timing is free
        assert_shows(
            ["2026-12-03 07:00:01,000 INFO done in 0.25s: 4 left"], timed, ports, [r"[\d.]+(?=s:)"]
        )


# -- running a page's session --------------------------------------------------------------------


class LineReader:
    """Lines from a pipe, each read with a deadline (select + os.read; the rest is kept)."""

    def __init__(self, pipe: object) -> None:
        self.fd = pipe.fileno()  # type: ignore[attr-defined]
        self.buffer = b""

    def line(self) -> str:
        deadline = time.monotonic() + HANG_GUARD
        while b"\n" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.fd], [], [], left)[0]:
                raise TimeoutError(f"no line within {HANG_GUARD} s (so far: {self.buffer!r})")
            chunk = os.read(self.fd, 65536)
            if not chunk:
                raise EOFError(f"the output closed (so far: {self.buffer!r})")
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line.decode()


@attrs.define
class Server:
    command: str
    proc: subprocess.Popen[bytes]
    stdout: LineReader
    log: list[str] = attrs.field(factory=list)  # what the page shows after ^C

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> tuple[list[str], list[str]]:
        """Signal it (by its pid), wait: the stdout lines it printed since, and its log."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        out, err = self.proc.communicate(timeout=HANG_GUARD)
        assert self.proc.returncode == 0, (self.command, err.decode())
        assert b"Traceback" not in err, (self.command, err.decode())
        return (self.stdout.buffer + out).decode().splitlines(), err.decode().splitlines()


def port_options(argv: list[str]) -> list[int]:
    """Where the command's ``--...port N`` values are."""
    return [i + 1 for i, arg in enumerate(argv[:-1]) if re.fullmatch(r"--([a-z]+-)?port", arg)]


class Shell:
    """A learner's terminals: servers in the background, the other commands one by one."""

    def __init__(self, timings: list[str], edits: dict[str, str], renames: dict[str, str]) -> None:
        self.timings = timings
        self.edits = edits
        self.renames = renames
        self.ports: dict[str, str] = {}
        self.servers: list[Server] = []

    def argv(self, command: str) -> list[str]:
        argv = shlex.split(self.edits.get(command, command))
        if argv[0] == "python":
            argv[0] = sys.executable
        for page, real in self.ports.items():
            argv = [re.sub(rf"(?<=127\.0\.0\.1:){page}\b", real, arg) for arg in argv]
            argv = [
                real if i in port_options(argv) and arg == page else arg
                for i, arg in enumerate(argv)
            ]
        return argv

    def run(self, command: Command) -> None:
        argv = shlex.split(command.line)
        background = argv[-1] == "&"
        if background or (command.shown and command.shown[0].startswith("listening on")):
            self.start(command, background)
        elif argv[0] == "curl":
            self.need("curl")
            self.check(command)
        elif argv[0] == "python":
            self.check(command)
        else:
            pytest.fail(f"the test does not know how to run {command.line!r}")

    def start(self, command: Command, background: bool) -> None:
        argv = self.argv(command.line)[: -1 if background else None]  # upstreams' ports
        page_ports = [argv[i] for i in port_options(argv)]
        for i in port_options(argv):
            argv[i] = "0"
        proc = subprocess.Popen(
            argv,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,  # (the servers' lines are flushed: no PYTHONUNBUFFERED)
        )
        server = Server(command.line, proc, LineReader(proc.stdout))
        self.servers.append(server)
        if background:  # the page shows none of its output: its line only gives the port
            shown = [f"listening on http://127.0.0.1:{page_ports[0]}"]
        else:
            at_ctrl_c = next(
                (i for i, line in enumerate(command.shown) if line.startswith("^C")),
                len(command.shown),
            )
            shown, server.log = command.shown[:at_ctrl_c], command.shown[at_ctrl_c:]
        got = "".join(server.stdout.line() + "\n" for _ in shown)
        learn = dict.fromkeys(page_ports, "")
        match = expected_pattern(shown, learn, self.timings, ports_bind=True).fullmatch(got)
        assert match, f"the page shows:\n{chr(10).join(shown)}\n\nthe server printed:\n{got}"
        for page in page_ports:
            self.ports[page] = match[f"p{page}"]
        if server.log:
            self.stop(server, signal.SIGINT)

    def stop(self, server: Server, sig: signal.Signals = signal.SIGTERM) -> None:
        self.servers.remove(server)
        more, log = server.stop(sig)
        assert more == [], f"{server.command} printed more than the page shows: {more}"
        if server.log:
            server.log[0] = server.log[0].removeprefix("^C")
            assert_shows(log, server.log, self.ports, self.timings)

    def check(self, command: Command) -> None:
        done = subprocess.run(
            self.argv(command.line),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=HANG_GUARD * 2,
        )
        assert done.returncode == 0, (command.line, done.stderr)
        shown = list(command.shown)
        for old, new in self.renames.items():
            shown = [line.replace(old, new) for line in shown]
        assert_shows(done.stdout.splitlines(), shown, self.ports, self.timings)

    def need(self, tool: str) -> None:
        if shutil.which(tool) is None:
            message = f"needs {tool}: apt-get install -y {tool}"
            if os.environ.get("CI"):
                pytest.fail(message)
            pytest.skip(message)

    def close(self) -> None:
        for server in list(self.servers):
            self.stop(server)

    def kill(self) -> None:
        for server in self.servers:
            if server.proc.poll() is None:
                server.proc.kill()
                server.proc.communicate()


@attrs.frozen
class Session:
    """Blocks of one page that run in one shell, in page order."""

    page: str
    blocks: tuple[int, ...]
    # Figures that are one run's timing (regexes for them on the shown lines).
    timings: tuple[str, ...] = ()
    # A command run other than as written (each says why).
    edits: tuple[tuple[str, str], ...] = ()
    # Shown text that reads otherwise on Python 3.13+, as the page says.
    on_python_313: tuple[tuple[str, str], ...] = ()

    @property
    def id(self) -> str:
        return f"{self.page.removesuffix('.md')}#{','.join(map(str, self.blocks))}"


ECHO_RUN = "python examples/echo_client.py --port 7000 --conns 64 --duration 5 --count 1000"
SESSIONS = [
    Session("build-a-proxy.md", (0,)),
    Session("chat-server.md", (0,)),
    Session(
        "echo-server.md",
        (0, 1),
        # "That line is one run's output on one machine": the time, the rate and the latencies.
        timings=(r"(?<= in )[\d.]+(?=s:)", r"\d+(?= msgs/s)", r"(?<=p50 )\d+", r"(?<=p99 )\d+"),
        # The page's run stops by its count, 1,000 messages each, before its --duration 5;
        # a slower machine (or a busy CI) could take longer, so the test gives it more time.
        edits=((ECHO_RUN, ECHO_RUN.replace("--duration 5", "--duration 50")),),
    ),
    Session("http-hello.md", (0, 1, 2)),
    Session("http-hello.md", (3,)),
    Session("http-hello.md", (4,)),
    Session("http-hello.md", (5,), timings=(r"(?<=complete in )[\d.]+(?=s)",)),
    Session(
        "json-api.md",
        (0, 1, 2, 3, 4, 5),
        # "Python 3.13 renamed a few of them, so there 422 reads `Unprocessable Content`"
        on_python_313=(("422 Unprocessable Entity", "422 Unprocessable Content"),),
    ),
    Session("json-api.md", (6,)),
    Session("watch-a-server.md", (0, 1)),
    Session("ws-chat.md", (0,)),
]


@pytest.fixture
def shell() -> Iterator[Callable[[Session], Shell]]:
    shells: list[Shell] = []

    def make(session: Session) -> Shell:
        renames = dict(session.on_python_313) if sys.version_info >= (3, 13) else {}
        shells.append(Shell(list(session.timings), dict(session.edits), renames))
        return shells[-1]

    yield make
    for made in shells:
        made.kill()


@pytest.mark.parametrize("session", SESSIONS, ids=[s.id for s in SESSIONS])
def test_the_session_prints_what_the_page_shows(
    session: Session, shell: Callable[[Session], Shell]
) -> None:
    blocks = page_blocks(session.page)
    prose = " ".join((TUTORIAL / session.page).read_text(encoding="utf-8").split())
    for _, new in session.on_python_313:
        assert f"`{new.split(' ', 1)[1]}`" in prose, "the page says what 3.13 prints"
    terminal = shell(session)
    for index in session.blocks:
        for command in blocks[index].commands:
            terminal.run(command)
    terminal.close()


def test_the_sessions_cover_the_blocks_registered_to_them() -> None:
    ours = "tests/test_tutorial_consoles.py::test_the_session_prints_what_the_page_shows"
    registered = {(page, index) for (page, index, _), test in REGISTRY.items() if test == ours}
    assert registered == {(s.page, i) for s in SESSIONS for i in s.blocks}


# -- programs on a mock clock --------------------------------------------------------------------


def only_command(page: str) -> Command:
    (block,) = [b for b in page_blocks(page) if b.shows_output]
    (command,) = block.commands
    return command


@pytest.mark.parametrize("page", ["middleware.md", "pipeline.md#0", "pipeline.md#1"])
def test_a_mock_clock_script_prints_what_the_page_shows(page: str) -> None:
    """These scripts run themselves under a MockClock ("the output is the same on every
    run"): run as the page writes them, they print the page's lines exactly."""
    name, _, index = page.partition("#")
    blocks = [b for b in page_blocks(name) if b.shows_output]
    (command,) = blocks[int(index or 0)].commands
    argv = shlex.split(command.line)
    assert argv[0] == "python"
    done = subprocess.run(
        [sys.executable, *argv[1:]], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout.splitlines() == command.shown


@pytest.mark.parametrize("page", ["first-program.md", "timeouts.md"])
def test_a_mock_clock_program_prints_what_the_page_shows(
    page: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """These run on the real clock, where lines 10 ms apart could swap on a loaded machine;
    their main, run under a MockClock, prints the page's lines exactly (the delays decide)."""
    command = only_command(page)
    argv = shlex.split(command.line)
    assert argv[0] == "python" and len(argv) == 2
    example = runpy.run_path(str(ROOT / argv[1]))  # not as __main__: we run main ourselves
    clock = trio.testing.MockClock(autojump_threshold=0)
    runtime.run(example["main"], config=runtime.RuntimeConfig(handle_signals=False), clock=clock)
    out = capsys.readouterr()
    assert (out.out.splitlines(), out.err) == (command.shown, "")
