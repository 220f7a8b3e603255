"""Cloud and edge in one process (the embedded API server, real websocket, mosquitto, a DMI mapper)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from _apiserver import embedded_kube
from channel._helpers import Cloud, cloud_config, edge_config, eventually, join
from testmapper import ProtoMapper
from twinfixtures import device, model

from cloudcore._app import CloudCore
from cloudcore.devicecontroller import DEVICEMODELS, DEVICES, DEVICESTATUSES
from dmi.v1beta1 import api_pb2
from edgecore._node import EdgeNode
from edgecore.eventbus import MqttClient


@pytest.fixture
async def cloud() -> AsyncIterator[Cloud]:
    with embedded_kube() as kube:
        core = CloudCore(cloud_config(deviceStatusFlushInterval=0.1), kube)
        await core.start()
        try:
            yield Cloud(kube, core)
        finally:
            await core.stop()


def strip(obj: dict[str, Any]) -> dict[str, Any]:
    obj = json.loads(json.dumps(obj))
    for k in ("resourceVersion", "uid"):
        obj["metadata"].pop(k, None)
    return obj


async def start_edge(cloud: Cloud, tmp: Path, name: str, broker_url: str) -> EdgeNode:
    cfg = edge_config(tmp / name)
    cfg.event_bus.mqtt_url = broker_url
    node = EdgeNode(cfg)
    node.devices.twin.sync_interval = 0.05
    await node.start()
    return node


def report(name: str, **values: str) -> api_pb2.ReportDeviceStatusRequest:
    return api_pb2.ReportDeviceStatusRequest(
        deviceName=name,
        deviceNamespace="default",
        reportedDevice=api_pb2.DeviceStatus(
            twins=[
                api_pb2.Twin(
                    propertyName=k,
                    reported=api_pb2.TwinProperty(value=v),
                    observedDesired=api_pb2.TwinProperty(),
                )
                for k, v in values.items()
            ]
        ),
    )


async def test_device_flow_cloud_to_mapper_and_back(cloud: Cloud, tmp_path: Path, broker_url: str) -> None:
    assert await join(cloud, "edge1", tmp_path / "edge1") == 0
    assert await join(cloud, "edge2", tmp_path / "edge2") == 0
    edge1 = await start_edge(cloud, tmp_path, "edge1", broker_url)
    edge2 = await start_edge(cloud, tmp_path, "edge2", broker_url)
    mapper = ProtoMapper(str(tmp_path / "m1.sock"))
    mapper2 = ProtoMapper(str(tmp_path / "m2.sock"), name="mapper-edge2")
    app = MqttClient(broker_url, "app")
    seen: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()
    app.subscribe("$hw/events/#", lambda t, p: seen.put_nowait((t, json.loads(p))))
    await app.start()
    try:
        await mapper.start()
        await mapper2.start()
        await mapper.register(str(edge1.cfg.dmi.socket), with_data=False)
        await mapper2.register(str(edge2.cfg.dmi.socket), with_data=False)
        kube = cloud.kube
        await asyncio.to_thread(kube.put, DEVICEMODELS, strip(model()))
        await asyncio.to_thread(kube.put, DEVICES, strip(device()))

        reg = await mapper.wait_for("RegisterDevice")
        assert reg.device.spec.protocol.protocolName == "virtual"
        assert reg.device.spec.properties[0].desired.value == "30"
        assert "offset" in reg.device.spec.properties[0].visitors.configData.data
        assert "default/thermo" in mapper.models
        await eventually(lambda: kube.get(DEVICESTATUSES, "t1", "default") is not None)
        owner = kube.get(DEVICESTATUSES, "t1", "default")["metadata"]["ownerReferences"][0]
        assert owner["kind"] == "Device" and owner["name"] == "t1" and owner["controller"] is True

        # Reports reach DeviceStatus: first report already carries the value.
        dmi = edge1.devices.dmi
        async with __import__("grpc").aio.insecure_channel(f"unix:{dmi.path}") as ch:
            from dmi.v1beta1 import api_pb2_grpc

            stub = api_pb2_grpc.DeviceManagerServiceStub(ch)
            await stub.ReportDeviceStatus(report("t1", temp="21", mode="auto"))
            await stub.ReportDeviceStates(
                api_pb2.ReportDeviceStatesRequest(deviceName="t1", deviceNamespace="default", state="online")
            )

            def status_ok() -> bool:
                st = (kube.get(DEVICESTATUSES, "t1", "default") or {}).get("status") or {}
                twins = {t["propertyName"]: t for t in st.get("twins") or []}
                return (
                    twins.get("temp", {}).get("reported", {}).get("value") == "21"
                    and st.get("state") == "online"
                    and bool(st.get("lastOnlineTime"))
                )

            await eventually(status_ok)

            # Desired changed in the cloud reaches the mapper (UpdateDevice), and MQTT shows the delta.
            dev = kube.get(DEVICES, "t1", "default")
            dev["spec"]["properties"][0]["desired"]["value"] = "35"
            await asyncio.to_thread(kube.put, DEVICES, dev)
            upd = await mapper.wait_for(
                "UpdateDevice", lambda r: r.device.spec.properties[0].desired.value == "35"
            )
            assert upd.device.name == "t1"

            # A model change reaches the node by itself.
            m = kube.get(DEVICEMODELS, "thermo", "default")
            m["spec"]["properties"][1]["unit"] = "none"
            await asyncio.to_thread(kube.put, DEVICEMODELS, m)
            await mapper.wait_for("UpdateDeviceModel")

            # Node move: removed from edge1's mapper, registered on edge2's.
            dev = kube.get(DEVICES, "t1", "default")
            dev["spec"]["nodeName"] = "edge2"
            await asyncio.to_thread(kube.put, DEVICES, dev)
            await mapper.wait_for("RemoveDevice")
            await mapper2.wait_for("RegisterDevice")
            await eventually(lambda: "default/t1" not in edge1.devices.store.devices)

        # Offline: edge2 keeps taking reports while the cloud is away and serves them on MQTT; after
        # reconnecting the cloud gets the newest value.
        ws_port, https_port = cloud.ws_port, cloud.https_port
        await cloud.core.stop()
        await eventually(lambda: not edge2.devices.cloud.connected)
        async with __import__("grpc").aio.insecure_channel(f"unix:{edge2.cfg.dmi.socket}") as ch:
            from dmi.v1beta1 import api_pb2_grpc

            stub = api_pb2_grpc.DeviceManagerServiceStub(ch)
            await mapper2.wait_for("RegisterDevice")
            for v in range(40, 50):
                await stub.ReportDeviceStatus(report("t1", temp=str(v)))
        while True:
            topic, doc = await asyncio.wait_for(seen.get(), 5)
            if (
                topic.endswith("t1/twin/update/document")
                and doc["twin"]["temp"]["current"]["actual"]["value"] == "49"
            ):
                break
        twins = {t["propertyName"]: t for t in kube.get(DEVICESTATUSES, "t1", "default")["status"]["twins"]}
        assert twins["temp"]["reported"]["value"] == "21"
        writes_before = kube.requests
        cloud.core = CloudCore(
            cloud_config(deviceStatusFlushInterval=0.1, websocketPort=ws_port, httpsPort=https_port), kube
        )
        await cloud.core.start()

        def newest_landed() -> bool:
            st = (kube.get(DEVICESTATUSES, "t1", "default") or {}).get("status") or {}
            twins = {t["propertyName"]: t for t in st.get("twins") or []}
            return twins.get("temp", {}).get("reported", {}).get("value") == "49"

        await eventually(newest_landed, within=15)
        assert kube.requests - writes_before < 200
    finally:
        await app.stop()
        await mapper.stop()
        await mapper2.stop()
        await edge1.stop()
        await edge2.stop()


async def test_devicestatus_paced_by_report_cycle_state_at_once(
    cloud: Cloud, tmp_path: Path, broker_url: str
) -> None:
    """New values reach DeviceStatus at most once per the Device's reportCycle (the shortest of its
    properties), however often the mapper reports them; a state change is written at once (at the flush
    interval), taking the values that wait with it. Writes are counted on a watch of the API."""
    import grpc

    from dmi.v1beta1 import api_pb2_grpc

    assert await join(cloud, "edge1", tmp_path / "edge1") == 0
    edge = await start_edge(cloud, tmp_path, "edge1", broker_url)
    mapper = ProtoMapper(str(tmp_path / "m1.sock"))
    kube = cloud.kube

    def status() -> dict[str, Any]:
        st: dict[str, Any] = (kube.get(DEVICESTATUSES, "t1", "default") or {}).get("status") or {}
        return st

    def temp() -> str | None:
        twins = {t["propertyName"]: t for t in status().get("twins") or []}
        value: str | None = twins.get("temp", {}).get("reported", {}).get("value")
        return value

    def with_cycles(dev: dict[str, Any], *cycles: int) -> dict[str, Any]:
        for prop, cycle in zip(dev["spec"]["properties"], cycles, strict=True):
            prop["reportCycle"] = cycle
        return dev

    try:
        await mapper.start()
        await mapper.register(str(edge.cfg.dmi.socket), with_data=False)
        await asyncio.to_thread(kube.put, DEVICEMODELS, strip(model()))
        await asyncio.to_thread(kube.put, DEVICES, with_cycles(strip(device()), 3000, 2000, 5000))
        await mapper.wait_for("RegisterDevice")
        async with grpc.aio.insecure_channel(f"unix:{edge.devices.dmi.path}") as ch:
            stub = api_pb2_grpc.DeviceManagerServiceStub(ch)
            await stub.ReportDeviceStates(
                api_pb2.ReportDeviceStatesRequest(deviceName="t1", deviceNamespace="default", state="online")
            )
            await stub.ReportDeviceStatus(report("t1", temp="0"))
            await eventually(lambda: temp() == "0" and status().get("state") == "online")

            # A new value every 0.1 s for 6 s, the cycle 2 s: a handful of writes, not one per report.
            rv = kube.get(DEVICESTATUSES, "t1", "default")["metadata"]["resourceVersion"]
            writes: list[str | None] = []

            def watch() -> None:
                for kind, obj in kube.watch(DEVICESTATUSES, rv, timeout_seconds=8):
                    if kind == "MODIFIED" and obj["metadata"]["name"] == "t1":
                        twins = {t["propertyName"]: t for t in obj["status"].get("twins") or []}
                        writes.append(twins.get("temp", {}).get("reported", {}).get("value"))

            watcher = asyncio.ensure_future(asyncio.to_thread(watch))
            for i in range(1, 61):
                await stub.ReportDeviceStatus(report("t1", temp=str(i)))
                await asyncio.sleep(0.1)
            await eventually(lambda: temp() == "60", within=10)
            await watcher
            assert 2 <= len(writes) <= 6, writes  # 8 s of watch / 2 s, and the last value's write
            assert [int(v or 0) for v in writes] == sorted(int(v or 0) for v in writes), writes

            # A cycle of a minute: a new value waits for it, a state change does not (and takes the value).
            await asyncio.to_thread(kube.put, DEVICES, with_cycles(strip(device()), 60000, 60000, 60000))
            await mapper.wait_for("UpdateDevice", lambda r: r.device.spec.properties[0].reportCycle == 60000)
            await stub.ReportDeviceStatus(report("t1", temp="99"))
            await asyncio.sleep(1.5)
            assert temp() == "60"
            await stub.ReportDeviceStates(
                api_pb2.ReportDeviceStatesRequest(deviceName="t1", deviceNamespace="default", state="offline")
            )
            await eventually(lambda: status().get("state") == "offline" and temp() == "99", within=20)
    finally:
        await mapper.stop()
        await edge.stop()
