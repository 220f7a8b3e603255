"""The Modbus and OPC UA mappers end to end, driven from kubectl: standalone cloudcore, a joined
edgecore, mosquitto and ``kubeshore mapper run`` as real processes, against a real pymodbus TCP
server and a real asyncua server on loopback. Users' view only: manifests applied and patched with
kubectl, results read with ``kubectl get devicestatus`` and from the device servers."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import pytest
from _stack import BIN, Stack, wait_for
from device_servers import HR, Boiler, ModbusDevice

pytest.importorskip("cloudcore.apiserver", reason="standalone mode needs the embedded API server")
pytestmark = pytest.mark.slow

Until = Callable[..., Coroutine[Any, Any, None]]
run = asyncio.to_thread

# Short cycles keep the test quick: values every 200 ms, state every 300 ms, DeviceStatus every 200 ms.
MAPPER_CONFIG = """
rest: {enabled: false}
runtime: {reconnect_min_ms: 100, reconnect_max_ms: 300, read_timeout_ms: 1000, open_timeout_ms: 1000}
"""

MODBUS_MODEL = """
apiVersion: devices.kubeedge.io/v1beta1
kind: DeviceModel
metadata: {name: plc, namespace: default}
spec:
  protocol: modbus
  properties:
  - {name: temp, type: DOUBLE, accessMode: ReadOnly}
  - {name: setpoint, type: INT, accessMode: ReadWrite, minimum: "0", maximum: "100"}
"""

MODBUS_DEVICE = """
apiVersion: devices.kubeedge.io/v1beta1
kind: Device
metadata: {name: plc-1, namespace: default}
spec:
  deviceModelRef: {name: plc}
  nodeName: edge-1
  protocol:
    protocolName: modbus
    configData: {ip: 127.0.0.1, port: PORT, slaveID: 1, timeout: 500}
  properties:
  - name: temp
    collectCycle: 200
    reportCycle: 200
    reportToCloud: true
    visitors:
      protocolName: modbus
      configData: {register: HoldingRegister, offset: 1, limit: 1, scale: 0.1}
  - name: setpoint
    collectCycle: 200
    reportCycle: 200
    reportToCloud: true
    desired: {value: "42"}
    visitors:
      protocolName: modbus
      configData: {register: HoldingRegister, offset: 2, limit: 1}
  stateReport: {reportToCloud: true, reportCycle: 300}
"""

OPCUA_MODEL = """
apiVersion: devices.kubeedge.io/v1beta1
kind: DeviceModel
metadata: {name: boiler, namespace: default}
spec:
  protocol: opcua
  properties:
  - {name: temperature, type: DOUBLE, accessMode: ReadOnly}
  - {name: setpoint, type: INT, accessMode: ReadWrite, minimum: "0", maximum: "90"}
"""

OPCUA_DEVICE = """
apiVersion: devices.kubeedge.io/v1beta1
kind: Device
metadata: {name: boiler-1, namespace: default}
spec:
  deviceModelRef: {name: boiler}
  nodeName: edge-1
  protocol:
    protocolName: opcua
    configData: {url: "URL", timeout: 1000}
  properties:
  - name: temperature
    collectCycle: 200
    reportCycle: 200
    reportToCloud: true
    visitors:
      protocolName: opcua
      configData: {nodeID: "ns=2;s=Temperature"}
  - name: setpoint
    collectCycle: 200
    reportCycle: 200
    reportToCloud: true
    desired: {value: "25"}
    visitors:
      protocolName: opcua
      configData: {nodeID: "ns=2;s=Setpoint"}
  stateReport: {reportToCloud: true, reportCycle: 300}
