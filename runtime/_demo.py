"""The demo apps behind ``python -m runtime demo``: the echo and chat examples, served together.

The apps themselves live in ``examples/`` (they are what the tutorial teaches); the demo
imports them as modules: ``runtime._examples`` in an installed wheel, ``examples`` in an
editable checkout. Both
servers are serving before their lines are printed, so a SIGINT or SIGTERM that comes at any
moment after the lines drains them: they stop accepting, finish what each connection has read,
close gracefully, and the process exits 0.
"""

from __future__ import annotations

import functools
import importlib
import logging
import sys
from types import ModuleType

import trio

from .net import ServerConfig, TcpListener, serve
from .rt import RuntimeConfig, run

logger = logging.getLogger("runtime.demo")

_EXAMPLE_PACKAGES = ("runtime._examples", "examples")


def load_example(name: str) -> ModuleType:
    """Import the example ``name`` (``"echo_server"``) as an ordinary module.

    An installed wheel carries the examples as ``runtime._examples`` (see pyproject.toml); a
    source checkout installed with ``pip install -e .`` has the project root on ``sys.path``,
    where they are the ``examples`` package.

    Raises:
        ModuleNotFoundError: neither is installed.
    """
    for package in _EXAMPLE_PACKAGES:
        try:
            return importlib.import_module(f"{package}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name not in (package, f"{package}.{name}"):
                raise  # the example itself failed to import something: say so
    raise ModuleNotFoundError(
        f"example {name!r} not found in {_EXAMPLE_PACKAGES}; install trio-runtime with its "
        "examples (pip install trio-runtime, or pip install -e . in a checkout)"
    )


def _format_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def serve_demo(host: str = "127.0.0.1", port: int = 0, chat_port: int = 0) -> None:
    """Serve echo (on ``port``) and chat (on ``chat_port``) until the runtime shuts down."""
    echo = load_example("echo_server")
    chat = load_example("chat_server")
    echo_listener = TcpListener.bind(host, port)
    chat_listener = TcpListener.bind(host, chat_port)
    room = chat.ChatRoom()
    async with trio.open_nursery() as nursery:
        # Both servers are serving (and will drain on a signal) before the lines go out.
        await nursery.start(
            functools.partial(serve, config=ServerConfig(name="echo")), echo.echo, [echo_listener]
        )
        await nursery.start(
            functools.partial(serve, config=ServerConfig(name="chat", idle_timeout=600)),
            room.handle,
            [chat_listener],
        )
        print(f"listening on tcp://{_format_address(host, echo_listener.port)}", flush=True)
        print(
            f"also serving chat on tcp://{_format_address(host, chat_listener.port)}", flush=True
        )


def run_demo(host: str, port: int, *, chat_port: int = 0, grace: float = 10.0) -> int:
    """Run the demo until SIGINT/SIGTERM; return the process exit code."""
    try:
        run(serve_demo, host, port, chat_port, config=RuntimeConfig(shutdown_grace=grace))
    except OSError as exc:
        print(f"error: cannot serve on {host}:{port}: {exc}", file=sys.stderr)
        return 1
    return 0
