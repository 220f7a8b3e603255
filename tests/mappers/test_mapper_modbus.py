"""The Modbus mapper against a real pymodbus TCP server, driven over DMI by the test peer."""

from __future__ import annotations

import struct
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest
from device_servers import CO, DI, HR, IR, ModbusDevice

import crds
from mappers.modbus import ModbusDriver
from mappers.modbus._codec import decode, encode
from mappers.sdk.app import MapperApp
from mappers.sdk.config import MapperConfig

Until = Callable[..., Coroutine[Any, Any, None]]


def test_codec_swaps_scale_and_types() -> None:
    words = list(struct.unpack(">HH", struct.pack(">f", 12.5)))
    assert decode(words, {"dataType": "float32"}) == 12.5
    assert decode(list(reversed(words)), {"dataType": "float", "isRegisterSwap": True}) == 12.5
    assert decode([0x3412], {"isSwap": True}) == 0x1234
    assert decode([215], {"scale": 0.1}) == pytest.approx(21.5)
    assert decode([0xFFFF], {"dataType": "int16"}) == -1
    assert encode(21.5, {"scale": 0.1}, 1) == [215]
    assert encode(-1, {"dataType": "int"}, 1) == [0xFFFF]
    assert encode(12.5, {"dataType": "float32", "isRegisterSwap": True}, 2) == list(reversed(words))
    with pytest.raises(ValueError, match="needs limit 2"):
        decode([1], {"dataType": "float32"})


MODEL = {
    "apiVersion": "devices.kubeedge.io/v1beta1",
    "kind": "DeviceModel",
    "metadata": {"name": "plc", "namespace": "default"},
    "spec": {
        "protocol": "modbus",
        "properties": [
            {"name": "temp", "type": "DOUBLE", "accessMode": "ReadOnly"},
            {"name": "setpoint", "type": "INT", "minimum": "0", "maximum": "100"},
            {"name": "pressure", "type": "FLOAT"},
            {"name": "alarm", "type": "BOOLEAN"},
            {"name": "door", "type": "BOOLEAN", "accessMode": "ReadOnly"},
        ],
    },
}


def plc(port: int, d: str) -> crds.Device:
    def prop(name: str, visitor: dict[str, Any], **extra: Any) -> dict[str, Any]:
        return {
            "name": name,
            "collectCycle": 50,
            "reportToCloud": True,
            "visitors": {"protocolName": "modbus", "configData": visitor},
            **extra,
        }

    return crds.Device.model_validate(
        {
            "apiVersion": "devices.kubeedge.io/v1beta1",
            "kind": "Device",
            "metadata": {"name": "plc1", "namespace": "default"},
            "spec": {
                "deviceModelRef": {"name": "plc"},
                "protocol": {
                    "protocolName": "modbus",
                    "configData": {"ip": "127.0.0.1", "port": port, "slaveID": 1, "timeout": 500},
                },
                "properties": [
                    prop("temp", {"register": "InputRegister", "offset": 1, "limit": 1, "scale": 0.1}),
                    prop("setpoint", {"register": "HoldingRegister", "offset": 2}, desired={"value": d}),
                    prop(
                        "pressure",
                        {"register": "HoldingRegister", "offset": 10, "limit": 2, "dataType": "float32"}
                        | {"isRegisterSwap": True},
                    ),
                    prop("alarm", {"register": "CoilRegister", "offset": 0}),
                    prop("door", {"register": "DiscreteInputRegister", "offset": 3}),
                ],
            },
        }
    )


async def test_modbus_mapper_end_to_end(
    modbus: ModbusDevice, dmi_peer: Any, sock_dir: Path, until: Until
) -> None:
    await modbus.set(IR, 1, [215])
    await modbus.set(HR, 10, list(reversed(struct.unpack(">HH", struct.pack(">f", 1.25)))))
    await modbus.set(DI, 3, [1])
    config = MapperConfig.model_validate(
        {
            "grpc_server": {"socket_path": str(sock_dir / "modbus.sock")},
            "common": {"edgecore_sock": str(sock_dir / "dmi.sock")},
            "rest": {"enabled": False},
            "runtime": {"reconnect_min_ms": 100, "reconnect_max_ms": 300, "read_timeout_ms": 1000},
        }
    )

    async def has(table: int, address: int, values: list[int]) -> bool:
        return await modbus.get(table, address, len(values)) == values

    app = MapperApp(ModbusDriver, config)
    await app.start()
    try:
        await until(lambda: app.client.registered.is_set())
        await dmi_peer.create_model(crds.DeviceModel.model_validate(MODEL))
        await dmi_peer.register_device(plc(modbus.port, "42"))

        # values on the server reach the reports, converted by the model type
        await until(lambda: dmi_peer.reported("plc1", "temp") == "21.5", what="input register")
        assert dmi_peer.reported("plc1", "pressure") == "1.25"
        assert dmi_peer.reported("plc1", "door") == "true"
        # the desired value reaches the holding register
        await until(lambda: has(HR, 2, [42]), what="desired written")
        await until(lambda: dmi_peer.reported("plc1", "setpoint") == "42")
        # server-side changes show up
        await modbus.set(CO, 0, [1])
        await until(lambda: dmi_peer.reported("plc1", "alarm") == "true", what="coil")
        # a new desired value through UpdateDevice; out-of-range writes are refused before the device
        await dmi_peer.update_device(plc(modbus.port, "7"))
        await until(lambda: has(HR, 2, [7]), what="updated desired written")
        from mappers.sdk import WriteRejected

        with pytest.raises(WriteRejected, match="above the maximum 100"):
            await app.mapper.write("default", "plc1", "setpoint", "101")
        await app.mapper.write("default", "plc1", "pressure", "2.5")
        assert decode(list(reversed(await modbus.get(HR, 10, 2))), {"dataType": "float32"}) == 2.5

        # the device goes away: offline; it comes back: online by itself
        await modbus.stop()
        await until(lambda: dmi_peer.state("plc1") == "offline", what="offline")
        await modbus.set(IR, 1, [300])
        await modbus.start()
        await until(lambda: dmi_peer.state("plc1") == "online", what="online again")
        await until(lambda: dmi_peer.reported("plc1", "temp") == "30.0", what="values again")
    finally:
        await app.stop()
