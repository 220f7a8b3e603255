"""The edge store: every object received from the cloud, in SQLite (WAL) through SQLAlchemy.

All database work runs on one thread owned by the store (:attr:`EdgeStore.executor`), so the event
loop never blocks on SQLite and writes never contend with each other; devicetwin's twin store,
which shares the database, writes on that same thread.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import create_engine, delete, event, func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from edgecore.metamanager._models import Base, MetaV2, OutboxEntry

T = TypeVar("T")
Obj = dict[str, Any]

# Plurals of the kinds the cloud sends; anything else gets kind.lower() + "s".
_PLURALS = {"endpoints": "endpoints", "endpointslice": "endpointslices"}


def plural_of(kind: str) -> str:
    k = kind.lower()
    return _PLURALS.get(k, k + "s")


def gvr_of(obj: Obj) -> str:
    """``<group|core>/<version>/<resource>`` of an object."""
    api_version = obj.get("apiVersion") or "v1"
    group, _, version = api_version.rpartition("/")
    return f"{group or 'core'}/{version}/{plural_of(obj.get('kind', ''))}"


def object_key(gvr: str, namespace: str | None, name: str) -> str:
    return f"/{gvr}/{namespace or 'null'}/{name}"


@dataclass(frozen=True)
class Change:
    """One applied change, for watchers (MetaServer)."""

    type: str  # ADDED | MODIFIED | DELETED
    gvr: str
    obj: Obj


@dataclass(frozen=True)
class Upsert:
    obj: Obj
    resource_version: int


@dataclass(frozen=True)
class Remove:
    gvr: str
    namespace: str | None
    name: str
    uid: str | None


Operation = Upsert | Remove


def _set_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA busy_timeout=5000")
    cur.close()


class EdgeStore:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.engine: Engine = create_engine(f"sqlite:///{path}", connect_args={"check_same_thread": False})
        event.listen(self.engine, "connect", _set_pragmas)
        Base.metadata.create_all(self.engine)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        #: the one thread for all work on this database (shared with the twin store)
        self.executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="edgestore")
        self._watchers: list[Callable[[Change], None]] = []

    async def run(self, fn: Callable[[Session], T]) -> T:
        def call() -> T:
            with self._sessions() as session:
                return fn(session)

        return await asyncio.get_running_loop().run_in_executor(self.executor, call)

    def close(self) -> None:
        self.executor.shutdown(wait=True)
        self.engine.dispose()

    def add_watcher(self, watcher: Callable[[Change], None]) -> None:
        self._watchers.append(watcher)

    # Objects -----------------------------------------------------------------------------
    async def apply(self, ops: Iterable[Operation]) -> list[Change]:
        """Apply a batch in one transaction; returns the changes after the commit."""
        batch = list(ops)
        changes = await self.run(lambda s: self._apply(s, batch))
        for change in changes:
            for w in self._watchers:
                w(change)
        return changes

    @staticmethod
    def _apply(session: Session, ops: list[Operation]) -> list[Change]:
        changes: list[Change] = []
        for op in ops:
            if isinstance(op, Upsert):
                md = op.obj["metadata"]
                gvr = gvr_of(op.obj)
                key = object_key(gvr, md.get("namespace"), md["name"])
                row = session.get(MetaV2, key)
                if row is not None and row.resource_version > op.resource_version:
                    continue  # a newer version is already here; an old retransmission lost the race
                value = json.dumps(op.obj, separators=(",", ":"))
                if row is None:
                    session.add(
                        MetaV2(
                            key=key,
                            group_version_resource=gvr,
                            namespace=md.get("namespace") or "null",
                            name=md["name"],
                            resource_version=op.resource_version,
                            value=value,
                        )
                    )
                    changes.append(Change("ADDED", gvr, op.obj))
                else:
                    row.resource_version = op.resource_version
                    row.value = value
                    changes.append(Change("MODIFIED", gvr, op.obj))
            else:
                key = object_key(op.gvr, op.namespace, op.name)
                row = session.get(MetaV2, key)
                if row is None:
                    continue
                current = json.loads(row.value)
                if op.uid and current.get("metadata", {}).get("uid") not in (None, op.uid):
                    continue  # the delete is for an older incarnation of this name
                session.delete(row)
                changes.append(Change("DELETED", op.gvr, current))
        session.commit()
        return changes

    async def get(self, gvr: str, namespace: str | None, name: str) -> Obj | None:
        def q(s: Session) -> Obj | None:
            row = s.get(MetaV2, object_key(gvr, namespace, name))
            return None if row is None else json.loads(row.value)

        return await self.run(q)

    async def list_objects(self, gvr: str | None = None, namespace: str | None = None) -> list[Obj]:
        def q(s: Session) -> list[Obj]:
            stmt = select(MetaV2.value)
            if gvr is not None:
                stmt = stmt.where(MetaV2.group_version_resource == gvr)
            if namespace is not None:
                stmt = stmt.where(MetaV2.namespace == namespace)
            return [json.loads(v) for v in s.scalars(stmt.order_by(MetaV2.key))]

        return await self.run(q)

    async def count(self) -> int:
        return await self.run(lambda s: int(s.scalar(select(func.count()).select_from(MetaV2)) or 0))

    # Outbox ------------------------------------------------------------------------------
    async def outbox_put(self, frame: str, limit: int) -> bool:
        """Queue a frame; False (not queued) when ``limit`` frames are already waiting."""

        def q(s: Session) -> bool:
            n = s.scalar(select(func.count()).select_from(OutboxEntry)) or 0
            if n >= limit:
                return False
            s.add(OutboxEntry(frame=frame))
            s.commit()
            return True

        return await self.run(q)

    async def outbox_peek(self, n: int = 100) -> list[tuple[int, str]]:
        def q(s: Session) -> list[tuple[int, str]]:
            rows = s.execute(select(OutboxEntry.id, OutboxEntry.frame).order_by(OutboxEntry.id).limit(n))
            return [(int(i), str(f)) for i, f in rows]

        return await self.run(q)

    async def outbox_remove(self, ids: list[int]) -> None:
        def q(s: Session) -> None:
            s.execute(delete(OutboxEntry).where(OutboxEntry.id.in_(ids)))
            s.commit()

        await self.run(q)

    def outbox_size_now(self) -> int:
        """Blocking count on the caller's thread (the metrics scrape runs in a thread of its own)."""
        with self._sessions() as s:
            return int(s.scalar(select(func.count()).select_from(OutboxEntry)) or 0)

    async def outbox_size(self) -> int:
        return await self.run(lambda s: int(s.scalar(select(func.count()).select_from(OutboxEntry)) or 0))