"""


class MapperStack(Stack):
    def start_mapper(self, protocol: str) -> None:
        config = self.tmp / f"{protocol}-mapper.yaml"
        config.write_text(MAPPER_CONFIG)
        self.start(
            f"mapper-{protocol}", str(BIN / "kubeshore"), "mapper", "run", protocol,
            "--edgecore-sock", str(self.edge_dir / "dmi.sock"),
            "--socket", str(self.tmp / f"{protocol}.sock"), "--config", str(config),
        )  # fmt: skip

    def patch_desired(self, device: str, index: int, value: str) -> None:
        op = [{"op": "replace", "path": f"/spec/properties/{index}/desired/value", "value": value}]
        self.kubectl("patch", "device", device, "-n", "default", "--type=json", "-p", json.dumps(op))


@pytest.fixture
def stack(tmp_path: Path, port: Callable[[], int], mosquitto_factory: Any) -> Iterator[MapperStack]:
    broker = mosquitto_factory(port())
    broker.start()
    s = MapperStack(tmp_path, f"tcp://127.0.0.1:{broker.port}")
    try:
        s.start_cloudcore(deviceStatusFlushInterval=0.2)
        s.join_edge()
        s.start_edgecore()
        yield s
    finally:
        s.stop_all()


def _online_with(stack: Stack, device: str, prop: str, value: str) -> bool:
    st = stack.status(device).get("status", {})
    reported = {t["propertyName"]: t.get("reported", {}).get("value") for t in st.get("twins") or []}
    return bool(st.get("state") == "online" and reported.get(prop) == value)


async def test_modbus_mapper_from_kubectl(stack: MapperStack, modbus: ModbusDevice, until: Until) -> None:
    await modbus.set(HR, 1, [215])
    stack.start_mapper("modbus")
    await run(stack.apply, MODBUS_MODEL)
    await run(stack.apply, MODBUS_DEVICE.replace("PORT", str(modbus.port)))

    # The register's value, scaled by the visitor, shows in DeviceStatus with the device online.
    await run(wait_for, lambda: _online_with(stack, "plc-1", "temp", "21.5"), 60, "temp 21.5 online")
    # The Device's desired value reaches the holding register and comes back as reported.
    await until(lambda: _registers(modbus, 2, [42]), within=30, what="desired 42 in the register")
    await run(wait_for, lambda: stack.reported("plc-1").get("setpoint") == "42", 30, "setpoint 42")
    # A value changed on the server reaches DeviceStatus.
    await modbus.set(HR, 1, [230])
    await run(wait_for, lambda: stack.reported("plc-1").get("temp") == "23.0", 30, "temp 23.0")

    # kubectl patch of the desired value reaches the register.
    await run(stack.patch_desired, "plc-1", 1, "7")
    await until(lambda: _registers(modbus, 2, [7]), within=30, what="patched desired 7 in the register")
    await run(wait_for, lambda: stack.reported("plc-1").get("setpoint") == "7", 30, "setpoint 7")

    # The device server goes away: offline; it comes back: online by itself, with fresh values.
    await modbus.stop()
    await run(wait_for, lambda: stack.state("plc-1") == "offline", 30, "plc-1 offline")
    await modbus.set(HR, 1, [300])
    await modbus.start()
    await run(wait_for, lambda: _online_with(stack, "plc-1", "temp", "30.0"), 30, "online again")


async def test_opcua_mapper_from_kubectl(stack: MapperStack, boiler: Boiler, until: Until) -> None:
    stack.start_mapper("opcua")
    await run(stack.apply, OPCUA_MODEL)
    await run(stack.apply, OPCUA_DEVICE.replace("URL", boiler.url))

    # The node's value shows in DeviceStatus with the device online; a change on the server follows.
    await run(wait_for, lambda: _online_with(stack, "boiler-1", "temperature", "20.5"), 60, "20.5 online")
    await boiler.set("Temperature", 71.25)
    await run(wait_for, lambda: stack.reported("boiler-1").get("temperature") == "71.25", 30, "71.25")
    # The Device's desired value reaches the node.
    await until(lambda: _node_is(boiler, "Setpoint", 25), within=30, what="desired 25 on the node")

    # kubectl patch of the desired value reaches the node and comes back as reported.
    await run(stack.patch_desired, "boiler-1", 1, "60")
    await until(lambda: _node_is(boiler, "Setpoint", 60), within=30, what="patched desired 60 on the node")
    await run(wait_for, lambda: stack.reported("boiler-1").get("setpoint") == "60", 30, "setpoint 60")

    # The OPC UA server stops: offline; it restarts: online by itself, with fresh values.
    await boiler.stop()
    await run(wait_for, lambda: stack.state("boiler-1") == "offline", 30, "boiler-1 offline")
    await boiler.start()
    await boiler.set("Temperature", 33.5)
    await run(wait_for, lambda: _online_with(stack, "boiler-1", "temperature", "33.5"), 30, "online again")


async def _registers(modbus: ModbusDevice, address: int, values: list[int]) -> bool:
    return await modbus.get(HR, address, len(values)) == values


async def _node_is(boiler: Boiler, name: str, value: Any) -> bool:
    return bool(await boiler.get(name) == value)
