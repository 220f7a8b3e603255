"""The twin store: authoritative state in memory, written behind to SQLite in batches.

A mapper may report thousands of values a second; writing each one synchronously would cost a
commit per report. Instead changes mark rows dirty and a flusher commits all dirty rows at most
every ``flush_interval`` seconds (the newest value of a row wins, so a busy twin costs one row
write per flush). Callers that must not lose an accepted change across a crash (desired values,
devices and models from the cloud, mapper registrations) await ``sync()``, which forces a flush.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, Table, create_engine, delete, event, select
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from edgecore.devicetwin._models import device as device_table
from edgecore.devicetwin._models import device_mapper, device_model, device_twin, metadata
from edgecore.devicetwin._state import Device, Twin

log = logging.getLogger(__name__)


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


def _twin_row(device_id: str, t: Twin) -> dict[str, Any]:
    return {
        "device_id": device_id,
        "name": t.name,
        "attr_type": t.attr_type,
        "optional": t.optional,
        "expected": t.expected,
        "expected_ts": t.expected_ts,
        "expected_version": t.expected_version,
        "expected_from_edge": t.expected_from_edge,
        "spec_desired": t.spec_desired,
        "cloud_version": t.cloud_version,
        "actual": t.actual,
        "actual_ts": t.actual_ts,
        "actual_version": t.actual_version,
        "actual_meta": json.dumps(t.actual_meta),
        "observed": t.observed,
        "observed_ts": t.observed_ts,
        "synced_expected": t.synced_expected,
        "synced_actual": t.synced_actual,
    }


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


class TwinStore:
    def __init__(
        self, path: str | Path, *, flush_interval: float = 1.0, engine: Engine | None = None
    ) -> None:
        """``engine``: share an existing database (edgecore's store), else open ``path``."""
        self.path = Path(path)
        self._shared_engine = engine
        self.flush_interval = flush_interval
        self.devices: dict[str, Device] = {}
        self.models: dict[str, dict[str, Any]] = {}
        self.model_versions: dict[str, int] = {}
        self.mappers: dict[str, dict[str, Any]] = {}
        self._engine: Engine | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="twin-store")
        self._dirty_devices: set[str] = set()
        self._dirty_twins: set[tuple[str, str]] = set()
        self._gone_twins: set[tuple[str, str]] = set()
        self._gone_devices: set[str] = set()
        self._dirty_models: set[str] = set()
        self._gone_models: set[str] = set()
        self._dirty_mappers: set[str] = set()
        self._gone_mappers: set[str] = set()
        self._wake = asyncio.Event()
        self._flusher: asyncio.Task[None] | None = None
        self._flush_lock = asyncio.Lock()

    async def open(self) -> None:
        if self._shared_engine is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._open_sync)
        self._flusher = asyncio.create_task(self._flush_loop(), name="twin-store-flush")

    def _open_sync(self) -> None:
        self._engine = self._shared_engine or open_engine(self.path)
        metadata.create_all(self._engine)
        with self._engine.connect() as s:
            for row in s.execute(select(device_table)):
                self.devices[row.id] = Device(
                    id=row.id,
                    namespace=row.namespace,
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
                dev.twins[trow.name] = Twin(
                    name=trow.name,
                    attr_type=trow.attr_type,
                    optional=trow.optional,
                    expected=trow.expected,
                    expected_ts=trow.expected_ts,
                    expected_version=trow.expected_version,
                    expected_from_edge=trow.expected_from_edge,
                    spec_desired=trow.spec_desired,
                    cloud_version=trow.cloud_version,
                    actual=trow.actual,
                    actual_ts=trow.actual_ts,
                    actual_version=trow.actual_version,
                    actual_meta=json.loads(trow.actual_meta or "{}"),
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
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
            self._flusher = None
        await self.sync()
        loop = asyncio.get_running_loop()
        if self._engine is not None and self._shared_engine is None:
            await loop.run_in_executor(self._executor, self._engine.dispose)
        self._executor.shutdown(wait=True)

    # marking changes ---------------------------------------------------------------------------

    def device_changed(self, device_id: str) -> None:
        self._gone_devices.discard(device_id)
        self._dirty_devices.add(device_id)
        self._wake.set()

    def twins_changed(self, device_id: str, names: Iterable[str]) -> None:
        for name in names:
            key = (device_id, name)
            if device_id in self.devices and name in self.devices[device_id].twins:
                self._gone_twins.discard(key)
                self._dirty_twins.add(key)
            else:
                self._dirty_twins.discard(key)
                self._gone_twins.add(key)
        self._wake.set()

    def put_device(self, device: Device) -> None:
        self.devices[device.id] = device
        self.device_changed(device.id)
        self.twins_changed(device.id, list(device.twins))

    def remove_device(self, device_id: str) -> Device | None:
        dev = self.devices.pop(device_id, None)
        self._dirty_devices.discard(device_id)
        self._gone_devices.add(device_id)
        self._dirty_twins = {k for k in self._dirty_twins if k[0] != device_id}
        self._wake.set()
        return dev

    def put_model(self, model_id: str, body: dict[str, Any], resource_version: int) -> None:
        self.models[model_id] = body
        self.model_versions[model_id] = resource_version
        self._gone_models.discard(model_id)
        self._dirty_models.add(model_id)
        self._wake.set()

    def remove_model(self, model_id: str) -> None:
        self.models.pop(model_id, None)
        self.model_versions.pop(model_id, None)
        self._dirty_models.discard(model_id)
        self._gone_models.add(model_id)
        self._wake.set()

    def put_mapper(self, name: str, info: dict[str, Any]) -> None:
        self.mappers[name] = info
        self._gone_mappers.discard(name)
        self._dirty_mappers.add(name)
        self._wake.set()

    def remove_mapper(self, name: str) -> None:
        self.mappers.pop(name, None)
        self._dirty_mappers.discard(name)
        self._gone_mappers.add(name)
        self._wake.set()

    # writing -----------------------------------------------------------------------------------

    async def sync(self) -> None:
        """Return once every change made before the call is committed."""
        await self._flush()

    async def _flush_loop(self) -> None:
        while True:
            await self._wake.wait()
            try:
                await self._flush()
            except Exception:
                log.exception("twin store flush failed; retrying")
            await asyncio.sleep(self.flush_interval)

    async def _flush(self) -> None:
        async with self._flush_lock:
            self._wake.clear()
            batch = self._take_batch()
            if batch is None or self._engine is None:
                return
            loop = asyncio.get_running_loop()
            try:
                await loop.run_in_executor(self._executor, self._write, batch)
            except Exception:
                self._restore_batch(batch)
                raise

    def _take_batch(self) -> dict[str, Any] | None:
        if not (
            self._dirty_devices
            or self._dirty_twins
            or self._gone_twins
            or self._gone_devices
            or self._dirty_models
            or self._gone_models
            or self._dirty_mappers
            or self._gone_mappers
        ):
            return None
        batch: dict[str, Any] = {
            "devices": [_device_row(self.devices[d]) for d in self._dirty_devices if d in self.devices],
            "twins": [
                _twin_row(d, self.devices[d].twins[n])
                for d, n in self._dirty_twins
                if d in self.devices and n in self.devices[d].twins
            ],
            "gone_twins": list(self._gone_twins),
            "gone_devices": list(self._gone_devices),
            "models": [
                {
                    "id": m,
                    "body": json.dumps(self.models[m]),
                    "resource_version": self.model_versions.get(m, 0),
                }
                for m in self._dirty_models
                if m in self.models
            ],
            "gone_models": list(self._gone_models),
            "mappers": [
                {
                    "name": n,
                    "protocol": str(self.mappers[n].get("protocol", "")),
                    "address": str(self.mappers[n].get("address", "")),
                    "body": json.dumps(self.mappers[n]),
                }
                for n in self._dirty_mappers
                if n in self.mappers
            ],
            "gone_mappers": list(self._gone_mappers),
            "keys": (
                set(self._dirty_devices),
                set(self._dirty_twins),
                set(self._gone_twins),
                set(self._gone_devices),
                set(self._dirty_models),
                set(self._gone_models),
                set(self._dirty_mappers),
                set(self._gone_mappers),
            ),
        }
        for s in (
            self._dirty_devices,
            self._dirty_twins,
            self._gone_twins,
            self._gone_devices,
            self._dirty_models,
            self._gone_models,
            self._dirty_mappers,
            self._gone_mappers,
        ):
            s.clear()
        return batch

    def _restore_batch(self, batch: dict[str, Any]) -> None:
        (dd, dt, gt, gd, dm, gm, dp, gp) = batch["keys"]
        self._dirty_devices |= dd
        self._dirty_twins |= dt
        self._gone_twins |= gt
        self._gone_devices |= gd
        self._dirty_models |= dm
        self._gone_models |= gm
        self._dirty_mappers |= dp
        self._gone_mappers |= gp
        self._wake.set()

    def _write(self, batch: dict[str, Any]) -> None:
        assert self._engine is not None
        with self._engine.begin() as s:
            twin, dev, model, mapper = device_twin.c, device_table.c, device_model.c, device_mapper.c
            for dev_id in batch["gone_devices"]:
                s.execute(delete(device_twin).where(twin.device_id == dev_id))
                s.execute(delete(device_table).where(dev.id == dev_id))
            for dev_id, name in batch["gone_twins"]:
                s.execute(delete(device_twin).where(twin.device_id == dev_id, twin.name == name))
            for model_id in batch["gone_models"]:
                s.execute(delete(device_model).where(model.id == model_id))
            for name in batch["gone_mappers"]:
                s.execute(delete(device_mapper).where(mapper.name == name))
            _upsert(s, device_table, ["id"], batch["devices"])
            _upsert(s, device_twin, ["device_id", "name"], batch["twins"])
            _upsert(s, device_model, ["id"], batch["models"])
            _upsert(s, device_mapper, ["name"], batch["mappers"])
