"""The robustness suite's stack and DMI helpers: one cloudcore, edge-1's edgecore, mosquitto and a
DeviceModel with devices, shared by the whole suite (tests that kill a process start it again)."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import yaml
from _stack import Stack

from dmi.rpc import Channel, RpcError, StatusCode
from dmi.v1beta1 import api_pb2

_DMI = "/" + api_pb2.DESCRIPTOR.services_by_name["DeviceManagerService"].full_name + "/"

MODEL = {
    "apiVersion": "devices.kubeedge.io/v1beta1",
    "kind": "DeviceModel",
    "metadata": {"name": "meter", "namespace": "default"},
    "spec": {
        "protocol": "bench",
        "properties": [
            {"name": "p0", "type": "INT", "accessMode": "ReadWrite"},
            {"name": "p1", "type": "INT", "accessMode": "ReadOnly"},
            {"name": "p2", "type": "INT", "accessMode": "ReadOnly"},
            {"name": "note", "type": "STRING", "accessMode": "ReadOnly"},
        ],
    },
}


def device(name: str, node: str = "edge-1", protocol: str = "bench") -> dict[str, Any]:
    return {
        "apiVersion": "devices.kubeedge.io/v1beta1",
        "kind": "Device",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "deviceModelRef": {"name": "meter"},
            "nodeName": node,
            "protocol": {"protocolName": protocol},
            "properties": [
                {"name": "p0", "desired": {"value": "0"}, "reportToCloud": True},
                {"name": "p1", "reportToCloud": True},
                {"name": "p2", "reportToCloud": True},
                {"name": "note", "reportToCloud": True},
            ],
        },
    }


#: cloudcore's settings for the suite: a node that does not acknowledge is given up on after ~6 s
CLOUD_CONFIG = {"ackTimeout": 2.0, "ackRetries": 2}

#: devices on edge-1 reported to by the load tests (no mapper serves protocol "bench")
METERS = [f"meter-{i}" for i in range(6)]


class RobustStack(Stack):
    def config(self, edge_dir: Path | None = None) -> dict[str, Any]:
        cfg: dict[str, Any] = yaml.safe_load(((edge_dir or self.edge_dir) / "edgecore.yaml").read_text())
        return cfg

    def dmi_socket(self, edge_dir: Path | None = None) -> str:
        return str(self.config(edge_dir)["dmi"]["socket"])

    def database(self, edge_dir: Path | None = None) -> Path:
        return Path(self.config(edge_dir)["database"]["path"])

    def apply_objects(self, *objects: dict[str, Any]) -> None:
        for obj in objects:
            self.apply(json.dumps(obj))

    def stored_reported(self, edge_dir: Path | None = None) -> dict[tuple[str, str], str | None]:
        """(device id, property) -> reported value, read from the edge database (edgecore stopped)."""
        with sqlite3.connect(self.database(edge_dir)) as db:
            rows = db.execute("SELECT device_id, name, actual FROM device_twin").fetchall()
        return {(d, n): a for d, n, a in rows}

    def edgecore_log_records(self, name: str = "edgecore") -> list[dict[str, Any]]:
        out = []
        for line in self.log(name).splitlines():
            if line.startswith("{"):
                out.append(json.loads(line))
        return out


def status_request(name: str, values: dict[str, str], ts_ms: int | None = None) -> Any:
    meta = {"timestamp": str(ts_ms)} if ts_ms is not None else {}
    return api_pb2.ReportDeviceStatusRequest(
        deviceName=name,
        deviceNamespace="default",
        reportedDevice=api_pb2.DeviceStatus(
            twins=[
                api_pb2.Twin(propertyName=k, reported=api_pb2.TwinProperty(value=v, metadata=meta))
                for k, v in values.items()
            ]
        ),
    )


async def report(ch: Channel, name: str, values: dict[str, str], timeout: float = 10.0) -> None:  # noqa: ASYNC109
    """ReportDeviceStatus; raises RpcError unless answered OK."""
    await ch.unary(
        _DMI + "ReportDeviceStatus",
        status_request(name, values),
        api_pb2.ReportDeviceStatusResponse,
        timeout=timeout,
    )


async def call(ch: Channel, method: str, request: Any, response_type: Any, timeout: float = 10.0) -> Any:  # noqa: ASYNC109
    return await ch.unary(_DMI + method, request, response_type, timeout=timeout)


async def wait_devices(socket: str, names: list[str], within: float = 60.0) -> None:
    """Until edgecore answers DMI and has every device in ``names`` (they come from the cloud)."""
    deadline = time.monotonic() + within
    ch = Channel(socket)
    try:
        for name in names:
            while True:
                try:
                    await report(ch, name, {"note": "ready"}, timeout=5)
                    break
                except RpcError as exc:
                    if time.monotonic() > deadline:
                        raise AssertionError(f"edgecore at {socket} never accepted {name}: {exc}") from None
                    if exc.code == StatusCode.UNAVAILABLE:
                        await ch.close()
                    await asyncio.sleep(0.1)
    finally:
        await ch.close()


class App:
    """An application on the edge's broker: publishes, and collects what arrives under a filter."""

    def __init__(self, url: str, topic_filter: str = "$hw/events/#") -> None:
        from edgecore.eventbus import MqttClient

        self.client = MqttClient(url, f"robust-app-{time.monotonic_ns()}")
        self.got: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()
        self.client.subscribe(topic_filter, self._received)

    def _received(self, topic: str, payload: bytes) -> None:
        try:
            doc = json.loads(payload)
        except ValueError:
            return
        if isinstance(doc, dict):
            self.got.put_nowait((topic, doc))

    async def __aenter__(self) -> App:
        await self.client.start()
        await asyncio.wait_for(self.client.wait_connected(), 10)
        await asyncio.sleep(0.2)  # the SUBSCRIBE is on its way
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.client.stop()

    def publish(self, topic: str, payload: bytes | str) -> None:
        assert self.client.publish(topic, payload)

    async def expect(self, topic: str, match: Any = None, within: float = 10.0) -> dict[str, Any]:
        """The next document on ``topic`` (for which ``match(doc)`` holds)."""
        async with asyncio.timeout(within):
            while True:
                t, doc = await self.got.get()
                if t == topic and (match is None or match(doc)):
                    return doc


