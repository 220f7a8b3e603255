"""The OPC UA mapper against a real asyncua server, driven over DMI by the test peer."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from device_servers import Boiler

import crds
from mappers.opcua import OpcUaDriver
from mappers.sdk.app import MapperApp
from mappers.sdk.config import MapperConfig

Until = Callable[..., Coroutine[Any, Any, None]]


def boiler_device(url: str, desired: str) -> crds.Device:
    return crds.Device.model_validate(
        {
            "apiVersion": "devices.kubeedge.io/v1beta1",
            "kind": "Device",
            "metadata": {"name": "boiler1", "namespace": "default"},
            "spec": {
                "deviceModelRef": {"name": "boiler"},
                "protocol": {"protocolName": "opcua", "configData": {"url": url, "timeout": 2000}},
                "properties": [
                    {
                        "name": "temperature",
                        "collectCycle": 100,
                        "reportToCloud": True,
                        "visitors": {"configData": {"nodeID": "ns=2;s=Temperature"}},
                    },
                    {
                        "name": "setpoint",
                        "collectCycle": 100,
                        "reportToCloud": True,
                        "desired": {"value": desired},
                        "visitors": {"configData": {"nodeID": "ns=2;s=Setpoint", "subscribe": False}},
                    },
                ],
                "stateReport": {"reportToCloud": True, "reportCycle": 200},
            },
        }
    )


MODEL = {
    "apiVersion": "devices.kubeedge.io/v1beta1",
    "kind": "DeviceModel",
    "metadata": {"name": "boiler", "namespace": "default"},
    "spec": {
        "protocol": "opcua",
        "properties": [
            {"name": "temperature", "type": "DOUBLE", "accessMode": "ReadOnly"},
            {"name": "setpoint", "type": "INT", "minimum": "0", "maximum": "90"},
        ],
    },
}


async def test_opcua_mapper_end_to_end(boiler: Boiler, dmi_peer: Any, sock_dir: Path, until: Until) -> None:
    config = MapperConfig.model_validate(
        {
            "grpc_server": {"socket_path": str(sock_dir / "opcua.sock")},
            "common": {"edgecore_sock": str(sock_dir / "dmi.sock")},
            "rest": {"enabled": False},
            "runtime": {"reconnect_min_ms": 200, "reconnect_max_ms": 500, "read_timeout_ms": 2000},
        }
    )
    app = MapperApp(OpcUaDriver, config)
    await app.start()
    try:
        await until(lambda: app.client.registered.is_set())
        await dmi_peer.create_model(crds.DeviceModel.model_validate(MODEL))
        await dmi_peer.register_device(boiler_device(boiler.url, "25"))

        await until(lambda: dmi_peer.reported("boiler1", "temperature") == "20.5", what="subscribed value")
        rt = app.mapper.get("default", "boiler1")
        assert rt._props["temperature"].subscribed and not rt._props["setpoint"].subscribed
        # a change on the server arrives through the subscription
        await boiler.set("Temperature", 71.25)
        await until(lambda: dmi_peer.reported("boiler1", "temperature") == "71.25", what="data change")
        # the desired value reaches the node (polled property)
        await until(lambda: _equals(boiler.get("Setpoint"), 25), what="desired written")
        await until(lambda: dmi_peer.reported("boiler1", "setpoint") == "25")

        # server gone: offline; back: online by itself, subscription renewed
        await boiler.stop()
        await until(lambda: dmi_peer.state("boiler1") == "offline", what="offline", within=15)
        await boiler.start()
        await until(lambda: dmi_peer.state("boiler1") == "online", what="online again", within=15)
        await boiler.set("Temperature", 33.5)
        await until(
            lambda: dmi_peer.reported("boiler1", "temperature") == "33.5", what="subscription renewed"
        )
    finally:
        await app.stop()


async def _equals(value: Any, expected: Any) -> bool:
    return bool(await value == expected)
