"""HTTP hygiene at the proxy: what crosses it, what it adds, and what it never forwards.

Hop-by-hop fields (RFC 9110 section 7.6.1) describe one connection, not the message: they
are dropped both ways, along with every field the ``Connection`` header names. The proxy
adds ``X-Forwarded-For`` / ``-Proto`` / ``-Host`` and a request id, and passes a W3C
``traceparent`` through untouched.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable

from ..http import Headers

HOP_BY_HOP = frozenset(
    (
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    )
)
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def end_to_end(headers: Headers) -> list[tuple[str, str]]:
    """The fields of ``headers`` that may cross the proxy: hop-by-hop ones removed, and
    every field the ``Connection`` header names."""
    named = {
        token.strip().lower()
        for value in headers.get_all("connection")
        for token in value.split(",")
        if token.strip()
    }
    drop = HOP_BY_HOP | named
    return [(name, value) for name, value in headers.items() if name.lower() not in drop]


def request_id(headers: Headers) -> str:
    """The client's ``X-Request-Id`` if it is well-formed (1-128 of ``[A-Za-z0-9._:-]``),
    else a fresh one."""
    given = headers.get("x-request-id")
    if given is not None and _REQUEST_ID.fullmatch(given):
        return given
    return _fresh_id()


_ID_BATCH = 256  # fresh ids drawn per getrandom call
_ids: list[str] = []


def _fresh_id() -> str:
    """128 random bits from the OS, as ``uuid4().hex`` without its formatting; drawn a batch
    at a time (one system call per request was a measurable part of a proxied request)."""
    if not _ids:
        block = os.urandom(16 * _ID_BATCH).hex()
        _ids.extend(block[i : i + 32] for i in range(0, len(block), 32))
    return _ids.pop()


os.register_at_fork(after_in_child=_ids.clear)  # a forked child never repeats its parent's


def forwarded(
    pairs: Iterable[tuple[str, str]], *, peer: str | None, scheme: str, host: str | None, rid: str
) -> list[tuple[str, str]]:
    """``pairs`` with the proxy's own fields: X-Forwarded-For (the peer appended to the
    client's list), X-Forwarded-Proto, X-Forwarded-Host and X-Request-Id."""
    out: list[tuple[str, str]] = []
    chain: list[str] = []
    for name, value in pairs:
        lower = name.lower()
        if lower == "x-forwarded-for":
            chain.append(value)
        elif lower not in ("x-forwarded-proto", "x-forwarded-host", "x-request-id"):
            out.append((name, value))
    if peer is not None:
        chain.append(peer)
    if chain:
        out.append(("x-forwarded-for", ", ".join(chain)))
    out.append(("x-forwarded-proto", scheme))
    if host is not None:
        out.append(("x-forwarded-host", host))
    out.append(("x-request-id", rid))
    return out