PROJECT = "e632aba927ea4ac2b575ec1603d56f10"  # KubeEdge's default project id, in the websocket path


class HostileNode:
    """A node with real certificates (``kubeshore join``) that speaks to cloudhub itself, to send
    what a broken or hostile edgecore would. It acknowledges what the cloud sends it, so its
    session stays up, and keeps the cloud's answers to its own messages."""

    def __init__(self, stack: RobustStack, name: str) -> None:
        self.stack = stack
        self.name = name
        self.dir = stack.tmp / name
        self.cfg: dict[str, Any] = yaml.safe_load(stack.join_edge(name, self.dir).read_text())
        self.answers: dict[str, Any] = {}
        self.ws: Any = None
        self._reader: asyncio.Task[None] | None = None
        self.closed: Any = None  # the websockets close frame the cloud sent, once closed

    def _ssl(self) -> Any:
        import ssl

        c = self.cfg["certs"]
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.load_verify_locations(c["caFile"])
        ctx.load_cert_chain(c["certFile"], c["keyFile"])
        return ctx

    async def __aenter__(self) -> HostileNode:
        from websockets.asyncio.client import connect

        url = f"wss://127.0.0.1:{self.stack.ports['websocketPort']}/{PROJECT}/{self.name}/events"
        self.ws = await connect(url, ssl=self._ssl(), max_size=16 * 1024 * 1024, compression=None)
        self.closed = None
        self._reader = asyncio.create_task(self._read())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._reader is not None:
            self._reader.cancel()
        await self.ws.close()

    async def _read(self) -> None:
        from websockets.exceptions import ConnectionClosed

        from kubeshore.message import Message

        try:
            async for frame in self.ws:
                msg = Message.from_json(frame)
                if msg.route.operation == "response" and msg.header.parent_msg_id:
                    self.answers[msg.header.parent_msg_id] = msg.content
                elif msg.route.operation != "keepalive":
                    await self.ws.send(msg.response("OK", source="metaManager").to_json())
        except ConnectionClosed as exc:
            self.closed = exc.rcvd

    async def send_raw(self, frame: str) -> None:
        await self.ws.send(frame)

    async def send(self, resource: str, content: Any, operation: str = "update") -> str:
        """A message from this node's devicetwin; returns its msg_id."""
        from kubeshore.message import Message

        msg = Message.new(
            source="twin", group="resource", operation=operation, resource=resource, content=content
        )
        await self.ws.send(msg.to_json())
        return msg.msg_id

    async def answer(self, msg_id: str, within: float = 30.0) -> Any:
        async with asyncio.timeout(within):
            while msg_id not in self.answers:  # noqa: ASYNC110 (a test's poll of what the reader keeps)
                await asyncio.sleep(0.05)
        return self.answers[msg_id]


def twin_update(values: dict[str, str], ts_ms: int | None = None) -> dict[str, Any]:
    """The content of a ``twin/edge_updated`` message reporting ``values``."""
    ts = ts_ms if ts_ms is not None else int(time.time() * 1000)
    return {
        "event_id": f"e{time.monotonic_ns()}",
        "timestamp": ts,
        "twin": {
            name: {
                "actual": {"value": value, "metadata": {"timestamp": ts}},
                "optional": False,
                "metadata": {"type": "string"},
            }
            for name, value in values.items()
        },
    }
