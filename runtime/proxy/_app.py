"""Running the proxy: listeners, the admin endpoint, discovery, reload and shutdown.

``serve_proxy(config)`` binds every listener (before printing anything: a port that can't be
bound fails the start, not the first request), serves each through the project's HTTP server,
starts the admin endpoint with ``/config``, and follows DNS upstreams. SIGHUP re-reads the
config file: a valid one replaces the routes and pools for new requests (requests in flight
finish on the old ones, and no connection is dropped); an invalid one is logged and the old one
stays. A shutdown (SIGTERM, SIGINT) turns ``/ready`` to 503, stops accepting, lets requests in
flight finish within the grace and exits 0.
"""

from __future__ import annotations

import functools
import gc
import logging
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import trio

from ..admin import serve_admin
from ..http import HttpConfig, HttpServer, Request, Response
from ..metrics import registry
from ..net import Network, TcpNetwork, server_ssl_context
from ..rt import current
from ..service import DnsDiscover
from ..service.discover import Address, Resolver
from ..sync import CancellationToken
from ..time import sleep
from ._config import ConfigError, ProxyConfig, load_config, parse_address, redacted
from ._metrics import ProxyCollector, ProxyStats
from ._proxy import Proxy, Upstream

logger = logging.getLogger("runtime.proxy")


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


class ProxyApp:
    """The running proxy: the current :class:`Proxy` (swapped on reload) and its servers."""

    def __init__(
        self,
        config: ProxyConfig,
        path: str | None,
        nursery: trio.Nursery,
        network: Network | None = None,
    ) -> None:
        self.config = config
        self.network = network
        self.path = path
        self._nursery = nursery
        self.stats = ProxyStats()  # kept across reloads: the counters go on
        self.proxy = Proxy(config, nursery, self.stats, network)
        self.reloads = 0
        self._discovery: trio.CancelScope | None = None
        self.servers: list[HttpServer] = []
        self.ports: dict[str, int] = {}  # listener name: the port it got
        self.admin_url = ""
        self.stopping = CancellationToken()  # cancelled at shutdown: background tasks end

    def handler(self, listener: str, scheme: str) -> Callable[[Request], Awaitable[Response]]:
        async def handle(request: Request) -> Response:
            return await self.proxy.forward(listener, scheme, request)  # the current one

        return handle

    async def config_page(self, request: Request) -> Response:
        body = {"reloads": self.reloads, "source": self.path, "config": redacted(self.config)}
        return Response.json(body)

    def gauges(self) -> dict[str, tuple[int, int, int]]:
        """Per upstream of the running config: ``(ready, ejected, in_flight)``."""
        return {name: up.gauges() for name, up in self.proxy.upstreams.items()}

    def start_discovery(self) -> None:
        """Follow the DNS upstreams of the current proxy (the previous ones stop)."""
        if self._discovery is not None:
            self._discovery.cancel()
        scope = self._discovery = trio.CancelScope()
        for upstream in self.proxy.upstreams.values():
            if upstream.config.dns is not None:
                self._nursery.start_soon(_follow_dns, upstream, scope)

    def reload(self) -> bool:
        """Re-read the config file; True if the new config took over."""
        if self.path is None:
            return False
        try:
            new = load_config(self.path)
        except ConfigError as exc:
            logger.error("reload refused, the running config stays: %s", exc)
            return False
        if new.listeners != self.config.listeners or new.admin != self.config.admin:
            logger.warning(
                "reload: listeners and [admin] take effect at a restart only; routes and "
                "upstreams are replaced now"
            )
        old = self.proxy
        self.proxy = Proxy(new, self._nursery, self.stats, self.network)
        self.config = new
        self.reloads += 1
        self.start_discovery()
        self._nursery.start_soon(_close_later, old, self.stopping)
        logger.info(
            "reloaded %s: %d routes, %d upstreams", self.path, len(new.routes), len(new.upstreams)
        )
        return True


async def _close_later(old: Proxy, stopping: CancellationToken) -> None:
    """Close the replaced pools once the requests they took have had their route's time
    (at once if the proxy shuts down first)."""
    with stopping.scope():
        await sleep(max((r.timeout for r in old.config.routes), default=0.0) + 1.0)
    await old.aclose()


def _dns_resolver(server: str | None) -> Resolver | None:
    if server is None:
        return None
    host, port = parse_address(server)

    async def resolve(name: str, service_port: int) -> list[Address]:
        found: list[Address] = []
        for kind in ("A", "AAAA"):
            # abandoned on cancel: a shutdown does not wait for a lookup nobody answers
            records = await trio.to_thread.run_sync(
                _query, host, port, name, kind, abandon_on_cancel=True
            )
            found += [(address, service_port) for address in records]
        return found  # empty: the name exists without addresses (the pool empties)

    return resolve


def _query(server: str, port: int, name: str, kind: str) -> list[str]:
    """The ``kind`` records of ``name`` from the DNS server at ``server:port`` (blocking).

    Raises:
        OSError: the server did not answer (NXDOMAIN and no records give ``[]``).
    """
    import dns.exception
    import dns.resolver

    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = [server]
    resolver.port = port
    try:
        return [str(r) for r in resolver.resolve(name, kind, lifetime=2.0)]
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        return []
    except (dns.exception.DNSException, OSError) as exc:
        raise OSError(f"DNS server {server}:{port}: {exc}") from None


