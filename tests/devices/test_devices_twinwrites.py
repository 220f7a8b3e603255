"""The twin store's writes on a real SQLite file: what is durable when a caller is told so, and in
which order writes land, while a large backlog of reported values is being flushed."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest
from twinfixtures import numbered_device, numbered_model

from edgecore._devices import DeviceModule
from edgecore._router import ModuleRouter
from edgecore.config import EdgeCoreConfig
from edgecore.devicetwin import Device, DeviceTwin, TwinStore
from edgecore.devicetwin._models import metadata
from edgecore.devicetwin._state import Twin
from edgecore.devicetwin._store import open_engine
from edgecore.metamanager import EdgeStore
from edgecore.metamanager._store import Upsert

DEVICES = 100
PROPS = 20  # 2,000 twin rows: several flush chunks


def model() -> dict[str, Any]:
    return numbered_model(PROPS, rv="1")


def device(i: int, rv: int = 2, desired: str | None = None) -> dict[str, Any]:
    return numbered_device(i, PROPS, rv=str(rv), desired=desired)


def rows(db: Path, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    """What another process would find in the file (committed data only)."""
    conn = sqlite3.connect(db)
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


class SeesTheDatabase:
    """A DeviceListener that, when told about a device, looks at what is committed right then."""

    def __init__(self, db: Path) -> None:
        self.db = db
        self.seen: list[tuple[str, str | None, int, int]] = []

    async def device_upserted(self, device_id: str, spec_changed: bool) -> None:
        (expected, from_edge), *_ = rows(
            self.db,
            "select expected, expected_from_edge from device_twin where device_id=? and name='p0'",
            device_id,
        )
        (backlog,) = rows(self.db, "select count(*) from device_twin where actual = 'backlog'")[0]
        self.seen.append((device_id, expected, int(from_edge), int(backlog)))

    async def device_removed(self, device: Device) -> None:
        pass

    async def model_upserted(self, model_id: str, changed: bool) -> None:
        pass

    async def model_removed(self, model_id: str, body: dict[str, Any]) -> None:
        pass


async def setup(tmp_path: Path) -> tuple[TwinStore, DeviceTwin, SeesTheDatabase]:
    # flush_interval 0: the flusher writes the backlog chunk after chunk, as fast as it can.
    store = TwinStore(tmp_path / "twin.db", flush_interval=0.0)
    await store.open()
    twin = DeviceTwin(store, "n", sync_interval=3600)
    await twin.start()
    await twin.upsert_model(model())
    for i in range(DEVICES):
        await twin.upsert_device(device(i))
    await store.sync()
    listener = SeesTheDatabase(tmp_path / "twin.db")
    twin.listeners.append(listener)
    return store, twin, listener


def report_backlog(twin: DeviceTwin) -> None:
    """A report of every property of every device: 2,000 dirty twin rows."""
    for i in range(DEVICES):
        twin.report_status("default", f"d{i}", [(f"p{j}", "backlog", {}, None) for j in range(PROPS)])


async def test_device_upsert_is_durable_before_the_mapper_hears_and_does_not_wait_for_the_backlog(
    tmp_path: Path,
) -> None:
    store, twin, listener = await setup(tmp_path)
    report_backlog(twin)
    await asyncio.sleep(0)  # the flusher starts on the backlog
    await twin.upsert_device(device(57, rv=3, desired="42"))
    # When the mapper is told, the desired value is committed, and most of the backlog is not.
    [(device_id, expected, _, backlog)] = listener.seen
    assert (device_id, expected) == ("default/d57", "42")
    assert backlog < DEVICES * PROPS, "the device write waited for the whole backlog"
    # The backlog still lands in full.
    await store.sync()
    assert rows(tmp_path / "twin.db", "select count(*) from device_twin where actual='backlog'") == [
        (DEVICES * PROPS,)
    ]
    await twin.stop()
    await store.close()
    # And the desired value is what a restarted store finds.
    store2 = TwinStore(tmp_path / "twin.db")
    await store2.open()
    assert store2.devices["default/d57"].twins["p0"].expected == "42"
    assert store2.devices["default/d57"].resource_version == 3
    await store2.close()


async def test_a_device_metamanager_committed_reaches_the_mapper_without_waiting_for_its_twin_rows(
    tmp_path: Path,
) -> None:
    store, twin, listener = await setup(tmp_path)
    store.flush_interval = 3600
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        held.set()
        release.wait(10)

    # The database thread is busy: nothing can be committed until it is released.
    holding = asyncio.get_running_loop().run_in_executor(store._executor, hold)
    await asyncio.to_thread(held.wait, 10)
    try:
        await asyncio.wait_for(twin.upsert_device(device(5, rv=3, desired="77"), committed=True), 5)
    finally:
        release.set()
    [(device_id, expected, _, _)] = listener.seen
    assert (device_id, expected) == ("default/d5", None)  # told before its twin rows were written
    assert store.devices["default/d5"].twins["p0"].expected == "77"
    await holding
    # The rows follow at once (not at the next flush, an hour away).
    sql = "select expected from device_twin where device_id='default/d5' and name='p0'"
    for _ in range(500):
        if rows(tmp_path / "twin.db", sql) == [("77",)]:
            break
        await asyncio.sleep(0.01)
    assert rows(tmp_path / "twin.db", sql) == [("77",)]
    await twin.stop()
    await store.close()


async def test_a_committed_device_whose_twin_rows_were_never_written_is_restored_at_start(
    tmp_path: Path,
) -> None:
    """The state kill -9 leaves between metamanager's commit and the twin rows."""
    cfg = EdgeCoreConfig.model_validate(
        {
            "nodeName": "n",
            "dataDir": str(tmp_path),
            "edgeHub": {"server": "127.0.0.1:1", "httpsServer": "127.0.0.1:1"},
            "certs": {"caFile": "ca.crt", "certFile": "n.crt", "keyFile": "n.key"},
            "database": {"path": str(tmp_path / "edgecore.db")},
            "dmi": {"socket": str(tmp_path / "dmi.sock")},
        }
    )
    edge = EdgeStore(cfg.database.path)
    await edge.apply([Upsert(model(), 1), Upsert(device(1, rv=2, desired="30"), 2)])
    first = DeviceModule(cfg, ModuleRouter(), edge)
    await first.store.open()
    await first._catch_up()
    await first.store.close()
    # metamanager commits (and acknowledges) a new desired value; devicetwin never gets to it.
    await edge.apply([Upsert(device(1, rv=3, desired="42"), 3)])
    edge.close()

    edge = EdgeStore(cfg.database.path)
    second = DeviceModule(cfg, ModuleRouter(), edge)
    await second.store.open()
    assert second.store.devices["default/d1"].twins["p0"].expected == "30"
    await second._catch_up()
    twin = second.store.devices["default/d1"].twins["p0"]
    assert (twin.expected, twin.spec_desired, twin.cloud_version) == ("42", "42", 3)
    await second.store.close()
    edge.close()


