"""The twin store: authoritative state in memory, written behind to SQLite.

A mapper may report thousands of values a second; writing each one synchronously would cost a
commit per report. Instead changes mark rows dirty and a flusher commits them at most every
``flush_interval`` seconds (the newest value of a row wins, so a busy twin costs one row write per
flush). Callers that must not lose an accepted change across a crash await :meth:`TwinStore.sync`
(everything) or :meth:`TwinStore.sync_device` (one device: a desired value, a Device from the
cloud), which does not wait for other devices' pending rows, or :meth:`TwinStore.commit` (group
commit: the DMI reports, each answered OK only once durable; the reports that arrive while one
transaction commits share the next one, so a commit costs one transaction per batch, not per report).

Ordering: every write is a snapshot of the in-memory state taken on the event loop when the write
is handed to the store's one writer thread, and that thread commits in hand-over order, so an
older snapshot never lands after a newer one. The flusher hands over at most ``_CHUNK_ROWS`` twin
rows at a time: a device write waits for at most one chunk, not for the whole backlog.

Twin rows go to the SQLite driver as plain tuples of one precompiled upsert (``executemany``),
without SQLAlchemy's per-row parameter processing: about half the CPU per row.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, Table, bindparam, create_engine, delete, event, select
from sqlalchemy.dialects import sqlite
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from edgecore.devicetwin._models import device as device_table
from edgecore.devicetwin._models import device_mapper, device_model, device_twin, metadata, write_probe
from edgecore.devicetwin._state import Device, Twin, shared_meta

log = logging.getLogger(__name__)

# Twin rows per write the flusher hands over; a device write queued meanwhile waits for one chunk.
_CHUNK_ROWS = 256


def open_engine(path: str | Path) -> Engine:
    engine = create_engine(f"sqlite:///{path}")

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        # 512 KiB of page cache per connection instead of 2 MiB: the edge database is small and
        # mostly written; edgecore keeps a few connections (one per thread that uses the store).
        cur.execute("PRAGMA cache_size=-512")
        cur.close()

    return engine


# Column order of a twin row's parameters: the table's own order, checked at import.
_TWIN_COLUMNS = (
    "device_id",
    "name",
    "attr_type",
    "optional",
    "expected",
    "expected_ts",
    "expected_version",
    "expected_from_edge",
    "spec_desired",
    "cloud_version",
    "actual",
    "actual_ts",
    "actual_version",
    "actual_meta",
    "observed",
    "observed_ts",
    "synced_expected",
    "synced_actual",
)
_TWIN_KEYS = ("device_id", "name")


def _twin_upsert_sql() -> str:
    """The upsert of one twin row, compiled once; parameters positional in ``_TWIN_COLUMNS`` order."""
    table = device_twin
    if tuple(c.name for c in table.columns) != _TWIN_COLUMNS:
        raise AssertionError("device_twin columns changed: update _TWIN_COLUMNS and _twin_values")
    stmt = sqlite_insert(table).values({c: bindparam(c) for c in _TWIN_COLUMNS})
    stmt = stmt.on_conflict_do_update(
        index_elements=list(_TWIN_KEYS),
        set_={c: stmt.excluded[c] for c in _TWIN_COLUMNS if c not in _TWIN_KEYS},
    )
    compiled = stmt.compile(dialect=sqlite.dialect(paramstyle="qmark"))
    if tuple(compiled.positiontup or ()) != _TWIN_COLUMNS:
        raise AssertionError(f"unexpected parameter order {compiled.positiontup}")
    return str(compiled)


_TWIN_UPSERT = _twin_upsert_sql()


def _interned(value: str | None) -> str | None:
    return None if value is None else sys.intern(value)


def _twin_values(device_id: str, t: Twin) -> tuple[Any, ...]:
    return (
        device_id,
        t.name,
        t.attr_type,
        t.optional,
        t.expected,
        t.expected_ts,
        t.expected_version,
        t.expected_from_edge,
        t.spec_desired,
        t.cloud_version,
        t.actual,
        t.actual_ts,
        t.actual_version,
        json.dumps(t.actual_meta) if t.actual_meta else "{}",
        t.observed,
        t.observed_ts,
        t.synced_expected,
        t.synced_actual,
    )


def _device_row(d: Device) -> dict[str, Any]:
    return {
        "id": d.id,
        "namespace": d.namespace,
        "name": d.name,
        "description": d.description,
        "body": d.raw,
        "resource_version": d.resource_version,
        "state": d.state,
        "last_online": d.last_online,
        "state_version": d.state_version,
        "state_synced": d.state_synced,
    }


def _upsert(conn: Connection, table: Table, keys: list[str], rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    stmt = sqlite_insert(table)
    cols = [c for c in rows[0] if c not in keys]
    stmt = stmt.on_conflict_do_update(index_elements=keys, set_={c: stmt.excluded[c] for c in cols})
    conn.execute(stmt, rows)


@dataclass(slots=True)
class _DeviceDirty:
    """What must be written for one device: rows are rebuilt from memory when the write is taken."""

    row: bool = False  # upsert the device row
    gone: bool = False  # delete the device and all its twin rows first
    twins: set[str] = field(default_factory=set)  # twin rows to upsert (present) or delete (absent)


@dataclass(slots=True)
class _Batch:
    devices: list[dict[str, Any]] = field(default_factory=list)
    twins: list[tuple[Any, ...]] = field(default_factory=list)
    gone_twins: list[tuple[str, str]] = field(default_factory=list)
    gone_devices: list[str] = field(default_factory=list)
    models: list[dict[str, Any]] = field(default_factory=list)
    gone_models: list[str] = field(default_factory=list)
    mappers: list[dict[str, Any]] = field(default_factory=list)
    gone_mappers: list[str] = field(default_factory=list)
    # what was taken, put back if the write fails
    taken: dict[str, _DeviceDirty] = field(default_factory=dict)
    taken_models: set[str] = field(default_factory=set)
    taken_mappers: set[str] = field(default_factory=set)


class StoreUnavailable(Exception):
    """The store could not commit: nothing that waited for this commit may be acknowledged."""


class TwinStore:
    def __init__(
        self,
        path: str | Path,
        *,
        flush_interval: float = 1.0,
        commit_delay: float = 0.004,
        engine: Engine | None = None,
        executor: ThreadPoolExecutor | None = None,
    ) -> None:
        """``engine``: share an existing database (edgecore's store), else open ``path``;
        ``executor``: the ONE-thread executor of whoever else writes that database, so writes queue
        behind each other instead of retrying on SQLite's lock (whose busy wait sleeps in steps of
        up to 100 ms); one thread, because writes must commit in the order they are handed over."""
        self.path = Path(path)
        self._shared_engine = engine
        self.flush_interval = flush_interval
        self.commit_delay = commit_delay
        self.devices: dict[str, Device] = {}
        self.models: dict[str, dict[str, Any]] = {}
        self.model_versions: dict[str, int] = {}
        self.mappers: dict[str, dict[str, Any]] = {}
        self._engine: Engine | None = None
        self._own_executor = executor is None
        self._executor = executor or ThreadPoolExecutor(max_workers=1, thread_name_prefix="twin-store")
        # Insertion order: devices dirty the longest are written first.
        self._dirty: dict[str, _DeviceDirty] = {}
        self._dirty_models: set[str] = set()
        self._dirty_mappers: set[str] = set()
        self._writes: set[asyncio.Task[None]] = set()  # handed to the writer thread, not settled
        self._last_write: asyncio.Task[None] | None = None  # the one handed over most recently
        self._wake = asyncio.Event()
        self._flusher: asyncio.Task[None] | None = None
        # Group commit: callers of commit() wait on ``_group``; the committer writes it in one transaction.
        self._group: asyncio.Future[None] | None = None
        self._group_wake = asyncio.Event()
        self._committer: asyncio.Task[None] | None = None
        #: rows committed and writes made, for measurements
        self.rows_written = 0
        self.writes = 0
        #: why the last write failed, None once a write succeeds again (for /readyz)
        self.write_error: str | None = None
        self.write_failures = 0

    async def open(self) -> None:
        if self._shared_engine is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._open_sync)
        self._flusher = asyncio.create_task(self._flush_loop(), name="twin-store-flush")
        self._committer = asyncio.create_task(self._commit_loop(), name="twin-store-commit")

    def _open_sync(self) -> None:
        self._engine = self._shared_engine or open_engine(self.path)
        metadata.create_all(self._engine)
        with self._engine.connect() as s:
            for row in s.execute(select(device_table)):
                self.devices[row.id] = Device(
                    id=row.id,
                    namespace=sys.intern(row.namespace),
                    name=row.name,
                    body=json.loads(row.body),
                    resource_version=row.resource_version,
                    description=row.description,
                    state=row.state,
                    last_online=row.last_online,
                    state_version=row.state_version,
                    state_synced=row.state_synced,
                )
            for trow in s.execute(select(device_twin)):
                dev = self.devices.get(trow.device_id)
                if dev is None:
                    continue
                # Interned and shared as when they arrive (apply_spec, reports): thousands of twins
                # repeat a few names, types, desired values and metadata maps.
                name = sys.intern(trow.name)
                dev.twins[name] = Twin(
                    name=name,
                    attr_type=sys.intern(trow.attr_type),
                    optional=trow.optional,
                    expected=_interned(trow.expected),
                    expected_ts=trow.expected_ts,
                    expected_version=trow.expected_version,
                    expected_from_edge=trow.expected_from_edge,
                    spec_desired=_interned(trow.spec_desired),
                    cloud_version=trow.cloud_version,
                    actual=trow.actual,
                    actual_ts=trow.actual_ts,
                    actual_version=trow.actual_version,
                    actual_meta=shared_meta(json.loads(trow.actual_meta or "{}")),
                    observed=trow.observed,
                    observed_ts=trow.observed_ts,
                    synced_expected=trow.synced_expected,
                    synced_actual=trow.synced_actual,
                )
            for mrow in s.execute(select(device_model)):
                self.models[mrow.id] = json.loads(mrow.body)
                self.model_versions[mrow.id] = mrow.resource_version
            for prow in s.execute(select(device_mapper)):
                self.mappers[prow.name] = json.loads(prow.body)

    async def close(self) -> None:
        for task in (self._flusher, self._committer):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._flusher = self._committer = None
        if self._group is not None and not self._group.done():
            self._group.set_exception(StoreUnavailable("the twin store is closing"))
            self._group.exception()  # retrieved: its waiters report it
        self._group = None
        await self.sync()
        loop = asyncio.get_running_loop()
        if self._engine is not None and self._shared_engine is None:
            await loop.run_in_executor(self._executor, self._engine.dispose)
        if self._own_executor:
            self._executor.shutdown(wait=True)

    async def probe_write(self) -> None:
        """Commit a one-row write, for readiness; raises StoreUnavailable with the reason."""

        def write() -> None:
            assert self._engine is not None
            with self._engine.begin() as s:
                stmt = sqlite_insert(write_probe).values(id=1, at=time.time())
                s.execute(stmt.on_conflict_do_update(index_elements=["id"], set_={"at": stmt.excluded.at}))

        try:
            await asyncio.get_running_loop().run_in_executor(self._executor, write)
        except Exception as exc:
            self._write_failed(exc)
            raise StoreUnavailable(f"the twin store cannot write: {self.write_error}") from None
        if self.write_error is not None and not self._dirty:
            log.warning("twin store writes again")
            self.write_error = None
        elif self.write_error is not None:
            # Rows a failed write left behind are not written yet: ready once they are.
            self._wake.set()
            raise StoreUnavailable(f"the twin store cannot write: {self.write_error} (retrying)")

    # marking changes ---------------------------------------------------------------------------

    def _marks(self, device_id: str) -> _DeviceDirty:
        marks = self._dirty.get(device_id)
        if marks is None:
            marks = self._dirty[device_id] = _DeviceDirty()
            self._wake.set()
        return marks

    def device_changed(self, device_id: str) -> None:
        self._marks(device_id).row = True

    def twins_changed(self, device_id: str, names: Iterable[str]) -> None:
        """Twins changed, were added or were removed (a removed twin's row is deleted)."""
        self._marks(device_id).twins.update(names)

    def put_device(self, device: Device) -> None:
        self.devices[device.id] = device
        marks = self._marks(device.id)
        marks.row = True
        marks.twins.update(device.twins)

    def remove_device(self, device_id: str) -> Device | None:
        dev = self.devices.pop(device_id, None)
        marks = self._marks(device_id)
        marks.row = False
        marks.gone = True
        marks.twins.clear()
        return dev

    def put_model(self, model_id: str, body: dict[str, Any], resource_version: int) -> None:
        self.models[model_id] = body
        self.model_versions[model_id] = resource_version
        self._dirty_models.add(model_id)
        self._wake.set()

    def remove_model(self, model_id: str) -> None:
        self.models.pop(model_id, None)
        self.model_versions.pop(model_id, None)
        self._dirty_models.add(model_id)
        self._wake.set()

    def put_mapper(self, name: str, info: dict[str, Any]) -> None:
        self.mappers[name] = info
        self._dirty_mappers.add(name)
        self._wake.set()

    def remove_mapper(self, name: str) -> None:
        self.mappers.pop(name, None)
        self._dirty_mappers.add(name)
        self._wake.set()

    def pending_rows(self) -> int:
        """Device and twin rows changed in memory and not yet handed to the writer."""
        return sum(int(m.row or m.gone) + len(m.twins) for m in self._dirty.values())

    # writing -----------------------------------------------------------------------------------

    async def sync(self) -> None:
        """Return once every change made before the call is committed."""
        await self._write_now(self._take(list(self._dirty), everything=True))

    async def commit(self) -> None:
        """Group commit: return once every change made before the call is committed. Callers that
        arrive while a transaction commits share the next one. Raises :class:`StoreUnavailable`
        when the write fails (the changes stay in memory, marked dirty, and are written later)."""
        await asyncio.shield(self.committed())

    def committed(self) -> asyncio.Future[None]:
        """The future of the group commit that will hold every change made so far (shared: add
        callbacks, never cancel it); fails with :class:`StoreUnavailable`."""
        group = self._group
        if group is None:
            group = self._group = asyncio.get_running_loop().create_future()
            self._group_wake.set()
        return group

    async def _commit_loop(self) -> None:
        while True:
            await self._group_wake.wait()
            self._group_wake.clear()
            if self.commit_delay:
                # Let the reports of the next few ms join this transaction: a commit costs its
                # bookkeeping and an fsync whatever it holds, so fewer, fuller ones cost less CPU.
                await asyncio.sleep(self.commit_delay)
            group, self._group = self._group, None
            if group is None:
                continue
            try:
                await self.sync()
            except Exception as exc:
                if not group.done():
                    group.set_exception(StoreUnavailable(f"the twin store cannot write: {exc}"))
                    group.exception()  # retrieved here: each waiter gets it too
            else:
                if not group.done():
                    group.set_result(None)

    async def sync_device(self, device_id: str) -> None:
        """Return once every change to ``device_id`` (its row, its twins) made before the call is
        committed. Other devices' pending rows stay pending: this waits at most for a write that is
        already under way."""
        await self._write_now(self._take([device_id] if device_id in self._dirty else [], everything=False))

    async def _write_now(self, batch: _Batch | None) -> None:
        # Writes handed over before this call hold changes made before it. The writer thread runs
        # them in order, so once the newest of them has settled all have: waiting for that one alone
        # keeps a burst of callers linear (waiting for each of them, 1,000 Devices re-applied at
        # start made ~500,000 waiters and left ~20 MB of RSS behind).
        last = self._last_write if self._writes else None
        failures = self.write_failures
        if batch is not None:
            await asyncio.shield(self._hand_over(batch))
        if last is None:
            return
        try:
            await asyncio.shield(last)
        except asyncio.CancelledError:
            if not last.cancelled():
                raise  # this caller is cancelled, not the write
        except Exception:
            pass  # counted in write_failures
        if self.write_failures != failures or last.cancelled():
            # One that failed put its rows back: write them now.
            retry = self._take(list(self._dirty), everything=True)
            if retry is not None:
                await asyncio.shield(self._hand_over(retry))

    async def _flush_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            # One round writes what was dirty when it started; rows changed meanwhile wait for the
            # next round, so a busy twin still costs one row write per interval.
            this_round = iter(list(self._dirty))
            try:
                while (batch := self._take(this_round, everything=False, limit=_CHUNK_ROWS)) is not None:
                    await asyncio.shield(self._hand_over(batch))
            except Exception:
                pass  # logged once by _write_failed (and /readyz says so); retried next round
            await asyncio.sleep(self.flush_interval)

    def _take(
        self, device_ids: Iterable[str], *, everything: bool, limit: int | None = None
    ) -> _Batch | None:
        """Snapshot the rows of ``device_ids`` and mark them clean; with ``limit``, stop after about
        that many twin rows (an iterator then resumes where this chunk ended). ``everything`` (or a
        chunk of a flush) adds models and mappers."""
        batch = _Batch()
        rows = 0
        for device_id in device_ids:
            marks = self._dirty.pop(device_id, None)
            if marks is None:
                continue
            batch.taken[device_id] = marks
            dev = self.devices.get(device_id)
            if marks.gone:
                batch.gone_devices.append(device_id)
            if dev is None:
                if not marks.gone:
                    batch.gone_twins.extend((device_id, n) for n in marks.twins)
                continue
            if marks.row:
                batch.devices.append(_device_row(dev))
            for name in marks.twins:
                twin = dev.twins.get(name)
                if twin is None:
                    batch.gone_twins.append((device_id, name))
                else:
                    batch.twins.append(_twin_values(device_id, twin))
            rows += 1 + len(marks.twins)
            if limit is not None and rows >= limit:
                break
        if everything or limit is not None:
            self._take_models_and_mappers(batch)
        if not (batch.taken or batch.taken_models or batch.taken_mappers):
            return None
        return batch

    def _take_models_and_mappers(self, batch: _Batch) -> None:
        for m in self._dirty_models:
            if m in self.models:
                batch.models.append(
                    {
                        "id": m,
                        "body": json.dumps(self.models[m]),
                        "resource_version": self.model_versions.get(m, 0),
                    }
                )
            else:
                batch.gone_models.append(m)
        for n in self._dirty_mappers:
            info = self.mappers.get(n)
            if info is None:
                batch.gone_mappers.append(n)
            else:
                batch.mappers.append(
                    {
                        "name": n,
                        "protocol": str(info.get("protocol", "")),
                        "address": str(info.get("address", "")),
                        "body": json.dumps(info),
                    }
                )
        batch.taken_models, self._dirty_models = self._dirty_models, set()
        batch.taken_mappers, self._dirty_mappers = self._dirty_mappers, set()

    def _hand_over(self, batch: _Batch) -> asyncio.Task[None]:
        loop = asyncio.get_running_loop()
        # Submitted now, in the order snapshots are taken: the writer thread commits in that order.
        done = loop.run_in_executor(self._executor, self._write, batch)
        task = asyncio.ensure_future(self._settle(done, batch))
        self._writes.add(task)
        self._last_write = task
        task.add_done_callback(self._settled)
        return task

    def _settled(self, task: asyncio.Task[None]) -> None:
        self._writes.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved: the caller (or the flusher) reports it

    async def _settle(self, done: asyncio.Future[None], batch: _Batch) -> None:
        try:
            await done
        except BaseException as exc:
            self._restore(batch)
            if isinstance(exc, Exception):
                self._write_failed(exc)
            raise
        if self.write_error is not None:
            log.warning("twin store writes again")
            self.write_error = None
        self.writes += 1
        self.rows_written += len(batch.devices) + len(batch.twins)

    def _write_failed(self, exc: Exception) -> None:
        self.write_failures += 1
        reason = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        if self.write_error is None:
            log.error("twin store cannot write: %s", reason)
        self.write_error = reason

    def _restore(self, batch: _Batch) -> None:
        """Mark what a failed write held dirty again (rows are rebuilt from memory, so never stale)."""
        for device_id, old in batch.taken.items():
            marks = self._marks(device_id)
            marks.gone |= old.gone
            marks.row |= old.row
            marks.twins |= old.twins
            dev = self.devices.get(device_id)
            if marks.gone and dev is not None:
                # The delete still has to happen and the device came back since: rewrite all of it.
                marks.row = True
                marks.twins.update(dev.twins)
        self._dirty_models |= batch.taken_models
        self._dirty_mappers |= batch.taken_mappers
        self._wake.set()

    def _write(self, batch: _Batch) -> None:
        assert self._engine is not None
        with self._engine.begin() as s:
            twin, dev, model, mapper = device_twin.c, device_table.c, device_model.c, device_mapper.c
            for dev_id in batch.gone_devices:
                s.execute(delete(device_twin).where(twin.device_id == dev_id))
                s.execute(delete(device_table).where(dev.id == dev_id))
            for dev_id, name in batch.gone_twins:
                s.execute(delete(device_twin).where(twin.device_id == dev_id, twin.name == name))
            for model_id in batch.gone_models:
                s.execute(delete(device_model).where(model.id == model_id))
            for name in batch.gone_mappers:
                s.execute(delete(device_mapper).where(mapper.name == name))
            _upsert(s, device_table, ["id"], batch.devices)
            if batch.twins:
                # Straight to the driver: SQLAlchemy's per-row parameter processing costs more than
                # the SQLite upsert itself.
                s.exec_driver_sql(_TWIN_UPSERT, batch.twins)
            _upsert(s, device_model, ["id"], batch.models)
            _upsert(s, device_mapper, ["name"], batch.mappers)
