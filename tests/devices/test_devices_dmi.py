from __future__ import annotations

import asyncio
import os
import stat
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import wrappers_pb2
from testmapper import ProtoMapper
from twinfixtures import device, model

from dmi.v1beta1 import api_pb2, api_pb2_grpc
from edgecore.devicetwin import DeviceTwin, TwinStore
from edgecore.dmiserver import MAPPER_ANNOTATION, DmiServer
from edgecore.dmiserver._registry import MAPPER_AVAILABLE


@dataclass
class Edge:
    store: TwinStore
    twin: DeviceTwin
    dmi: DmiServer

    async def stop(self) -> None:
        await self.dmi.stop()
        await self.twin.stop()
        await self.store.close()


async def start_edge(tmp: Path) -> Edge:
    store = TwinStore(tmp / "twin.db", flush_interval=0.01)
    await store.open()
    twin = DeviceTwin(store, "edge1", sync_interval=3600)
    await twin.start()
    dmi = DmiServer(twin, str(tmp / "dmi.sock"))
    dmi.registry.retry_interval = 0.2
    await dmi.start()
    return Edge(store, twin, dmi)


@pytest.fixture
async def edge(tmp_path: Path) -> AsyncIterator[Edge]:
    e = await start_edge(tmp_path)
    yield e
    await e.stop()


@pytest.fixture
async def mapper(tmp_path: Path) -> AsyncIterator[ProtoMapper]:
    m = ProtoMapper(str(tmp_path / "virtual.sock"))
    await m.start()
    yield m
    await m.stop()


def _any_value(a: object) -> object:
    for cls in (
        wrappers_pb2.StringValue,
        wrappers_pb2.Int64Value,
        wrappers_pb2.Int32Value,
        wrappers_pb2.FloatValue,
        wrappers_pb2.BoolValue,
    ):
        v = cls()
        if a.Unpack(v):  # type: ignore[attr-defined]
            return v.value
    raise AssertionError(a)


async def test_socket_mode_and_invalid_arguments(edge: Edge) -> None:
    assert stat.S_IMODE(os.stat(edge.dmi.path).st_mode) == 0o660
    async with grpc.aio.insecure_channel(f"unix:{edge.dmi.path}") as ch:
        stub = api_pb2_grpc.DeviceManagerServiceStub(ch)
        for call, req, words in (
            (stub.MapperRegister, api_pb2.MapperRegisterRequest(), "mapper"),
            (
                stub.MapperRegister,
                api_pb2.MapperRegisterRequest(mapper=api_pb2.MapperInfo(name="x")),
                "protocol",
            ),
            (stub.ReportDeviceStatus, api_pb2.ReportDeviceStatusRequest(), "deviceName"),
            (stub.ReportDeviceStatus, api_pb2.ReportDeviceStatusRequest(deviceName="t1"), "no twins"),
            (stub.ReportDeviceStates, api_pb2.ReportDeviceStatesRequest(deviceName="t1"), "state"),
        ):
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await call(req)
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert words in (err.value.details() or "")
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.ReportDeviceStates(
                api_pb2.ReportDeviceStatesRequest(
                    deviceName="ghost", deviceNamespace="default", state="online"
                )
            )
        assert err.value.code() == grpc.StatusCode.NOT_FOUND


