"""The proxy's configuration: TOML in, frozen attrs records out, or an error naming the key.

Every table and field is checked before anything starts: unknown keys (a typo such as
``time_out``), wrong types, values out of range, names that are used twice, a route whose
listener or upstream does not exist. A :class:`ConfigError` carries every problem found,
each as ``key.path: what is wrong``, so one run of ``--check`` shows them all. stdlib
``tomllib`` keeps no positions, so errors name the key path, not the line; a TOML syntax
error keeps tomllib's own line and column.
"""

from __future__ import annotations

import importlib.util
import math
import tomllib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import attrs

T = TypeVar("T")

_METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT")
IDEMPOTENT = frozenset(("GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE"))


class ConfigError(ValueError):
    """The configuration is not valid; ``problems`` lists each as ``key.path: message``."""

    def __init__(self, source: str, problems: Sequence[str]) -> None:
        self.source = source
        self.problems = list(problems)
        lines = "\n".join(f"  {p}" for p in self.problems)
        super().__init__(f"{source}: {len(self.problems)} problem(s) in the config:\n{lines}")


def parse_address(text: str) -> tuple[str, int]:
    """``"127.0.0.1:8080"``, ``"[::1]:8080"`` or ``"host:8080"`` as ``(host, port)``.

    Raises:
        ValueError: not HOST:PORT with a port from 0 to 65535.
    """
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"expected HOST:PORT, got {text!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    number = int(port)
    if not 0 <= number <= 65535:
        raise ValueError(f"port {number} is out of range 0-65535")
    return host, number


def _address(_: object, attribute: attrs.Attribute[Any], value: str) -> None:
    parse_address(value)


def _endpoint_address(_: object, attribute: attrs.Attribute[Any], value: Sequence[str]) -> None:
    for item in value:
        _, port = parse_address(item)
        if port == 0:
            raise ValueError(f"endpoint {item!r} needs a real port, not 0")


def _positive(_: object, attribute: attrs.Attribute[Any], value: float | None) -> None:
    if value is not None and not (math.isfinite(value) and value > 0):
        raise ValueError(f"must be a positive number of seconds, got {value!r}")


def _methods(_: object, attribute: attrs.Attribute[Any], value: Sequence[str] | None) -> None:
    for method in value or ():
        if method not in _METHODS:
            raise ValueError(f"unknown method {method!r}; use one of {', '.join(_METHODS)}")


def _prefix(_: object, attribute: attrs.Attribute[Any], value: str) -> None:
    if not value.startswith("/"):
        raise ValueError(f"must start with '/', got {value!r}")


def _name(_: object, attribute: attrs.Attribute[Any], value: str) -> None:
    if not value or not value.replace("-", "").replace("_", "").replace(".", "").isalnum():
        raise ValueError(f"must be letters, digits, '-', '_' or '.', got {value!r}")


def _non_negative_int(_: object, attribute: attrs.Attribute[Any], value: int) -> None:
    if value < 0:
        raise ValueError(f"must be 0 or more, got {value}")


def _parser(_: object, attribute: attrs.Attribute[Any], value: str) -> None:
    if value not in ("auto", "h11", "httptools"):
        raise ValueError(f'must be "auto", "h11" or "httptools", got {value!r}')
    if value == "httptools" and importlib.util.find_spec("httptools") is None:
        raise ValueError('httptools is not installed: pip install httptools, or use "auto"')


def _positive_int(_: object, attribute: attrs.Attribute[Any], value: int) -> None:
    if value < 1:
        raise ValueError(f"must be 1 or more, got {value}")


def _upper(methods: Sequence[str]) -> tuple[str, ...]:
    return tuple(m.upper() for m in methods)


@attrs.frozen
class AdminConfig:
    """``[admin]``: where the admin endpoint listens.

    Attributes:
        listen: ``HOST:PORT``; port 0 picks one. Default ``127.0.0.1:9901``.
    """

    listen: str = attrs.field(default="127.0.0.1:9901", validator=_address)


@attrs.frozen
class TlsConfig:
    """``[listeners.tls]``: serve TLS with this certificate chain and key (PEM files).

    Attributes:
        cert: Path of the certificate chain.
        key: Path of the private key.
    """

    cert: str
    key: str


