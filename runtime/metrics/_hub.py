"""The runtime's metrics registry and the collector that reads every layer at scrape time."""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterator

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ..net import ReactorStatistics, current_reactor, servers
from ..rt import Runtime, current
from ..sync import named_channels
from ..time import TimerWheel
from ._record import HttpRequestMetrics, ServiceMetrics, http_families, service_families

_OUTCOMES = ("accepted", "rejected", "errored", "broken", "idle_closed", "tls_failed")


class Hub:
    """One runtime's metrics: its prometheus-client registry and the request stores that
    servers and MetricsLayers record into (held weakly: a store goes with its owner)."""

    def __init__(self, rt: Runtime) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.http: weakref.WeakSet[HttpRequestMetrics] = weakref.WeakSet()
        self.services: weakref.WeakSet[ServiceMetrics] = weakref.WeakSet()
        self.registry.register(
            RuntimeCollector(rt, TimerWheel.current(), current_reactor().statistics, self)
        )
        for process_collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
            self.registry.register(process_collector)


def hub(rt: Runtime | None = None) -> Hub:
    """The metrics hub of ``rt`` (default: the running runtime), made on first use."""
    return (rt or current()).service(Hub, Hub)


def registry(rt: Runtime | None = None) -> CollectorRegistry:
    """The prometheus-client registry of ``rt`` (default: the running runtime).

    It holds the runtime's collectors (tasks, timers, reactor, named channels, servers, HTTP
    routes, MetricsLayers) and prometheus-client's process, platform and GC collectors.
    Register your own metrics in it (``Counter(..., registry=registry())``) to have them on
    the admin endpoint's ``/metrics``.

    Raises:
        NoRuntimeError: no runtime is given and none is running here.
    """
    return hub(rt).registry


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=value)


def _counter(name: str, doc: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, doc, value=value)


class RuntimeCollector(Collector):
    """Reads ``statistics()`` of the runtime's layers when scraped; records nothing itself."""

    def __init__(
        self,
        rt: Runtime,
        wheel: TimerWheel,
        reactor: Callable[[], ReactorStatistics],
        hub: Hub,
    ) -> None:
        self._rt = rt
        self._wheel = wheel
        self._reactor = reactor
        self._hub = hub

    def collect(self) -> Iterator[Metric]:
        yield from self._tasks()
        yield from self._timers()
        yield from self._reactor_families()
        yield from self._channels()
        yield from self._servers()
        yield from http_families(list(self._hub.http))
        yield from service_families(list(self._hub.services))

    def _tasks(self) -> Iterator[Metric]:
        stats = self._rt.statistics()
        yield _gauge("runtime_tasks_alive", "Tasks spawned and running now", stats.alive)
        yield _counter("runtime_tasks_spawned", "Tasks spawned since start", stats.spawned)
        ended = CounterMetricFamily(
            "runtime_tasks_ended", "Tasks that ended, by how", labels=["state"]
        )
        ended.add_metric(["done"], stats.completed)
        ended.add_metric(["failed"], stats.failed)
        ended.add_metric(["cancelled"], stats.cancelled)
        yield ended
        yield _gauge(
            "runtime_shutting_down", "1 once a shutdown has started", int(stats.shutting_down)
        )

    def _timers(self) -> Iterator[Metric]:
        stats = self._wheel.statistics()
        yield _gauge("runtime_timers_pending", "Timers armed and not yet due", stats.pending)
        yield _counter("runtime_timers_fired", "Timers fired", stats.fired)
        yield _counter("runtime_timers_cancelled", "Timers cancelled before due", stats.cancelled)
        yield _counter("runtime_timer_wakeups", "Wake-ups of the wheel's driver", stats.wakeups)
        yield _gauge(
            "runtime_timer_lag_seconds",
            "How late the last fired timer fired, past its tick",
            stats.last_fire_lag,
        )

    def _reactor_families(self) -> Iterator[Metric]:
        stats = self._reactor()
        yield _gauge(
            "runtime_reactor_registered_fds", "Sockets registered in the reactor", stats.registered
        )
        yield _counter("runtime_reactor_wakeups", "Times the reactor polled", stats.wakeups)
        yield _counter("runtime_reactor_events", "Readiness events drained", stats.events)
        yield _gauge(
            "runtime_reactor_events_per_wakeup",
            "Readiness events per poll, since start",
            stats.events_per_wakeup,
        )
        yield _gauge("runtime_reactor_parked_tasks", "Tasks waiting for readiness", stats.parked)

    def _channels(self) -> Iterator[Metric]:
        labels = ["channel", "kind"]
        buffered = GaugeMetricFamily(
            "runtime_channel_buffered", "Values buffered in a named channel", labels=labels
        )
        capacity = GaugeMetricFamily(
            "runtime_channel_capacity",
            "Buffer capacity of a named channel (+Inf: unbounded)",
            labels=labels,
        )
        for channel in named_channels():
            stats = channel.statistics
            key = [channel.name, channel.kind]
            if channel.kind == "mpsc":
                buffered.add_metric(key, stats.buffered)
            else:  # broadcast: the values its ring retains for subscribers that lag
                buffered.add_metric(key, min(stats.sent, stats.capacity))
            capacity.add_metric(key, float(stats.capacity))
        yield buffered
        yield capacity

    def _servers(self) -> Iterator[Metric]:
        active = GaugeMetricFamily(
            "runtime_server_connections_active", "Connections served now", labels=["server"]
        )
        total = CounterMetricFamily(
            "runtime_server_connections",
            "Connections by outcome: accepted, and how the unhappy ones ended",
            labels=["server", "outcome"],
        )
        for server in servers():
            stats = server.statistics()
            name = server.config.name
            active.add_metric([name], stats.active)
            for outcome in _OUTCOMES:
                total.add_metric([name, outcome], getattr(stats, outcome))
        yield active
        yield total
