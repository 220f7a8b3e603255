"""SQLite tables of the edge store (KubeEdge's ``meta_v2`` column names, section 4.4) and the outbox."""

from __future__ import annotations

from sqlalchemy import BigInteger, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class MetaV2(Base):
    """One Kubernetes object received from the cloud.

    key: ``/<group|core>/<version>/<resource>/<ns|null>/<name>``
    """

    __tablename__ = "meta_v2"

    key: Mapped[str] = mapped_column(String(256), primary_key=True)
    group_version_resource: Mapped[str] = mapped_column(String(256), index=True)
    namespace: Mapped[str] = mapped_column(String(256))
    name: Mapped[str] = mapped_column(String(256))
    resource_version: Mapped[int] = mapped_column(BigInteger)
    value: Mapped[str] = mapped_column(Text)


class OutboxEntry(Base):
    """A cloud-bound message produced while offline, delivered in ``id`` order after reconnecting."""

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    frame: Mapped[str] = mapped_column(Text)