@attrs.frozen
class ListenerConfig:
    """``[[listeners]]``: one address the proxy accepts on.

    Attributes:
        name: Routes name it in ``listener``.
        listen: ``HOST:PORT``; port 0 picks one (the proxy prints the one it got).
        tls: Serve TLS (``[listeners.tls]`` with ``cert`` and ``key``).
        max_connections: Connections served at once. Default 10,000.
        parser: The request parser: ``"auto"`` (httptools if installed, else h11),
            ``"h11"`` or ``"httptools"``. Both apply the same limits. Default ``"auto"``.
    """

    name: str = attrs.field(validator=_name)
    listen: str = attrs.field(validator=_address)
    tls: TlsConfig | None = None
    max_connections: int = attrs.field(default=10_000, validator=_positive_int)
    parser: str = attrs.field(default="auto", validator=_parser)


@attrs.frozen
class RouteConfig:
    r"""``[[routes]]``: which requests go to which upstream, with what deadlines and retries.

    A request takes the first route, in file order, whose listener, host, path prefix and
    method all match.

    Attributes:
        listener: The listener's name.
        upstream: The upstream's name.
        name: The route's label in metrics and access logs. Default: listener, host and
            path prefix (``"web *\/api/"``).
        path_prefix: Paths starting with it match (``"/api/"``). Default ``"/"``: all.
        host: Only requests whose ``Host`` is this (without the port); None: any.
        methods: Only these methods; None: any.
        timeout: Seconds for the whole request, every try included: then 504. Default 15.
        per_try_timeout: Seconds for one try; a try past it is retried if the route may
            retry. None: only ``timeout``.
        retries: Retries after the first try, for idempotent methods (GET, HEAD, PUT,
            DELETE, OPTIONS, TRACE). Default 2.
        retry_non_idempotent: Retry POST and PATCH too (their bodies are buffered, up to
            ``max_retry_body``). Default False: the upstream may have acted on the first try.
        max_retry_body: Bytes of a body buffered so it can be sent again. Default 64 KiB.
        max_concurrency: Requests in flight on this route; past it, 503 and Retry-After at
            once. Default 1000.
    """

    listener: str
    upstream: str
    name: str | None = attrs.field(default=None, validator=attrs.validators.optional(_name))
    path_prefix: str = attrs.field(default="/", validator=_prefix)
    host: str | None = None
    methods: tuple[str, ...] | None = attrs.field(
        default=None, converter=attrs.converters.optional(_upper), validator=_methods
    )
    timeout: float = attrs.field(default=15.0, validator=_positive)
    per_try_timeout: float | None = attrs.field(default=None, validator=_positive)
    retries: int = attrs.field(default=2, validator=_non_negative_int)
    retry_non_idempotent: bool = False
    max_retry_body: int = attrs.field(default=64 * 1024, validator=_non_negative_int)
    max_concurrency: int = attrs.field(default=1000, validator=_positive_int)

    @property
    def label(self) -> str:
        """``name``, or one made of the listener, host and path prefix."""
        if self.name is not None:
            return self.name
        return f"{self.listener} {self.host or '*'}{self.path_prefix}"


@attrs.frozen
class UpstreamConfig:
    """``[[upstreams]]``: a pool of endpoints, balanced by p2c over PeakEWMA.

    Attributes:
        name: Routes name it in ``upstream``.
        endpoints: ``HOST:PORT`` of each endpoint (a static pool).
        dns: ``NAME:PORT``, re-resolved every ``dns_interval`` (A and AAAA); instead of
            ``endpoints``.
        dns_interval: Seconds between lookups. Default 5.
        resolver: ``HOST:PORT`` of the DNS server to ask instead of the system's (tests run
            one on loopback).
        tls: Speak TLS to the endpoints, verified. Default False.
        ca_file: PEM file of the CAs to trust for ``tls`` (default: the system's).
        server_name: The name to verify (default: the endpoint's host, or the DNS name).
        connect_timeout: Seconds to connect to an endpoint. Default 1.
        read_timeout: Seconds an endpoint may send nothing in the middle of a response body
            (until the head, the route's deadlines govern). Default 30.
        failure_threshold: Consecutive failures that eject an endpoint. Default 7.
        min_penalty: Seconds an endpoint stays out after its first ejection. Default 1.
        max_penalty: The longest it stays out, doubling from ``min_penalty``. Default 60.
        max_connections_per_endpoint: Pooled connections to one endpoint. Default 100.
        parser: How the endpoints' responses are parsed: ``"auto"`` (httptools if
            installed, else h11), ``"h11"`` or ``"httptools"``. Both refuse the same bad
            framing (a 502). Default ``"auto"``.
    """

    name: str = attrs.field(validator=_name)
    endpoints: tuple[str, ...] = attrs.field(
        default=(), converter=tuple, validator=_endpoint_address
    )
    dns: str | None = attrs.field(default=None, validator=attrs.validators.optional(_address))
    dns_interval: float = attrs.field(default=5.0, validator=_positive)
    resolver: str | None = attrs.field(default=None, validator=attrs.validators.optional(_address))
    tls: bool = False
    ca_file: str | None = None
    server_name: str | None = None
    connect_timeout: float = attrs.field(default=1.0, validator=_positive)
    read_timeout: float = attrs.field(default=30.0, validator=_positive)
    failure_threshold: int = attrs.field(default=7, validator=_positive_int)
    min_penalty: float = attrs.field(default=1.0, validator=_positive)
    max_penalty: float = attrs.field(default=60.0, validator=_positive)
    max_connections_per_endpoint: int = attrs.field(default=100, validator=_positive_int)
    parser: str = attrs.field(default="auto", validator=_parser)