async def _follow_dns(upstream: Upstream, scope: trio.CancelScope) -> None:
    config = upstream.config
    assert config.dns is not None
    name, port = parse_address(config.dns)
    resolve = _dns_resolver(config.resolver)
    kwargs: dict[str, Any] = {"interval": config.dns_interval}
    if resolve is not None:
        kwargs["resolve"] = resolve
    discover = DnsDiscover(name, port, make_service=lambda address: address, **kwargs)
    with scope:
        async for change in discover:
            key = getattr(change, "key", None)
            if type(change).__name__ == "Insert":
                upstream.add(change.service)  # type: ignore[union-attr]
                logger.info("upstream %s: endpoint %s added (DNS)", config.name, key)
            else:
                address = key if isinstance(key, tuple) else None
                if address is not None:
                    upstream.remove(_key(address))
                    logger.info(
                        "upstream %s: endpoint %s removed (DNS), draining", config.name, key
                    )


def _key(address: Address) -> str:
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def serve_proxy(
    config: ProxyConfig,
    *,
    path: str | None = None,
    network: Network | None = None,
    task_status: trio.TaskStatus[ProxyApp] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``config`` until the runtime shuts down.

    Prints ``listening on http://HOST:PORT`` (``https`` for TLS) per listener, then
    ``admin on http://HOST:PORT``, once everything accepts.

    Args:
        config: The validated config.
        path: The config file, re-read on SIGHUP.
        network: Where the listeners, the admin endpoint and the upstream connections are
            opened: the machine's TCP (:class:`~runtime.net.TcpNetwork`) by default, or a
            host of a simulated network (``runtime.testing.sim``).

    Raises:
        OSError: a listener or the admin address can't be bound.
    """
    net: Network = network if network is not None else TcpNetwork()
    bound = []
    for listener in config.listeners:
        host, port = parse_address(listener.listen)
        tls = server_ssl_context(listener.tls.cert, listener.tls.key) if listener.tls else None
        bound.append((listener, net.bind(host, port), tls))
    async with trio.open_nursery() as nursery:
        app = ProxyApp(config, path, nursery, network)
        collector = ProxyCollector(app.stats, app.gauges)
        registry().register(collector)
        app.start_discovery()
        for listener, socket_listener, tls in bound:
            scheme = "https" if tls is not None else "http"
            server = HttpServer(
                app.handler(listener.name, scheme),
                [socket_listener],
                HttpConfig(
                    name=listener.name,
                    max_connections=listener.max_connections,
                    request_timeout=None,
                    parser=listener.parser,  # type: ignore[arg-type]
                ),
                tls=tls,
            )
            app.servers.append(server)
            app.ports[listener.name] = socket_listener.port
            await nursery.start(server.serve)
            host, _ = parse_address(listener.listen)
            print(f"listening on {scheme}://{_url_host(host)}:{socket_listener.port}", flush=True)
        admin_host, admin_port = parse_address(config.admin.listen)
        admin = await nursery.start(
            functools.partial(
                serve_admin,
                admin_host,
                admin_port,
                extra_routes=[("/config", app.config_page)],
                network=net,
            )
        )
        app.admin_url = admin.url
        print(f"admin on {admin.url}", flush=True)
        reloads = trio.CancelScope()
        nursery.start_soon(_reload_on_sighup, app, reloads)
        admin.set_ready()
        task_status.started(app)
        try:
            await current().shutdown_requested()
        finally:
            reloads.cancel()
            app.stopping.cancel()
            if app._discovery is not None:
                app._discovery.cancel()
        # the servers drain on the shutdown by themselves; the nursery waits for them
    registry().unregister(collector)
    await app.proxy.aclose()


async def _reload_on_sighup(app: ProxyApp, scope: trio.CancelScope) -> None:
    if not hasattr(signal, "SIGHUP"):  # pragma: no cover - not on Windows
        return
    with scope, trio.open_signal_receiver(signal.SIGHUP) as signals:
        async for _ in signals:
            app.reload()


def run_proxy(config_path: str, *, check: bool = False) -> int:
    """``python -m runtime proxy --config FILE [--check]``: the process's exit code."""
    from ..rt import RuntimeConfig, run

    try:
        config = load_config(config_path)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if check:
        print(
            f"{config_path}: ok ({len(config.listeners)} listeners, {len(config.routes)} "
            f"routes, {len(config.upstreams)} upstreams)"
        )
        return 0
    # What is loaded by now (modules, classes, the config) lives as long as the process: out
    # of the collector's way, a full collection walks only what came after (before, a pause
    # of 20-30 ms on a 2-core machine, in the middle of whatever requests were running).
    gc.collect()
    gc.freeze()
    try:
        run(
            functools.partial(serve_proxy, config, path=str(Path(config_path))),
            config=RuntimeConfig(shutdown_grace=config.grace),
        )
    except OSError as exc:
        print(f"error: cannot serve: {exc}", file=sys.stderr)
        return 1
    return 0