async def test_register_with_data_applies_model_overrides_and_reports_land(
    edge: Edge, mapper: ProtoMapper
) -> None:
    await edge.twin.upsert_model(model())
    await edge.twin.upsert_device(device())
    await edge.twin.upsert_device(device(name="other", protocol="modbus"))
    resp = await mapper.register(edge.dmi.path)
    assert [d.name for d in resp.deviceList] == ["t1"]
    assert [m.name for m in resp.modelList] == ["thermo"]
    d = resp.deviceList[0]
    assert d.spec.protocol.protocolName == "virtual"
    cfg = {k: _any_value(v) for k, v in d.spec.protocol.configData.data.items()}
    assert cfg == {"baud": 9600, "port": 1502}  # model default + instance override
    temp = d.spec.properties[0]
    assert temp.desired.value == "30"
    assert {k: _any_value(v) for k, v in temp.visitors.configData.data.items()} == {
        "register": "HR",
        "offset": 2,
    }

    async with grpc.aio.insecure_channel(f"unix:{edge.dmi.path}") as ch:
        stub = api_pb2_grpc.DeviceManagerServiceStub(ch)
        await stub.ReportDeviceStatus(
            api_pb2.ReportDeviceStatusRequest(
                deviceName="t1",
                deviceNamespace="default",
                reportedDevice=api_pb2.DeviceStatus(
                    twins=[
                        api_pb2.Twin(
                            propertyName="temp",
                            reported=api_pb2.TwinProperty(value="27"),
                            observedDesired=api_pb2.TwinProperty(value="30"),
                        )
                    ]
                ),
            )
        )
        await stub.ReportDeviceStates(
            api_pb2.ReportDeviceStatesRequest(deviceName="t1", deviceNamespace="default", state="online")
        )
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.ReportDeviceStatus(
                api_pb2.ReportDeviceStatusRequest(
                    deviceName="t1",
                    deviceNamespace="default",
                    reportedDevice=api_pb2.DeviceStatus(
                        twins=[api_pb2.Twin(propertyName="temp", reported=api_pb2.TwinProperty(value="hot"))]
                    ),
                )
            )
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    t = edge.store.devices["default/t1"].twins["temp"]
    assert (t.actual, t.observed) == ("27", "30")
    assert edge.store.devices["default/t1"].state == "online"


async def test_device_lifecycle_calls_the_mapper_only_when_needed(edge: Edge, mapper: ProtoMapper) -> None:
    await mapper.register(edge.dmi.path, with_data=False)
    await edge.twin.upsert_model(model())
    await edge.twin.upsert_device(device())
    await mapper.wait_for("CreateDeviceModel")
    reg = await mapper.wait_for("RegisterDevice")
    assert reg.device.spec.properties[0].desired.value == "30"
    n = len(mapper.calls)
    # Same spec, new resourceVersion (e.g. a status write): no UpdateDevice (KubeEdge #6269).
    await edge.twin.upsert_device(device(rv="21"))
    assert len(mapper.calls) == n
    await edge.twin.upsert_device(device(rv="22", desired="33"))
    upd = await mapper.wait_for("UpdateDevice")
    assert upd.device.spec.properties[0].desired.value == "33"
    # A model change reaches the mapper by itself.
    m2 = model()
    m2["spec"]["properties"][1]["unit"] = "celsius"
    await edge.twin.upsert_model(m2)
    await mapper.wait_for("UpdateDeviceModel")
    # An application sets a desired value over MQTT-equivalent input: the mapper gets it.
    edge.twin.handle_mqtt(
        "$hw/events/device/default/t1/twin/update", b'{"twin":{"temp":{"expected":{"value":"41"}}}}'
    )
    await mapper.wait_for("UpdateDevice", lambda r: r.device.spec.properties[0].desired.value == "41")
    await edge.twin.remove_device("default/t1")
    await mapper.wait_for("RemoveDevice")
    assert "default/t1" not in mapper.devices


async def test_device_before_mapper_is_delivered_on_registration(edge: Edge, mapper: ProtoMapper) -> None:
    await edge.twin.upsert_model(model())
    await edge.twin.upsert_device(device())
    assert mapper.calls == []
    await mapper.register(edge.dmi.path, with_data=False)
    await mapper.wait_for("RegisterDevice")
    assert "default/t1" in mapper.devices