@attrs.frozen
class ProxyConfig:
    """The whole file: ``[admin]``, ``[[listeners]]``, ``[[routes]]``, ``[[upstreams]]``.

    Attributes:
        admin: The admin endpoint (``/metrics``, ``/ready``, ``/config``, ...).
        listeners: Where the proxy accepts.
        routes: Matched in order.
        upstreams: The pools.
        access_log: One JSON line per request on the ``runtime.proxy.access`` logger.
            Default True.
        grace: Seconds a shutdown lets requests in flight finish. Default 10.
    """

    admin: AdminConfig = AdminConfig()
    listeners: tuple[ListenerConfig, ...] = ()
    routes: tuple[RouteConfig, ...] = ()
    upstreams: tuple[UpstreamConfig, ...] = ()
    access_log: bool = True
    grace: float = attrs.field(default=10.0, validator=_positive)

    def upstream(self, name: str) -> UpstreamConfig:
        return next(u for u in self.upstreams if u.name == name)


# -- loading ---------------------------------------------------------------------------------


def _build(
    cls: type[T],
    table: object,
    path: str,
    problems: list[str],
    nested: Mapping[str, Callable[[object, str, list[str]], object]] | None = None,
) -> T | None:
    """``cls(**table)`` with every key and value checked; problems go to ``problems``."""
    if not isinstance(table, dict):
        problems.append(f"{path}: expected a table, got {type(table).__name__}")
        return None
    fields = {f.name: f for f in attrs.fields(cls)}  # type: ignore[arg-type]
    kwargs: dict[str, Any] = {}
    ok = True
    for key, value in table.items():
        where = f"{path}.{key}"
        field = fields.get(key)
        if field is None:
            known = ", ".join(sorted(fields))
            problems.append(f"{where}: unknown key (known keys: {known})")
            ok = False
            continue
        if nested and key in nested:
            built = nested[key](value, where, problems)
            if built is None:
                ok = False
            kwargs[key] = built
            continue
        problem = _type_problem(field.type, value)
        if problem:
            problems.append(f"{where}: {problem}")
            ok = False
            continue
        kwargs[key] = value
    for name, f in fields.items():
        if f.default is attrs.NOTHING and name not in table:
            problems.append(f"{path}.{name}: required key is missing")
            ok = False
    for name, value in list(kwargs.items()):
        problem = _field_problem(fields[name], value)
        if problem is not None:
            problems.append(f"{path}.{name}: {problem}")
            ok = False
    if not ok:
        return None
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as exc:  # pragma: no cover - each field was checked
        problems.append(f"{path}: {exc}")
        return None


def _field_problem(field: attrs.Attribute[Any], value: object) -> str | None:
    """What the field's own converter or validator says of ``value`` (None: fine)."""
    if field.validator is None and field.converter is None:
        return None
    try:
        if field.converter is not None:
            value = field.converter(value)  # type: ignore[operator]
        if field.validator is not None:
            field.validator(None, field, value)
    except (ValueError, TypeError) as exc:
        return str(exc)
    return None


def _type_problem(annotation: object, value: object) -> str | None:
    text = str(annotation)
    optional = "None" in text
    if value is None:
        return None if optional else "must not be empty"
    if "bool" in text:
        return None if isinstance(value, bool) else f"expected true or false, got {value!r}"
    if isinstance(value, bool):
        return f"expected {text.replace(' | None', '')}, got a boolean"
    if "float" in text:
        return None if isinstance(value, int | float) else f"expected a number, got {value!r}"
    if "int" in text and "tuple" not in text:
        return None if isinstance(value, int) else f"expected an integer, got {value!r}"
    if "tuple" in text:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            return f"expected a list of strings, got {value!r}"
        return None
    if "str" in text:
        return None if isinstance(value, str) else f"expected a string, got {value!r}"
    return None


