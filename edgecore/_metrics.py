"""edgecore's Prometheus metrics and health checks, served by :mod:`kubeshore.observability`.

Counters live as plain ints on the modules that own them and become samples only when scraped,
so the hot paths (frames, DMI reports) pay one integer increment. ``prometheus_client`` (with
``http.server``, ~1 MB) is imported by the first scrape, not at start.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from kubeshore.observability import HealthChecks

if TYPE_CHECKING:
    from edgecore._node import EdgeNode


class NodeMetrics:
    """The node's registry: what ``prometheus_client.generate_latest`` reads (``collect()``)."""

    def __init__(self, node: EdgeNode) -> None:
        self.node = node

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        node = self.node
        hub = node.hub

        def gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
            g = GaugeMetricFamily(name, doc)
            g.add_metric([], value)
            return g

        def counter(name: str, doc: str, value: float) -> CounterMetricFamily:
            c = CounterMetricFamily(name, doc)
            c.add_metric([], value)
            return c

        yield gauge(
            "edgecore_cloud_connected", "1 while the websocket to cloudcore is open", hub.connected.is_set()
        )
        yield counter("edgecore_cloud_connects", "Sessions opened to cloudcore", hub.connects)
        yield counter("edgecore_messages_received", "Frames received from cloudcore", hub.received)
        yield counter(
            "edgecore_messages_sent", "Frames written to cloudcore (live and from the outbox)", hub.sent
        )
        yield counter(
            "edgecore_messages_malformed", "Frames from cloudcore that were not messages", hub.malformed
        )
        yield counter(
            "edgecore_outbox_dropped", "Cloud-bound messages dropped because the outbox was full", hub.dropped
        )
        yield gauge(
            "edgecore_outbox_depth",
            "Cloud-bound messages queued in the store while offline",
            node.store.outbox_size_now(),
        )
        devices = node.devices
        yield counter(
            "edgecore_store_write_failures",
            "Twin store transactions that failed (disk full, read-only, I/O error)",
            devices.store.write_failures,
        )
        yield counter(
            "edgecore_twin_updates", "Twin property changes applied (DMI and MQTT)", devices.twin.twin_updates
        )
        yield gauge("edgecore_devices", "Devices bound to this node", len(devices.store.devices))
        yield gauge(
            "edgecore_registered_mappers", "Mappers registered over DMI", len(devices.dmi.registry.mappers)
        )
        healthy = GaugeMetricFamily(
            "edgecore_mapper_healthy",
            "1 while the mapper answers DMI calls within the call timeout",
            labels=["mapper"],
        )
        for name, m in sorted(devices.dmi.registry.mappers.items()):
            healthy.add_metric([name], int(m.reachable))
        yield healthy
        refused = CounterMetricFamily(
            "edgecore_mqtt_refused",
            "MQTT twin-topic messages refused (answered with a code and reason on .../result), by kind",
            labels=["kind"],
        )
        for kind, n in sorted(devices.twin.mqtt_refused.items()):
            refused.add_metric([kind], n)
        yield refused
        calls = CounterMetricFamily(
            "edgecore_dmi_calls", "DMI calls served, by rpc and result", labels=["rpc", "result"]
        )
        for (rpc, result), n in sorted(devices.dmi.calls.items()):
            calls.add_metric([rpc, result], n)
        yield calls


def node_registry(node: EdgeNode) -> NodeMetrics:
    return NodeMetrics(node)


def node_health(node: EdgeNode) -> HealthChecks:
    """Ready while the store answers: offline, edgecore keeps serving pods, MetaServer and mappers
    from it, so a lost cloud connection is a metric (``edgecore_cloud_connected``), not unreadiness."""
    health = HealthChecks()
    health.add("ping", lambda: True, liveness=True)
    health.add("started", lambda: node.started)

    async def store() -> bool:
        await node.store.count()
        return True

    async def store_writes() -> bool:
        # Raises with the reason (disk full, read-only): the probe's answer names it.
        await node.devices.store.probe_write()
        return True

    health.add("store", store)
    health.add("store-writes", store_writes)
    return health
