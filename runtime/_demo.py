"""The demo apps behind ``python -m runtime demo``: the echo and chat examples, served together.

The apps themselves live in ``examples/`` (they are what the tutorial teaches); the demo
loads them from there, or from the copy packed into the wheel as ``runtime/_examples``. Both
servers are serving before their lines are printed, so a SIGINT or SIGTERM that comes at any
moment after the lines drains them: they stop accepting, finish what each connection has read,
close gracefully, and the process exits 0.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import sys
from pathlib import Path
from types import ModuleType

import trio

from .net import ServerConfig, TcpListener, serve
from .rt import RuntimeConfig, run

logger = logging.getLogger("runtime.demo")

_HERE = Path(__file__).resolve().parent
_EXAMPLE_DIRS = [_HERE / "_examples", _HERE.parent / "examples"]


def load_example(name: str) -> ModuleType:
    """Import ``examples/<name>.py`` as a module.

    Raises:
        FileNotFoundError: the examples are not installed next to the package.
    """
    for folder in _EXAMPLE_DIRS:
        path = folder / f"{name}.py"
        if path.exists():
            spec = importlib.util.spec_from_file_location(f"runtime_example_{name}", path)
            assert spec is not None and spec.loader is not None
            module = importlib.util.module_from_spec(spec)
            sys.modules[spec.name] = module
            spec.loader.exec_module(module)
            return module
    raise FileNotFoundError(f"example {name}.py not found in {_EXAMPLE_DIRS}")


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
