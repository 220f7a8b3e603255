"""SQLite tables of the edge store (KubeEdge's ``meta_v2`` column names, section 4.4) and the outbox.

SQLAlchemy Core tables, not ORM classes: the edge store reads and writes whole rows, and
``sqlalchemy.orm`` would add ~5 MB to edgecore's memory for nothing.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, Integer, MetaData, String, Table, Text

metadata = MetaData()

# One Kubernetes object received from the cloud; key: ``/<group|core>/<version>/<resource>/<ns|null>/<name>``.
meta_v2 = Table(
    "meta_v2",
    metadata,
    Column("key", String(256), primary_key=True),
    Column("group_version_resource", String(256), nullable=False),
    Column("namespace", String(256), nullable=False),
    Column("name", String(256), nullable=False),
    Column("resource_version", BigInteger, nullable=False),
    Column("value", Text, nullable=False),
    Index("ix_meta_v2_group_version_resource", "group_version_resource"),
)

# A cloud-bound message produced while offline, delivered in ``id`` order after reconnecting.
outbox = Table(
    "outbox",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("frame", Text, nullable=False),
)
