"""The edge store: every object received from the cloud, in SQLite (WAL) through SQLAlchemy.

All database work runs on one thread owned by the store (:attr:`EdgeStore.executor`), so the event
loop never blocks on SQLite and writes never contend with each other; devicetwin's twin store,
which shares the database, writes on that same thread.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import os
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, create_engine, delete, event, func, insert, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from edgecore.metamanager._models import meta_v2, metadata, outbox

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
    # 512 KiB of page cache per connection instead of 2 MiB: the edge database is small and
    # mostly written; edgecore keeps a few connections (one per thread that uses the store).
    cur.execute("PRAGMA cache_size=-512")
    cur.close()


class StoreOpenError(Exception):
    """The database cannot be opened or created: one line saying which file and why."""


def open_error(path: Path, exc: BaseException) -> StoreOpenError:
    """``exc`` (SQLite's, SQLAlchemy's or the OS's) as one line naming ``path`` and the likely cause."""
    if isinstance(exc, SQLAlchemyError) and getattr(exc, "orig", None) is not None:
        reason = str(getattr(exc, "orig", exc))
    else:
        reason = getattr(exc, "strerror", None) or str(exc).splitlines()[0]
    hint = ""
    directory = path.parent
    while not directory.exists() and directory != directory.parent:
        directory = directory.parent
    try:
        if path.is_dir():
            hint = " (it is a directory: give the database file's path)"
        elif os.statvfs(directory).f_flag & os.ST_RDONLY:
            hint = f" ({directory} is on a read-only file system)"
        elif not os.access(directory, os.W_OK):
            hint = f" ({directory} is not writable)"
        elif path.exists() and not os.access(path, os.R_OK | os.W_OK):
            hint = " (the file is not readable and writable)"
    except OSError:
        pass
    return StoreOpenError(f"cannot open database {path}: {reason}{hint}")


class EdgeStore:
    def __init__(self, path: Path) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.engine: Engine = create_engine(
                f"sqlite:///{path}", connect_args={"check_same_thread": False}
            )
            event.listen(self.engine, "connect", _set_pragmas)
            metadata.create_all(self.engine)
        except (OSError, SQLAlchemyError) as exc:
            raise open_error(path, exc) from None
        #: the one thread for all work on this database (shared with the twin store)
        self.executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="edgestore")
        self._watchers: list[Callable[[Change], None]] = []

    async def run(self, fn: Callable[[Connection], T]) -> T:
        """``fn`` on the store's thread with a connection; it commits what it writes."""

        def call() -> T:
            with self.engine.connect() as conn:
                return fn(conn)

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
    def _apply(conn: Connection, ops: list[Operation]) -> list[Change]:
        changes: list[Change] = []
        t = meta_v2.c
        for op in ops:
            if isinstance(op, Upsert):
                md = op.obj["metadata"]
                gvr = gvr_of(op.obj)
                key = object_key(gvr, md.get("namespace"), md["name"])
                stored = conn.scalar(select(t.resource_version).where(t.key == key))
                if stored is not None and stored > op.resource_version:
                    continue  # a newer version is already here; an old retransmission lost the race
                value = json.dumps(op.obj, separators=(",", ":"))
                if stored is None:
                    conn.execute(
                        insert(meta_v2).values(
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
                    conn.execute(
                        update(meta_v2)
                        .where(t.key == key)
                        .values(resource_version=op.resource_version, value=value)
                    )
                    changes.append(Change("MODIFIED", gvr, op.obj))
            else:
                key = object_key(op.gvr, op.namespace, op.name)
                raw = conn.scalar(select(t.value).where(t.key == key))
                if raw is None:
                    continue
                current = json.loads(raw)
                if op.uid and current.get("metadata", {}).get("uid") not in (None, op.uid):
                    continue  # the delete is for an older incarnation of this name
                conn.execute(delete(meta_v2).where(t.key == key))
                changes.append(Change("DELETED", op.gvr, current))
        conn.commit()
        return changes

    async def get(self, gvr: str, namespace: str | None, name: str) -> Obj | None:
        def q(s: Connection) -> Obj | None:
            raw = s.scalar(select(meta_v2.c.value).where(meta_v2.c.key == object_key(gvr, namespace, name)))
            return None if raw is None else json.loads(raw)

        return await self.run(q)

    async def list_objects(self, gvr: str | None = None, namespace: str | None = None) -> list[Obj]:
        def q(s: Connection) -> list[Obj]:
            t = meta_v2.c
            stmt = select(t.value)
            if gvr is not None:
                stmt = stmt.where(t.group_version_resource == gvr)
            if namespace is not None:
                stmt = stmt.where(t.namespace == namespace)
            return [json.loads(v) for v in s.scalars(stmt.order_by(t.key))]

        return await self.run(q)

    async def batches(self, gvr: str | None = None, size: int = 200) -> AsyncIterator[list[Obj]]:
        """Every object (of ``gvr``) in key order, ``size`` at a time: a node's thousands of objects
        are never all parsed at once (memory once taken is not given back)."""
        after = ""
        while True:

            def q(s: Connection, after: str = after) -> list[tuple[str, str]]:
                t = meta_v2.c
                stmt = select(t.key, t.value).where(t.key > after)
                if gvr is not None:
                    stmt = stmt.where(t.group_version_resource == gvr)
                return [(k, v) for k, v in s.execute(stmt.order_by(t.key).limit(size))]

            rows = await self.run(q)
            if not rows:
                return
            after = rows[-1][0]
            yield [json.loads(v) for _, v in rows]

    async def values(
        self, gvr: str, names: list[tuple[str | None, str]]
    ) -> dict[tuple[str | None, str], str]:
        """The stored JSON of objects by (namespace or None, name); absent ones are left out."""
        keys = {object_key(gvr, ns, name): (ns, name) for ns, name in names}

        def q(s: Connection) -> dict[tuple[str | None, str], str]:
            out: dict[tuple[str | None, str], str] = {}
            batch = list(keys)
            t = meta_v2.c
            for i in range(0, len(batch), 500):
                stmt = select(t.key, t.value).where(t.key.in_(batch[i : i + 500]))
                for key, value in s.execute(stmt):
                    out[keys[key]] = value
            return out

        return await self.run(q)

    async def count(self) -> int:
        return await self.run(lambda s: int(s.scalar(select(func.count()).select_from(meta_v2)) or 0))

    # Outbox ------------------------------------------------------------------------------
    async def outbox_put(self, frame: str, limit: int) -> bool:
        """Queue a frame; False (not queued) when ``limit`` frames are already waiting."""

        def q(s: Connection) -> bool:
            n = s.scalar(select(func.count()).select_from(outbox)) or 0
            if n >= limit:
                return False
            s.execute(insert(outbox).values(frame=frame))
            s.commit()
            return True

        return await self.run(q)

    async def outbox_peek(self, n: int = 100) -> list[tuple[int, str]]:
        def q(s: Connection) -> list[tuple[int, str]]:
            rows = s.execute(select(outbox.c.id, outbox.c.frame).order_by(outbox.c.id).limit(n))
            return [(int(i), str(f)) for i, f in rows]

        return await self.run(q)

    async def outbox_remove(self, ids: list[int]) -> None:
        def q(s: Connection) -> None:
            s.execute(delete(outbox).where(outbox.c.id.in_(ids)))
            s.commit()

        await self.run(q)

    def outbox_size_now(self) -> int:
        """Blocking count on the caller's thread (the metrics scrape runs in a thread of its own)."""
        with self.engine.connect() as s:
            return int(s.scalar(select(func.count()).select_from(outbox)) or 0)

    async def outbox_size(self) -> int:
        return await self.run(lambda s: int(s.scalar(select(func.count()).select_from(outbox)) or 0))