async def test_two_mappers_for_one_protocol(edge: Edge, tmp_path: Path) -> None:
    first = ProtoMapper(str(tmp_path / "a.sock"), name="virtual-a")
    second = ProtoMapper(str(tmp_path / "b.sock"), name="virtual-b")
    await first.start()
    await second.start()
    try:
        await first.register(edge.dmi.path, with_data=False)
        await second.register(edge.dmi.path, with_data=False)
        await edge.twin.upsert_model(model())
        await edge.twin.upsert_device(device(name="d-default"))
        await edge.twin.upsert_device(device(name="d-a", annotations={MAPPER_ANNOTATION: "virtual-a"}))
        # As in KubeEdge, the newest registration serves the protocol; the annotation picks another.
        await second.wait_for("RegisterDevice", lambda r: r.device.name == "d-default")
        await first.wait_for("RegisterDevice", lambda r: r.device.name == "d-a")
        assert set(first.devices) == {"default/d-a"}
        assert set(second.devices) == {"default/d-default"}
        # Moving a device to the other mapper removes it from the second.
        await edge.twin.upsert_device(
            device(name="d-default", rv="30", annotations={MAPPER_ANNOTATION: "virtual-a"})
        )
        await second.wait_for("RemoveDevice")
        await first.wait_for("RegisterDevice", lambda r: r.device.name == "d-default")
    finally:
        await first.stop()
        await second.stop()


async def test_registrations_survive_edgecore_restart(tmp_path: Path, mapper: ProtoMapper) -> None:
    edge = await start_edge(tmp_path)
    await mapper.register(edge.dmi.path, with_data=False)
    await edge.twin.upsert_model(model())
    await edge.twin.upsert_device(device())
    await mapper.wait_for("RegisterDevice")
    await edge.dmi.registry.settled()  # the answer is in, too
    await edge.stop()

    n = len(mapper.calls)
    edge = await start_edge(tmp_path)
    try:
        assert "test-mapper" in edge.dmi.registry.mappers
        # Unchanged device: the running mapper is left alone.
        await edge.dmi.registry.settled()
        assert len(mapper.calls) == n
        # A change after the restart reaches the mapper without it registering again.
        await edge.twin.upsert_device(device(rv="25", desired="31"))
        await mapper.wait_for("UpdateDevice", lambda r: r.device.spec.properties[0].desired.value == "31")
    finally:
        await edge.stop()


async def test_mapper_down_then_back_gets_the_device(edge: Edge, tmp_path: Path) -> None:
    m = ProtoMapper(str(tmp_path / "flaky.sock"))
    await m.start()
    await m.register(edge.dmi.path, with_data=False)
    await m.stop()  # the mapper dies
    await edge.twin.upsert_model(model())
    await edge.twin.upsert_device(device())
    m2 = ProtoMapper(str(tmp_path / "flaky.sock"))
    await m2.start()  # back at the same address, without registering again
    try:
        await m2.wait_for("RegisterDevice", within=10)
    finally:
        await m2.stop()


async def _until(check: Any, within: float = 10.0) -> None:
    async with asyncio.timeout(within):
        while not check():  # noqa: ASYNC110 -- polls the registry, which has no event for it
            await asyncio.sleep(0.02)


async def test_a_new_mapper_for_the_protocol_takes_over_from_a_dead_one(tmp_path: Path) -> None:
    """The mapper moved (host process -> Pod, or renamed): the new registration gets the devices
    at once, the dead one is dropped, and a restarted edgecore does not bring it back."""
    edge = await start_edge(tmp_path)
    old = ProtoMapper(str(tmp_path / "old.sock"), name="virtual-host")
    new = ProtoMapper(str(tmp_path / "new.sock"), name="virtual-pod")
    await old.start()
    try:
        await old.register(edge.dmi.path, with_data=False)
        await edge.twin.upsert_model(model())
        await edge.twin.upsert_device(device())
        await old.wait_for("RegisterDevice")
        await edge.dmi.registry.settled()
        await old.stop()  # gone for good

        await new.start()
        answer = await new.register(edge.dmi.path, with_data=True)
        assert [d.name for d in answer.deviceList] == ["t1"]
        mapper_available = edge.store.devices["default/t1"].conditions[MAPPER_AVAILABLE]
        assert mapper_available[:2] == ("True", "MapperRegistered")
        assert "virtual-pod" in mapper_available[2]
        # The old registration was unreachable and replaced: dropped, from the store too.
        await _until(lambda: "virtual-host" not in edge.dmi.registry.mappers)
        await _until(lambda: "virtual-host" not in edge.store.mappers)
        assert edge.dmi.registry.mapper_of("default/t1") is edge.dmi.registry.mappers["virtual-pod"]
        await edge.stop()

        calls = len(new.calls)
        edge = await start_edge(tmp_path)
        assert set(edge.dmi.registry.mappers) == {"virtual-pod"}
        await edge.twin.upsert_device(device(rv="25", desired="31"))
        await new.wait_for("UpdateDevice", lambda r: r.device.spec.properties[0].desired.value == "31")
        assert len(new.calls) == calls + 1
        await edge.dmi.registry.settled()
        assert edge.store.devices["default/t1"].conditions[MAPPER_AVAILABLE][0] == "True"
    finally:
        await edge.stop()
        await new.stop()


