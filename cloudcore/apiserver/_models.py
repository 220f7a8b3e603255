"""SQLite schema of the embedded API server: one row per object, one counter row."""

from __future__ import annotations

from sqlalchemy import BigInteger, LargeBinary, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class ObjectRow(Base):
    """An object's JSON as last written, keyed by group/resource, namespace and name."""

    __tablename__ = "objects"

    resource: Mapped[str] = mapped_column(String, primary_key=True)  # "pods", "devices.devices.kubeedge.io"
    namespace: Mapped[str] = mapped_column(String, primary_key=True)  # "" for cluster-scoped objects
    name: Mapped[str] = mapped_column(String, primary_key=True)
    resource_version: Mapped[int] = mapped_column(BigInteger)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class CounterRow(Base):
    """The global resourceVersion counter, so versions keep increasing after deletes and restarts."""

    __tablename__ = "counters"

    name: Mapped[str] = mapped_column(String, primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger)
