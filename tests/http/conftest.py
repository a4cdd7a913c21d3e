"""The HTTP tests run once per request parser: h11, and httptools when it is installed.

``HttpConfig(parser=...)`` picks the parser; here an autouse fixture makes every server that a
test starts use the parser of the current parametrization instead, so the whole suite (limits,
framing errors, pipelining, the hypothesis and fuzz tests) checks both behind the same
hardening. Tests that ask for ``parser="auto"`` or ``"httptools"`` explicitly keep asking.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from runtime.http import _server
from runtime.http._httptools import AVAILABLE

PARSERS = [
    "h11",
    pytest.param(
        "httptools",
        marks=pytest.mark.skipif(
            not AVAILABLE, reason=("httptools is not installed: pip install httptools")
        ),
    ),
]


@pytest.fixture(autouse=True, params=PARSERS)
def http_parser(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The request parser every HTTP server of this test uses."""
    name: str = request.param
    chosen = _server._use_httptools

    def use(parser: str) -> bool:
        if parser == "h11":
            return name == "httptools"
        return chosen(parser)

    monkeypatch.setattr(_server, "_use_httptools", use)
    yield name
