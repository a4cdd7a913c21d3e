"""``HttpConfig``: every limit and timeout of the HTTP server, with its default and reason.

The defaults are at least as strict as nginx's, hyper's and Envoy's. Each limit says what the
client gets when it is breached; the server answers with that status, then closes the
connection gracefully (a lingering close) so the client reads the answer instead of a reset.
"""

from __future__ import annotations

from typing import Any, Literal

import attrs

_pos_int = attrs.validators.and_(attrs.validators.instance_of(int), attrs.validators.gt(0))
_pos = attrs.validators.gt(0.0)
# Typed Any: mypy infers a field's type from its float default and would refuse Optional.
_optional_pos: Any = attrs.validators.optional(_pos)


@attrs.frozen
class HttpConfig:
    """Limits and timeouts of an HTTP server.

    Attributes:
        max_header_bytes: Bytes of the request line and header block together, however they
            arrive (in one read or one byte at a time). Breach: 431 and close. Default 16 KiB
            (nginx's large_client_header_buffers allows 8 KiB per line; Envoy 60 KiB in all).
        max_header_count: Header fields per request. Breach: 431 and close. Default 100
            (hyper's and Envoy's default; a real client sends 10-20).
        max_target_length: Bytes of the request-target. Breach: 414. Default 8 KiB.
        max_body_bytes: Bytes of a request body. A Content-Length above it is refused before
            anything is read (no ``100 Continue`` is sent); a chunked body is counted as it
            streams. Breach: 413 and a lingering close. Default 1 MiB (nginx's
            client_max_body_size).
        header_timeout: Seconds from the first byte of a request to the end of its header
            block: a total deadline, so a slowloris client that sends a byte every few
            seconds is cut too. Breach: 408 and close. Default 30 s.
        body_timeout: Seconds a request body may go without progress. Breach: 408 and close.
            Default 30 s.
        keep_alive_timeout: Seconds an idle keep-alive connection is kept between requests.
            Then it is closed quietly (no 408: the client sent nothing to answer). Default
            75 s (nginx's keepalive_timeout).
        send_timeout: Seconds a response write may go without progress (a client that stops
            reading). Then the connection is closed. Default 30 s.
        max_requests_per_connection: Requests served on one connection; the last one gets
            ``Connection: close``. Default 1000 (nginx's keepalive_requests).
        request_timeout: Seconds a handler may run for one request; then it is cancelled and
            the client gets 503 and a close. None disables it. Default 60 s.
        max_connections: Connections served at once (see ``ServerConfig``). Default 10,000.
        linger: Seconds of lingering close after an error or at a drain. Default 2 s.
        parser: ``"h11"``, or ``"httptools"`` (needs the package), or ``"auto"`` (httptools
            when installed). Default ``"h11"``.
        server_header: The ``Server`` header value; ``""`` sends none. Default
            ``"trio-runtime"``.
        name: Used in log lines and as the ``server`` label of the metrics.
        metrics: Record per-route request counts and latencies into the running runtime's
            metrics registry (``runtime_http_requests_total``, ...). Default True; it costs a
            few additions per request.
        drain_on_shutdown: Drain when the runtime starts shutting down. Default True; the
            admin server turns it off to answer ``/ready`` with 503 through the drain.
    """

    max_header_bytes: int = attrs.field(default=16 * 1024, validator=_pos_int)
    max_header_count: int = attrs.field(default=100, validator=_pos_int)
    max_target_length: int = attrs.field(default=8 * 1024, validator=_pos_int)
    max_body_bytes: int = attrs.field(default=1 << 20, validator=_pos_int)
    header_timeout: float = attrs.field(default=30.0, validator=_pos)
    body_timeout: float = attrs.field(default=30.0, validator=_pos)
    keep_alive_timeout: float = attrs.field(default=75.0, validator=_pos)
    send_timeout: float = attrs.field(default=30.0, validator=_pos)
    max_requests_per_connection: int = attrs.field(default=1000, validator=_pos_int)
    request_timeout: float | None = attrs.field(default=60.0, validator=_optional_pos)
    max_connections: int = attrs.field(default=10_000, validator=_pos_int)
    linger: float = attrs.field(default=2.0, validator=_pos)
    parser: Literal["h11", "httptools", "auto"] = attrs.field(
        default="h11", validator=attrs.validators.in_(("h11", "httptools", "auto"))
    )
    server_header: str = "trio-runtime"
    name: str = "http"
    metrics: bool = True
    drain_on_shutdown: bool = True


__all__ = ["HttpConfig"]