async def test_desired_from_mqtt_is_durable_before_the_mapper_hears(tmp_path: Path) -> None:
    store, twin, listener = await setup(tmp_path)
    report_backlog(twin)
    await asyncio.sleep(0)
    twin.handle_mqtt(
        "$hw/events/device/default/d3/twin/update",
        b'{"event_id":"e1","twin":{"p0":{"expected":{"value":"on"}}}}',
    )
    for _ in range(1000):
        if listener.seen:
            break
        await asyncio.sleep(0.005)
    [(device_id, expected, from_edge, backlog)] = listener.seen
    assert (device_id, expected, from_edge) == ("default/d3", "on", 1)
    assert backlog < DEVICES * PROPS
    await twin.stop()
    await store.close()


async def test_a_flush_round_leaves_rows_changed_during_it_to_the_next_round(tmp_path: Path) -> None:
    """A busy twin costs one row write per flush interval, not one per chunk the flusher writes."""
    store, twin, _ = await setup(tmp_path)
    store.flush_interval = 3600  # after this round, the next one is an hour away
    report_backlog(twin)
    await asyncio.sleep(0)  # the round starts: its first chunk is handed over
    taken_first = DEVICES * PROPS - store.pending_rows()
    assert 0 < taken_first < DEVICES * PROPS
    report_backlog(twin)  # every twin changes again while the round runs
    for _ in range(500):
        if store.pending_rows() <= taken_first:
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.1)
    # The devices of the first chunk changed after they were taken: they wait for the next round.
    assert store.pending_rows() == taken_first
    await twin.stop()
    await store.close()


async def test_an_older_snapshot_never_lands_after_a_newer_one(tmp_path: Path) -> None:
    store, twin, _ = await setup(tmp_path)
    # Hold the writer thread so that two writes of the same row queue up behind each other.
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        held.set()
        release.wait(10)

    holding = asyncio.get_running_loop().run_in_executor(store._executor, hold)
    await asyncio.to_thread(held.wait, 10)
    twin.report_status("default", "d1", [("p5", "older", {"timestamp": "1000"}, None)])
    await asyncio.sleep(0)  # the flusher takes the older value and hands it over
    await asyncio.sleep(0)
    twin.report_status("default", "d1", [("p5", "newer", {"timestamp": "2000"}, None)])
    newer = asyncio.ensure_future(store.sync_device("default/d1"))
    await asyncio.sleep(0)
    release.set()
    await holding
    await newer
    await store.sync()
    assert rows(
        tmp_path / "twin.db",
        "select actual, actual_ts from device_twin where device_id='default/d1' and name='p5'",
    ) == [("newer", 2000)]
    await twin.stop()
    await store.close()


async def test_device_removed_and_added_again_before_a_flush_keeps_only_its_new_twins(tmp_path: Path) -> None:
    store = TwinStore(tmp_path / "twin.db", flush_interval=3600)
    await store.open()
    old = Device(id="default/a", namespace="default", name="a", body={"spec": {}})
    old.twins = {n: Twin(name=n, actual="1") for n in ("x", "y", "z")}
    store.put_device(old)
    await store.sync()
    store.remove_device("default/a")
    new = Device(id="default/a", namespace="default", name="a", body={"spec": {}})
    new.twins = {"x": Twin(name="x", actual="2")}
    store.put_device(new)
    await store.sync()
    assert rows(tmp_path / "twin.db", "select name, actual from device_twin where device_id='default/a'") == [
        ("x", "2")
    ]
    await store.close()


async def test_a_failed_write_keeps_its_rows_and_writes_them_later(tmp_path: Path) -> None:
    db = tmp_path / "twin.db"
    store = TwinStore(db, flush_interval=3600)
    await store.open()
    dev = Device(id="default/a", namespace="default", name="a", body={"spec": {}})
    dev.twins = {"x": Twin(name="x", actual="1")}
    store.put_device(dev)
    await store.sync()
    rows(db, "drop table device_twin")  # every twin write fails now
    dev.twins["x"].actual = "2"
    store.twins_changed(dev.id, ["x"])
    with pytest.raises(Exception, match="device_twin"):
        await store.sync_device(dev.id)
    assert store.pending_rows() == 1
    engine = open_engine(db)
    metadata.create_all(engine)
    engine.dispose()
    await store.sync()
    assert rows(db, "select name, actual from device_twin") == [("x", "2")]
    await store.close()