async def test_a_restored_dead_registration_gets_no_device_when_another_serves(tmp_path: Path) -> None:
    """Both registrations are in the store; at start only the one whose socket answers is kept."""
    edge = await start_edge(tmp_path)
    alive = ProtoMapper(str(tmp_path / "alive.sock"), name="virtual-a")
    dead = ProtoMapper(str(tmp_path / "dead.sock"), name="virtual-b")
    await alive.start()
    await dead.start()
    try:
        await alive.register(edge.dmi.path, with_data=False)
        await dead.register(edge.dmi.path, with_data=False)  # newer: serves the protocol
        await edge.twin.upsert_model(model())
        await edge.twin.upsert_device(device())
        await dead.wait_for("RegisterDevice")
        await edge.dmi.registry.settled()
        await edge.stop()
        await dead.stop()

        edge = await start_edge(tmp_path)
        # The newer registration is dead: the live, older mapper serves the device, and no call
        # goes to the dead socket.
        await alive.wait_for("RegisterDevice")
        await edge.dmi.registry.settled()
        assert "default/t1" in alive.devices
        assert edge.dmi.registry.mapper_of("default/t1") is edge.dmi.registry.mappers["virtual-a"]
        assert "virtual-b" in edge.dmi.registry.mappers  # the newest registration: kept, waiting
        assert not edge.dmi.registry.mappers["virtual-b"].reachable
    finally:
        await edge.stop()
        await alive.stop()


async def test_the_device_of_a_dead_mapper_goes_to_a_live_one_of_its_protocol(
    edge: Edge, tmp_path: Path
) -> None:
    older = ProtoMapper(str(tmp_path / "older.sock"), name="virtual-a")
    newer = ProtoMapper(str(tmp_path / "newer.sock"), name="virtual-b")
    await older.start()
    await newer.start()
    try:
        await older.register(edge.dmi.path, with_data=False)
        await newer.register(edge.dmi.path, with_data=False)
        await edge.twin.upsert_model(model())
        await edge.twin.upsert_device(device())
        await newer.wait_for("RegisterDevice")
        await newer.stop()  # dies; nothing notices until a call fails
        await edge.twin.upsert_device(device(rv="25", desired="31"))
        # The call fails UNAVAILABLE, the socket refuses connections: the live mapper takes over.
        await older.wait_for("RegisterDevice", lambda r: r.device.spec.properties[0].desired.value == "31")
        await edge.dmi.registry.settled()
        assert edge.dmi.registry.mapper_of("default/t1") is edge.dmi.registry.mappers["virtual-a"]
        available = edge.store.devices["default/t1"].conditions[MAPPER_AVAILABLE]
        assert available[0] == "True" and "virtual-a" in available[2], available
        # The newest registration is kept (it is the one to serve the protocol when it is back).
        assert not edge.dmi.registry.mappers["virtual-b"].alive
    finally:
        await older.stop()
        await newer.stop()
