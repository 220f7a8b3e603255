"""The built-in time-series sink: every collected reading into a local SQLite file.

Enabled by ``sinks.sqlite.path`` in the mapper configuration (not by the Device: KubeEdge's
``dbMethod`` has no SQLite). Rows older than ``retention`` are deleted as new ones arrive.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from sqlalchemy import BigInteger, Index, String, create_engine, delete, event, insert, select
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from mappers.sdk.sinks._buffer import Item, SinkBackend


class _Base(DeclarativeBase):
    pass


class ReadingRow(_Base):
    __tablename__ = "readings"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    ts_ms: Mapped[int] = mapped_column(BigInteger)
    namespace: Mapped[str] = mapped_column(String(253))
    device: Mapped[str] = mapped_column(String(253))
    property: Mapped[str] = mapped_column(String(253))
    value: Mapped[str] = mapped_column(String)
    type: Mapped[str] = mapped_column(String(16))
    __table_args__ = (Index("ix_readings_device_ts", "namespace", "device", "property", "ts_ms"),)


class SqliteSink(SinkBackend):
    def __init__(self, path: str | Path, retention_s: float = 86_400.0) -> None:
        self.label = f"sqlite {path}"
        self._retention_ms = int(retention_s * 1000)
        self._last_prune = 0.0
        self.engine = create_engine(f"sqlite:///{path}")
        event.listen(self.engine, "connect", _pragmas)
        _Base.metadata.create_all(self.engine)

    def _write(self, batch: list[Item]) -> None:
        rows = [
            {
                "ts_ms": r.timestamp_ms,
                "namespace": r.namespace,
                "device": r.device,
                "property": r.property,
                "value": r.value,
                "type": r.type,
            }
            for _, r in batch
        ]
        with self.engine.begin() as conn:
            conn.execute(insert(ReadingRow), rows)
            now = time.monotonic()
            if now - self._last_prune > 60:
                self._last_prune = now
                cutoff = time.time_ns() // 1_000_000 - self._retention_ms
                conn.execute(delete(ReadingRow).where(ReadingRow.ts_ms < cutoff))

    async def send(self, batch: list[Item]) -> None:
        await asyncio.to_thread(self._write, batch)

    def _query(self, namespace: str, device: str, prop: str | None, limit: int) -> list[dict[str, Any]]:
        stmt = select(ReadingRow).where(ReadingRow.namespace == namespace, ReadingRow.device == device)
        if prop:
            stmt = stmt.where(ReadingRow.property == prop)
        stmt = stmt.order_by(ReadingRow.ts_ms.desc()).limit(limit)
        with self.engine.connect() as conn:
            return [
                {"propertyName": r.property, "value": r.value, "type": r.type, "timestamp": r.ts_ms}
                for r in conn.execute(stmt)
            ]

    async def query(
        self, namespace: str, device: str, prop: str | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        return await asyncio.to_thread(self._query, namespace, device, prop, limit)

    async def close(self) -> None:
        self.engine.dispose()


def _pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()
