"""SQLite tables of the device twin store (SQLAlchemy 2 models).

Devices and models as the cloud sent them, one row per twin with both sides (desired and
reported), their versions, timestamps and what the cloud has acknowledged, and the mappers that
registered over DMI (so registrations survive an edgecore restart).
"""

from __future__ import annotations

from sqlalchemy import Boolean, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class DeviceRow(Base):
    __tablename__ = "device"

    id: Mapped[str] = mapped_column(String(256), primary_key=True)  # "<namespace>/<name>", as KubeEdge
    namespace: Mapped[str] = mapped_column(String(253))
    name: Mapped[str] = mapped_column(String(253))
    description: Mapped[str] = mapped_column(Text, default="")
    body: Mapped[str] = mapped_column(Text)  # the Device object (JSON) as the cloud sent it
    resource_version: Mapped[int] = mapped_column(Integer, default=0)
    state: Mapped[str] = mapped_column(String(32), default="")
    last_online: Mapped[str] = mapped_column(String(40), default="")
    state_version: Mapped[int] = mapped_column(Integer, default=0)
    state_synced: Mapped[int] = mapped_column(Integer, default=0)


class DeviceModelRow(Base):
    __tablename__ = "device_model"

    id: Mapped[str] = mapped_column(String(256), primary_key=True)  # "<namespace>/<name>"
    body: Mapped[str] = mapped_column(Text)
    resource_version: Mapped[int] = mapped_column(Integer, default=0)


class TwinRow(Base):
    __tablename__ = "device_twin"

    device_id: Mapped[str] = mapped_column(String(256), primary_key=True)
    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    attr_type: Mapped[str] = mapped_column(String(16), default="string")
    optional: Mapped[bool] = mapped_column(Boolean, default=True)
    # desired ("expected" in KubeEdge's MQTT JSON)
    expected: Mapped[str | None] = mapped_column(Text, nullable=True)
    expected_ts: Mapped[int] = mapped_column(Integer, default=0)
    expected_version: Mapped[int] = mapped_column(Integer, default=0)
    expected_from_edge: Mapped[bool] = mapped_column(Boolean, default=False)
    spec_desired: Mapped[str | None] = mapped_column(Text, nullable=True)
    cloud_version: Mapped[int] = mapped_column(Integer, default=0)
    # reported ("actual")
    actual: Mapped[str | None] = mapped_column(Text, nullable=True)
    actual_ts: Mapped[int] = mapped_column(Integer, default=0)
    actual_version: Mapped[int] = mapped_column(Integer, default=0)
    actual_meta: Mapped[str] = mapped_column(Text, default="{}")
    # the desired value the mapper says it applied (DMI observedDesired)
    observed: Mapped[str | None] = mapped_column(Text, nullable=True)
    observed_ts: Mapped[int] = mapped_column(Integer, default=0)
    # versions the cloud has acknowledged
    synced_expected: Mapped[int] = mapped_column(Integer, default=0)
    synced_actual: Mapped[int] = mapped_column(Integer, default=0)


class MapperRow(Base):
    __tablename__ = "device_mapper"

    name: Mapped[str] = mapped_column(String(253), primary_key=True)
    protocol: Mapped[str] = mapped_column(String(253))
    address: Mapped[str] = mapped_column(Text)
    body: Mapped[str] = mapped_column(Text)  # MapperInfo as JSON
