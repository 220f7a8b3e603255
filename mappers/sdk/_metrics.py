"""Prometheus metrics of one mapper process, on a registry of its own (served at ``/metrics``)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

registry = CollectorRegistry(auto_describe=True)

readings = Counter("mapper_readings", "Property values collected", ["protocol"], registry=registry)
read_errors = Counter("mapper_read_errors", "Failed property reads", ["protocol"], registry=registry)
reports = Counter("mapper_dmi_reports", "DMI report calls to edgecore", ["rpc", "result"], registry=registry)
twins_reported = Counter("mapper_twins_reported", "Twins sent in ReportDeviceStatus", registry=registry)
registrations = Counter("mapper_registrations", "Successful MapperRegister calls", registry=registry)
registered = Gauge("mapper_registered", "1 while registered with edgecore", registry=registry)
devices = Gauge("mapper_devices", "Devices by state", ["state"], registry=registry)
sink_sent = Counter("mapper_sink_sent", "Readings delivered by a sink", ["sink"], registry=registry)
sink_dropped = Counter(
    "mapper_sink_dropped", "Readings dropped because a sink's buffer was full", ["sink"], registry=registry
)
sink_buffered = Gauge("mapper_sink_buffered", "Readings in a sink's buffer", ["sink"], registry=registry)
sink_up = Gauge("mapper_sink_up", "1 while a sink's last delivery succeeded", ["sink"], registry=registry)
