"""edgecore's DMI server with the mapper SDK's virtual mapper (``kubeshore mapper run virtual``)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml
from channel._helpers import eventually

from edgecore.devicetwin import DeviceTwin, TwinStore
from edgecore.dmiserver import DmiServer
from up.processes import Processes

pytest.importorskip("mappers.virtual", reason="needs the mapper SDK")
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


async def test_virtual_mapper_from_the_sdk_is_served(tmp_path: Path) -> None:
    store = TwinStore(tmp_path / "twin.db", flush_interval=0.05)
    await store.open()
    twin = DeviceTwin(store, "edge-1", sync_interval=3600)
    await twin.start()
    dmi = DmiServer(twin, str(tmp_path / "dmi.sock"))
    await dmi.start()
    await twin.upsert_model(yaml.safe_load((EXAMPLES / "devicemodel-virtual-thermometer.yaml").read_text()))
    await twin.upsert_device(yaml.safe_load((EXAMPLES / "device-virtual-thermometer.yaml").read_text()))
    procs = Processes(tmp_path)
    procs.start(
        "mapper", str(Path(sys.executable).parent / "kubeshore"), "mapper", "run", "virtual",
        "--edgecore-sock", dmi.path, "--socket", str(tmp_path / "virtual.sock"), "--rest-port", "0",
    )  # fmt: skip
    try:
        device = store.devices["default/thermometer-1"]
        await eventually(lambda: device.twins["temperature"].actual and device.state == "online", within=30)
        assert float(device.twins["temperature"].actual) <= 26
        assert device.twins["target-temperature"].observed == "21.5"
        assert "virtual" in {m.protocol for m in dmi.registry.mappers.values()}
    finally:
        procs.stop_all()
        await dmi.stop()
        await twin.stop()
        await store.close()