def _tls(value: object, path: str, problems: list[str]) -> TlsConfig | None:
    return _build(TlsConfig, value, path, problems)


def _listener(value: object, path: str, problems: list[str]) -> ListenerConfig | None:
    return _build(ListenerConfig, value, path, problems, {"tls": _tls})


def _array(
    value: object,
    path: str,
    problems: list[str],
    item: Callable[[object, str, list[str]], T | None],
) -> tuple[T, ...] | None:
    if not isinstance(value, list):
        problems.append(f"{path}: expected an array of tables ([[{path}]])")
        return None
    built = [item(v, f"{path}[{i}]", problems) for i, v in enumerate(value)]
    if any(b is None for b in built):
        return None
    return tuple(b for b in built if b is not None)


def parse_config(text: str, source: str = "<config>") -> ProxyConfig:
    """Parse and check a whole config.

    Raises:
        ConfigError: the TOML is malformed or the config is not valid (every problem found).
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(source, [f"TOML syntax: {exc}"]) from None
    problems: list[str] = []
    nested: dict[str, Callable[[object, str, list[str]], object]] = {
        "admin": lambda v, p, pr: _build(AdminConfig, v, p, pr),
        "listeners": lambda v, p, pr: _array(v, p, pr, _listener),
        "routes": lambda v, p, pr: _array(v, p, pr, lambda t, q, r: _build(RouteConfig, t, q, r)),
        "upstreams": lambda v, p, pr: _array(
            v, p, pr, lambda t, q, r: _build(UpstreamConfig, t, q, r)
        ),
    }
    config = _build(ProxyConfig, data, "config", problems, nested)
    if config is not None:
        problems += _cross_checks(config)
    if problems:
        raise ConfigError(source, [p.removeprefix("config.") for p in problems])
    assert config is not None
    return config


def _cross_checks(config: ProxyConfig) -> list[str]:
    problems: list[str] = []
    if not config.listeners:
        problems.append("listeners: at least one [[listeners]] table is needed")
    named: list[tuple[str, Sequence[ListenerConfig | UpstreamConfig]]] = [
        ("listeners", config.listeners),
        ("upstreams", config.upstreams),
    ]
    for kind, items in named:
        seen: set[str] = set()
        for i, item in enumerate(items):
            if item.name in seen:
                problems.append(f"{kind}[{i}].name: {item.name!r} is used twice")
            seen.add(item.name)
    listeners = {item.name for item in config.listeners}
    upstreams = {item.name for item in config.upstreams}
    for i, route in enumerate(config.routes):
        if route.listener not in listeners:
            problems.append(
                f"routes[{i}].listener: no listener named {route.listener!r} "
                f"(listeners: {', '.join(sorted(listeners)) or 'none'})"
            )
        if route.upstream not in upstreams:
            problems.append(
                f"routes[{i}].upstream: no upstream named {route.upstream!r} "
                f"(upstreams: {', '.join(sorted(upstreams)) or 'none'})"
            )
        if route.per_try_timeout is not None and route.per_try_timeout > route.timeout:
            problems.append(
                f"routes[{i}].per_try_timeout: {route.per_try_timeout} is longer than the "
                f"route's timeout {route.timeout}; one try could never finish"
            )
    for i, upstream in enumerate(config.upstreams):
        if bool(upstream.endpoints) == (upstream.dns is not None):
            problems.append(
                f'upstreams[{i}]: give either endpoints = [...] or dns = "NAME:PORT", not '
                "both and not neither"
            )
        if upstream.min_penalty > upstream.max_penalty:
            problems.append(
                f"upstreams[{i}].min_penalty: {upstream.min_penalty} is above max_penalty "
                f"{upstream.max_penalty}"
            )
    return problems


def load_config(path: str | Path) -> ProxyConfig:
    """Read and check the config file at ``path``.

    Raises:
        ConfigError: the file can't be read, or is not a valid config.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(str(path), [f"cannot read the file: {exc.strerror or exc}"]) from None
    return parse_config(text, str(path))


def redacted(config: ProxyConfig) -> dict[str, Any]:
    """The config as plain data for ``/config``: key file paths are shown as ``<redacted>``."""
    data = attrs.asdict(config)
    for listener in data["listeners"]:
        if listener.get("tls"):
            listener["tls"]["key"] = "<redacted>"
    return data
