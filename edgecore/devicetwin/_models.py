"""SQLite tables of the device twin store (SQLAlchemy Core tables).

Devices and models as the cloud sent them, one row per twin with both sides (desired and
reported), their versions, timestamps and what the cloud has acknowledged, and the mappers that
registered over DMI (so registrations survive an edgecore restart). Core tables rather than ORM
classes: the store writes rows in batches and loads them once, and ``sqlalchemy.orm`` would add
~5 MB to edgecore's memory.
"""

from __future__ import annotations

from sqlalchemy import Boolean, Column, Float, Integer, MetaData, String, Table, Text

metadata = MetaData()

device = Table(
    "device",
    metadata,
    Column("id", String(256), primary_key=True),  # "<namespace>/<name>", as KubeEdge
    Column("namespace", String(253), nullable=False),
    Column("name", String(253), nullable=False),
    Column("description", Text, nullable=False, default=""),
    Column("body", Text, nullable=False),  # the Device object (JSON) as the cloud sent it
    Column("resource_version", Integer, nullable=False, default=0),
    Column("state", String(32), nullable=False, default=""),
    Column("last_online", String(40), nullable=False, default=""),
    Column("state_version", Integer, nullable=False, default=0),
    Column("state_synced", Integer, nullable=False, default=0),
)

device_model = Table(
    "device_model",
    metadata,
    Column("id", String(256), primary_key=True),  # "<namespace>/<name>"
    Column("body", Text, nullable=False),
    Column("resource_version", Integer, nullable=False, default=0),
)

device_twin = Table(
    "device_twin",
    metadata,
    Column("device_id", String(256), primary_key=True),
    Column("name", String(128), primary_key=True),
    Column("attr_type", String(16), nullable=False, default="string"),
    Column("optional", Boolean, nullable=False, default=True),
    # desired ("expected" in KubeEdge's MQTT JSON)
    Column("expected", Text, nullable=True),
    Column("expected_ts", Integer, nullable=False, default=0),
    Column("expected_version", Integer, nullable=False, default=0),
    Column("expected_from_edge", Boolean, nullable=False, default=False),
    Column("spec_desired", Text, nullable=True),
    Column("cloud_version", Integer, nullable=False, default=0),
    # reported ("actual")
    Column("actual", Text, nullable=True),
    Column("actual_ts", Integer, nullable=False, default=0),
    Column("actual_version", Integer, nullable=False, default=0),
    Column("actual_meta", Text, nullable=False, default="{}"),
    # the desired value the mapper says it applied (DMI observedDesired)
    Column("observed", Text, nullable=True),
    Column("observed_ts", Integer, nullable=False, default=0),
    # versions the cloud has acknowledged
    Column("synced_expected", Integer, nullable=False, default=0),
    Column("synced_actual", Integer, nullable=False, default=0),
)

device_mapper = Table(
    "device_mapper",
    metadata,
    Column("name", String(253), primary_key=True),
    Column("protocol", String(253), nullable=False),
    Column("address", Text, nullable=False),
    Column("body", Text, nullable=False),  # MapperInfo as JSON
)

# One row, rewritten by the readiness probe: a store that cannot take this write cannot take reports.
write_probe = Table(
    "write_probe",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("at", Float, nullable=False),
)
