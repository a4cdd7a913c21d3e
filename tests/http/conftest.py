"""The HTTP tests run once per parser: h11, and httptools when it is installed.

``HttpConfig(parser=...)`` picks the server's request parser and ``Client(parser=...)`` the
client's codec; here an autouse fixture makes every server and every client that a test starts
use the parser of the current parametrization instead, so the whole suite (limits, framing
errors, pipelining, the hypothesis and fuzz tests, the client's malformed answers) checks both
behind the same hardening. Tests that ask for ``"auto"`` or ``"httptools"`` explicitly keep
asking.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from runtime.http import _client, _client_codec, _server
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

    def codec(parser: str) -> type[_client_codec.Codec]:
        if parser == "h11" and name == "httptools":
            return _client_codec.HttptoolsCodec
        return _client_codec.codec_class(parser)

    monkeypatch.setattr(_client, "codec_class", codec)
    yield name
