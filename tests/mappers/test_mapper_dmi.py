"""The SDK over DMI against a real DeviceManagerService peer on a Unix socket (see conftest.DmiPeer)."""

from __future__ import annotations

import os
import stat
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any

import grpc
import pytest

import crds
from dmi.v1beta1 import api_pb2
from mappers.sdk.app import MapperApp
from mappers.sdk.config import MapperConfig
from mappers.virtual import VirtualDriver

Until = Callable[..., Coroutine[Any, Any, None]]


def mapper_config(sock_dir: Path, **extra: Any) -> MapperConfig:
    data: dict[str, Any] = {
        "grpc_server": {"socket_path": str(sock_dir / "virtual.sock")},
        "common": {"name": "virtual-test", "edgecore_sock": str(sock_dir / "dmi.sock")},
        "rest": {"enabled": False},
        "runtime": {"reconnect_min_ms": 100, "reconnect_max_ms": 300, "register_retry_max_ms": 300},
    }
    data.update(extra)
    return MapperConfig.model_validate(data)


def model(name: str = "thermo") -> crds.DeviceModel:
    return crds.DeviceModel.model_validate(
        {
            "apiVersion": "devices.kubeedge.io/v1beta1",
            "kind": "DeviceModel",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {
                "protocol": "virtual",
                "properties": [
                    {"name": "temp", "type": "DOUBLE", "accessMode": "ReadOnly"},
                    {
                        "name": "setpoint",
                        "type": "INT",
                        "accessMode": "ReadWrite",
                        "minimum": "0",
                        "maximum": "40",
                    },
                ],
            },
        }
    )


def device(name: str, desired: str = "21", **protocol: Any) -> crds.Device:
    return crds.Device.model_validate(
        {
            "apiVersion": "devices.kubeedge.io/v1beta1",
            "kind": "Device",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {
                "deviceModelRef": {"name": "thermo"},
                "protocol": {"protocolName": "virtual", "configData": protocol or {"seed": "a"}},
                "properties": [
                    {
                        "name": "temp",
                        "collectCycle": 50,
                        "reportToCloud": True,
                        "visitors": {"protocolName": "virtual", "configData": {"kind": "sine", "offset": 20}},
                    },
                    {
                        "name": "setpoint",
                        "collectCycle": 50,
                        "reportToCloud": True,
                        "desired": {"value": desired},
                        "visitors": {
                            "protocolName": "virtual",
                            "configData": {"kind": "constant", "value": 5},
                        },
                    },
                ],
                "stateReport": {"reportToCloud": True, "reportCycle": 200},
            },
        }
    )


@pytest.fixture
async def app(sock_dir: Path, dmi_peer: Any) -> AsyncIterator[MapperApp]:
    app = MapperApp(VirtualDriver, mapper_config(sock_dir))
    await app.start()
    yield app
    await app.stop()


async def test_register_report_update_remove(app: MapperApp, dmi_peer: Any, until: Until) -> None:
    await until(lambda: app.client.registered.is_set(), what="registered")
    reg = dmi_peer.registrations[0]
    assert reg.withData and reg.mapper.protocol == "virtual" and reg.mapper.name == "virtual-test"
    assert reg.mapper.address.decode() == app.socket_path
    assert stat.S_IMODE(os.stat(app.socket_path).st_mode) == 0o660

    await dmi_peer.create_model(model())
    resp = await dmi_peer.register_device(device("t1"))
    assert (resp.deviceName, resp.deviceNamespace) == ("t1", "default")

    # the desired value is written to the device and comes back as reported; twins are batched
    await until(lambda: dmi_peer.reported("t1", "setpoint") == "21", what="desired reported")
    assert any(len(s.reportedDevice.twins) == 2 for s in dmi_peer.statuses)
    await until(lambda: dmi_peer.state("t1") == "online", what="online state")
    twin = next(s for s in dmi_peer.statuses if s.deviceName == "t1").reportedDevice.twins[0]
    assert twin.reported.metadata["type"] in ("DOUBLE", "INT") and twin.observedDesired is not None

    # UpdateDevice with a new desired value: written, no reconnect
    rt = app.mapper.get("default", "t1")
    await dmi_peer.update_device(device("t1", desired="30"))
    await until(lambda: dmi_peer.reported("t1", "setpoint") == "30", what="updated desired reported")
    assert rt.opens == 1

    # GetDevice returns current twins

    got = await dmi_peer.mapper().GetDevice(
        api_pb2.GetDeviceRequest(deviceName="t1", deviceNamespace="default")
    )
    assert {t.propertyName: t.reported.value for t in got.device.status.twins}["setpoint"] == "30"

    await dmi_peer.remove_device("default", "t1")
    assert "default/t1" not in app.mapper.devices
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await dmi_peer.mapper().GetDevice(
            api_pb2.GetDeviceRequest(deviceName="t1", deviceNamespace="default")
        )
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


async def test_bad_device_is_rejected_with_a_clear_error(app: MapperApp, dmi_peer: Any, until: Until) -> None:
    await until(lambda: app.client.registered.is_set())
    other = device("x").model_copy(deep=True)
    assert other.spec.protocol is not None
    other.spec.protocol.protocol_name = "modbus"
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await dmi_peer.register_device(other)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "uses protocol 'modbus'; this mapper serves 'virtual'" in (err.value.details() or "")


async def test_reregisters_after_edgecore_restart(app: MapperApp, dmi_peer: Any, until: Until) -> None:
    await until(lambda: app.client.registered.is_set())
    await dmi_peer.create_model(model())
    await dmi_peer.register_device(device("t1"))
    await until(lambda: dmi_peer.reported("t1", "setpoint") == "21")

    await dmi_peer.stop()
    dmi_peer.statuses.clear()
    dmi_peer.devices["default/t2"] = device("t2", desired="7")
    await dmi_peer.start()
    # a new socket file: the mapper registers again and takes edgecore's device list
    await until(lambda: len(dmi_peer.registrations) >= 2, what="re-registration")
    await until(lambda: dmi_peer.reported("t2", "setpoint") == "7", what="device from withData runs")
    await until(lambda: dmi_peer.reported("t1", "setpoint") == "21", what="reports resume")
    await until(lambda: dmi_peer.state("t2") == "online")


async def test_mapper_started_before_edgecore(sock_dir: Path, dmi_peer_class: Any, until: Until) -> None:
    app = MapperApp(VirtualDriver, mapper_config(sock_dir))
    await app.start()
    peer = dmi_peer_class(str(sock_dir / "dmi.sock"))
    try:
        await until(lambda: app.client.registrations == 0)
        peer.models["default/thermo"] = model()
        peer.devices["default/t1"] = device("t1", desired="3")
        await peer.start()
        await until(lambda: peer.reported("t1", "setpoint") == "3", what="registered late, device running")
    finally:
        await app.stop()
        await peer.close()
