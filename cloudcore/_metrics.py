"""Prometheus metrics and health endpoints (``/metrics``, ``/healthz``, ``/livez``, ``/readyz``),
served by :mod:`kubeshore.observability` like every kubeshore process.

Per-node counters are plain ints on the sessions and are turned into samples only when scraped,
so ten thousand nodes cost no Prometheus child objects.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from cloudcore.admission import WebhookServer
from cloudcore.cloudhub import CloudHub
from cloudcore.devicecontroller import DeviceController
from cloudcore.sync import ObjectSyncStore
from kubeshore.observability import HealthChecks, ObservabilityServer


class _HubCollector(Collector):
    def __init__(self, hub: CloudHub, store: ObjectSyncStore) -> None:
        self.hub = hub
        self.store = store

    def collect(self) -> Iterator[Any]:
        hub = self.hub
        g = GaugeMetricFamily("cloudhub_connected_nodes", "Edge nodes with an open session")
        g.add_metric([], len(hub.sessions))
        yield g
        msg_in = CounterMetricFamily(
            "cloudhub_messages_received", "Messages received per node", labels=["node"]
        )
        msg_out = CounterMetricFamily("cloudhub_messages_sent", "Frames written per node", labels=["node"])
        bytes_out = CounterMetricFamily(
            "cloudhub_bytes_sent", "Payload bytes written per node", labels=["node"]
        )
        refused_n = CounterMetricFamily(
            "cloudhub_node_refusals", "Refused messages per node", labels=["node"]
        )
        objs = CounterMetricFamily(
            "cloudhub_objects_sent",
            "Objects sent to nodes, by resource type and operation",
            labels=["node", "resource", "operation"],
        )
        connects = CounterMetricFamily("cloudhub_connects", "Sessions opened per node", labels=["node"])
        resent = CounterMetricFamily(
            "cloudhub_resent", "Messages sent again for an overdue acknowledgement", labels=["node"]
        )
        requeued = CounterMetricFamily(
            "cloudhub_requeued",
            "Messages put back in the queue with back-off after ackRetries resends",
            labels=["node"],
        )
        for node, st in hub.stats.items():
            connects.add_metric([node], st.connects)
            resent.add_metric([node], st.resent)
            requeued.add_metric([node], st.requeued)
            msg_in.add_metric([node], st.messages_in)
            msg_out.add_metric([node], st.messages_out)
            bytes_out.add_metric([node], st.bytes_out)
            refused_n.add_metric([node], st.refused)
            for (rtype, op), n in st.objects_sent.items():
                objs.add_metric([node, rtype, op], n)
        yield from (msg_in, msg_out, bytes_out, refused_n, objs, connects, resent, requeued)
        q = GaugeMetricFamily("cloudhub_queue_depth", "Frames waiting to be written", labels=["node"])
        p = GaugeMetricFamily("cloudhub_pending_acks", "Messages awaiting acknowledgement", labels=["node"])
        win = GaugeMetricFamily(
            "cloudhub_ack_window", "Acknowledged messages allowed on the wire at once", labels=["node"]
        )
        for node, session in hub.sessions.items():
            q.add_metric([node], session.queue.qsize())
            p.add_metric([node], len(session.pending))
            win.add_metric([node], int(session.window))
        yield from (q, p, win)
        r = CounterMetricFamily("cloudhub_refusals", "Refused connections and messages", labels=["reason"])
        for reason, n in hub.refusals.items():
            r.add_metric([reason], n)
        yield r
        s = GaugeMetricFamily("cloudcore_synced_objects", "Acknowledged (node, object) pairs")
        s.add_metric([], self.store.count())
        yield s
        w = CounterMetricFamily("cloudcore_objectsync_writes", "ObjectSync writes to the API")
        w.add_metric([], self.store.writes)
        yield w
        pw = GaugeMetricFamily("cloudcore_objectsync_pending_writes", "ObjectSync writes not yet in the API")
        pw.add_metric([], self.store.pending_writes)
        yield pw


class _DeviceCollector(Collector):
    def __init__(self, devices: DeviceController) -> None:
        self.status = devices.status

    def collect(self) -> Iterator[Any]:
        st = self.status
        writes = CounterMetricFamily(
            "devicecontroller_status_writes",
            "DeviceStatus merge patches to the API, by result (ok, gone = no such DeviceStatus, error = "
            "retried, refused = refused by the API server for good: not retried)",
            labels=["result"],
        )
        for result in ("ok", "gone", "error", "refused"):
            writes.add_metric([result], st.write_results[result])
        yield writes
        twins = CounterMetricFamily("devicecontroller_twin_updates", "Twin properties reported by edge nodes")
        twins.add_metric([], st.twin_updates)
        yield twins
        states = CounterMetricFamily("devicecontroller_state_updates", "Device states reported by edge nodes")
        states.add_metric([], st.state_updates)
        yield states
        q = GaugeMetricFamily(
            "devicecontroller_status_queue_depth", "Devices with reports coalesced but not yet written"
        )
        q.add_metric([], st.pending_devices())
        yield q


class _WebhookCollector(Collector):
    def __init__(self, webhook: WebhookServer) -> None:
        self.webhook = webhook

    def collect(self) -> Iterator[Any]:
        reviews = CounterMetricFamily(
            "cloudcore_webhook_reviews",
            "Device AdmissionReviews answered by the validating webhook, by result (allowed, refused, "
            "bad = not an AdmissionReview: 400, 408 or 413)",
            labels=["result"],
        )
        for result, n in self.webhook.answered.items():
            reviews.add_metric([result], n)
        yield reviews


class Metrics:
    """cloudcore's registry and its ``/metrics``, ``/healthz``, ``/livez``, ``/readyz`` server."""

    def __init__(
        self, hub: CloudHub, store: ObjectSyncStore, ready: Callable[[], bool], devices: DeviceController
    ) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(_HubCollector(hub, store))
        self.registry.register(_DeviceCollector(devices))
        self.ack_latency = Histogram(
            "cloudhub_ack_latency_seconds",
            "Time from first send to acknowledgement",
            registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )
        hub.on_ack_latency(self.ack_latency.observe)
        self.health = HealthChecks()
        self.health.add("ping", lambda: True, liveness=True)
        self.health.add("started", ready)
        self._server: ObservabilityServer | None = None
        self.port = 0

    def add_webhook(self, webhook: WebhookServer) -> None:
        self.registry.register(_WebhookCollector(webhook))

    async def start(self, bind: str, port: int) -> None:
        self._server = ObservabilityServer(self.registry, self.health, bind, port)
        self.port = await self._server.start()

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.stop()
