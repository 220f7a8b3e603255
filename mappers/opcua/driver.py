"""OPC UA driver on asyncua: read and write nodes, and subscriptions instead of polling.

Device ``protocol.configData``: ``url`` (``opc.tcp://host:4840/...``), optional ``userName`` and
``password``, ``timeout`` (ms, default 4000), ``subscribe`` (default true), ``publishingInterval``
(ms, default 100). Property ``visitors.configData``: ``nodeID`` (e.g. ``ns=2;i=2`` or
``ns=2;s=Temperature``), optional ``subscribe`` to override the device default.

Subscribed properties are not polled; their values arrive as data-change notifications. Because a
silent subscription cannot tell "no change" from "server gone", ``state()`` (called on the device's
state cycle) checks the session and reports a lost server, which makes the SDK reconnect.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from asyncua import ua
from asyncua.client.client import Client
from asyncua.common.node import Node
from asyncua.ua.uaerrors import UaError, UaStatusCodeError

from mappers.sdk import DeviceState, DeviceUnavailable, Driver, OnValue, WriteRejected


def _node_id(visitor: Mapping[str, Any]) -> str:
    node_id = visitor.get("nodeID") or visitor.get("nodeId")
    if not node_id:
        raise ValueError("opcua visitor configData needs nodeID, e.g. ns=2;i=2")
    return str(node_id)


class _Handler:
    def __init__(self) -> None:
        self.callbacks: dict[Any, OnValue] = {}

    def datachange_notification(self, node: Node, val: Any, data: Any) -> None:
        callback = self.callbacks.get(node.nodeid)
        if callback is not None:
            callback(val)


class OpcUaDriver(Driver):
    protocol: ClassVar[str] = "opcua"

    async def open(self, protocol: Mapping[str, Any]) -> None:
        url = str(protocol.get("url") or "")
        if not url:
            raise ValueError("opcua protocol configData needs url, e.g. opc.tcp://127.0.0.1:4840")
        self._client = Client(url, timeout=float(protocol.get("timeout", 4000)) / 1000)
        if protocol.get("userName"):
            self._client.set_user(str(protocol["userName"]))
            self._client.set_password(str(protocol.get("password", "")))
        self._subscribe_default = bool(protocol.get("subscribe", True))
        self._interval = float(protocol.get("publishingInterval", 100))
        self._subscription: Any = None
        self._handler = _Handler()
        self._handles: dict[str, Any] = {}
        self._types: dict[str, ua.VariantType] = {}
        try:
            await self._client.connect()
        except (OSError, TimeoutError, UaError) as exc:
            raise DeviceUnavailable(f"cannot connect to {url}: {exc}") from exc

    async def read(self, visitor: Mapping[str, Any]) -> Any:
        value = await self._client.get_node(_node_id(visitor)).read_value()
        return value.isoformat() if hasattr(value, "isoformat") else value

    async def write(self, visitor: Mapping[str, Any], value: Any) -> None:
        node_id = _node_id(visitor)
        node = self._client.get_node(node_id)
        if node_id not in self._types:
            self._types[node_id] = await node.read_data_type_as_variant_type()
        vtype = self._types[node_id]
        try:
            await node.write_value(ua.DataValue(ua.Variant(value, vtype)))
        except UaStatusCodeError as exc:
            raise WriteRejected(f"OPC UA server refused the write to {node_id}: {exc}") from exc

    async def subscribe(self, visitor: Mapping[str, Any], on_value: OnValue) -> bool:
        if not bool(visitor.get("subscribe", self._subscribe_default)):
            return False
        node = self._client.get_node(_node_id(visitor))
        if self._subscription is None:
            self._subscription = await self._client.create_subscription(self._interval, self._handler)
        self._handler.callbacks[node.nodeid] = on_value
        self._handles[_node_id(visitor)] = await self._subscription.subscribe_data_change(node)
        return True

    async def unsubscribe(self, visitor: Mapping[str, Any]) -> None:
        handle = self._handles.pop(_node_id(visitor), None)
        if handle is not None and self._subscription is not None:
            await self._subscription.unsubscribe(handle)

    async def state(self) -> DeviceState | None:
        try:
            await self._client.check_connection()
        except Exception as exc:
            raise DeviceUnavailable(f"OPC UA session lost: {exc}") from exc
        return None

    async def close(self) -> None:
        client = getattr(self, "_client", None)
        if client is not None:
            try:
                await client.disconnect()
            except Exception:
                client.disconnect_socket()
