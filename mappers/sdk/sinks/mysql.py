"""MySQL/MariaDB sink (``pushMethod.dbMethod.mysql``) in KubeEdge's layout.

One table per property, named `` `<namespace>/<device>/<property>` ``, with columns
``(id INT AUTO_INCREMENT PRIMARY KEY, ts DATETIME, field TEXT)``. The password comes from the
``PASSWORD`` environment variable as in KubeEdge's template. PyMySQL is blocking, so every batch
runs in a worker thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from datetime import UTC, datetime
from typing import Any

import pymysql

from mappers.sdk._types import MySQLPush
from mappers.sdk.sinks._buffer import Item, SinkBackend


def table_name(namespace: str, device: str, prop: str) -> str:
    return f"{namespace}/{device}/{prop}".replace("`", "``")


class MySQLSink(SinkBackend):
    def __init__(self, target: MySQLPush) -> None:
        self._target = target
        self.label = f"mysql {target.addr}/{target.database}"
        self._conn: Any = None
        self._tables: set[str] = set()

    def _connect(self) -> Any:
        host, _, port = self._target.addr.rpartition(":")
        kwargs: dict[str, Any] = {
            "user": self._target.user_name,
            "password": os.environ.get("PASSWORD", ""),
            "database": self._target.database,
            "connect_timeout": 3,
            "autocommit": True,
        }
        if self._target.addr.startswith("unix:"):
            kwargs["unix_socket"] = self._target.addr[len("unix:") :]
        else:
            kwargs["host"] = host or "127.0.0.1"
            kwargs["port"] = int(port or 3306)
        return pymysql.connect(**kwargs)

    def _write(self, batch: list[Item]) -> None:
        if self._conn is None:
            self._conn = self._connect()
            self._tables.clear()
        try:
            with self._conn.cursor() as cur:
                for _, r in batch:
                    table = table_name(r.namespace, r.device, r.property)
                    if table not in self._tables:
                        cur.execute(
                            f"CREATE TABLE IF NOT EXISTS `{table}` "
                            "(id INT AUTO_INCREMENT PRIMARY KEY, ts DATETIME, field TEXT)"
                        )
                        self._tables.add(table)
                    ts = datetime.fromtimestamp(r.timestamp_ms / 1000, UTC).replace(tzinfo=None)
                    cur.execute(f"INSERT INTO `{table}` (ts, field) VALUES (%s, %s)", (ts, r.value))
        except Exception:
            conn, self._conn = self._conn, None
            with contextlib.suppress(Exception):
                conn.close()
            raise

    async def send(self, batch: list[Item]) -> None:
        await asyncio.to_thread(self._write, batch)

    async def close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            await asyncio.to_thread(conn.close)
