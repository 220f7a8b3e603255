"""devicecontroller: Devices and their DeviceModels down to their nodes, twins and states up.

Downstream goes through the reliable syncer (ObjectSync, acks, resync after reconnect) with the
membership messages KubeEdge sends next to it. Unlike KubeEdge, a DeviceModel change reaches every
node using the model by itself, and a node move removes the device from the old node.

Upstream, ``twin/edge_updated`` and ``state/update`` messages from the edge become the
DeviceStatus object (same name as the Device, owned by it) through the coalescing StatusWriter;
a desired value set at the edge (KubeEdge #4166) is written into the Device spec when the spec
still holds the value the edge replaced.

Conditions (kubeshore's; see ``_conditions``) are written to the Device and its DeviceStatus when
they change, with a Warning Event when one turns False for a reason the cloud sees (model missing,
node not ready); the edge records the Events about its mappers itself. Devices of a node that is
not Ready are ``unknown`` until it is Ready again.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Iterator
from typing import Any

from cloudcore.cloudhub import CloudHub
from cloudcore.devicecontroller import _conditions as conds
from cloudcore.devicecontroller._status import StatusWriter
from cloudcore.sync import NodeSyncer
from kubeclient import NODES, ApiError, EventRecorder, Informer, Kube, Obj, Resource
from kubeshore.events import WARNING, involved, new_event
from kubeshore.message import ACK_OK, OP_RESPONSE, SOURCE_DEVICECONTROLLER, SOURCE_TWIN, Message, now_ms

log = logging.getLogger(__name__)

GROUP = "devices.kubeedge.io"
DEVICES = Resource(GROUP, "v1beta1", "devices", "Device", True)
DEVICEMODELS = Resource(GROUP, "v1beta1", "devicemodels", "DeviceModel", True)
DEVICESTATUSES = Resource(GROUP, "v1beta1", "devicestatuses", "DeviceStatus", True)
GROUP_TWIN = "twin"

Key = tuple[str, str]

#: at most one DeviceStatusRefused Event per device in this many seconds
_EVENT_INTERVAL = 300.0
#: devices per membership message sent on connect (keeps each frame small)
_MEMBERSHIP_BATCH = 200
#: a property's reportCycle when it sets none (ms; KubeEdge's mapper-framework DefaultReportCycle)
DEFAULT_REPORT_CYCLE_MS = 1000


def report_cycle(device: Obj) -> float:
    """Seconds between DeviceStatus writes of new values: the shortest reportCycle of the Device's
    properties, a property without one counting as KubeEdge's default."""
    cycles = [
        int(p.get("reportCycle") or DEFAULT_REPORT_CYCLE_MS)
        for p in (device.get("spec") or {}).get("properties") or []
        if isinstance(p, dict)
    ]
    return min(cycles, default=DEFAULT_REPORT_CYCLE_MS) / 1000


def _key(obj: Obj) -> Key:
    md = obj.get("metadata") or {}
    return md.get("namespace") or "default", md["name"]


def _node(obj: Obj | None) -> str:
    return str(((obj or {}).get("spec") or {}).get("nodeName") or "")


def _model_name(obj: Obj) -> str:
    return str(((obj.get("spec") or {}).get("deviceModelRef") or {}).get("name") or "")


def _node_ready(node: Obj | None) -> bool | None:
    """None while the Node has no Ready condition yet (just created): not a reason to call it down."""
    if node is None:
        return None
    for c in (node.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Ready":
            return bool(c.get("status") == "True")
    return None


def _without_status(obj: Obj) -> Obj:
    md = {
        k: v
        for k, v in (obj.get("metadata") or {}).items()
        if k not in ("resourceVersion", "managedFields", "generation")
    }
    return {**{k: v for k, v in obj.items() if k != "status"}, "metadata": md}


def _membership_device(obj: Obj) -> dict[str, Any]:
    md = obj.get("metadata") or {}
    labels = md.get("labels") or {}
    return {
        "id": f"{md.get('namespace') or 'default'}/{md['name']}",
        "name": md["name"],
        "description": labels.get("description", ""),
    }


class DeviceController:
    def __init__(
        self,
        kube: Kube,
        hub: CloudHub,
        syncer: NodeSyncer,
        *,
        flush_interval: float = 1.0,
        status_writers: int = 4,
        refresh_interval: float = 60.0,
        events: EventRecorder | None = None,
    ) -> None:
        self.kube = kube
        self.hub = hub
        self.syncer = syncer
        self.models = Informer(kube, DEVICEMODELS, self._on_model)
        self.devices = Informer(kube, DEVICES, self._on_device)
        self.statuses = Informer(kube, DEVICESTATUSES, self._on_status)
        self.nodes = Informer(kube, NODES, self._on_node)
        self.node_of: dict[Key, str] = {}
        # Devices waiting for the node to acknowledge their model, by (node, model uid).
        self._after_model: dict[tuple[str, str], set[Key]] = {}
        self.status = StatusWriter(
            self._patch_status,
            self._cached_status,
            flush_interval=flush_interval,
            concurrency=status_writers,
            properties=self._properties,
            on_refused=self._refused,
            refresh_interval=refresh_interval,
            cycle=lambda namespace, name: self._cycles.get((namespace, name), DEFAULT_REPORT_CYCLE_MS / 1000),
        )
        self._cycles: dict[Key, float] = {}  # report_cycle of each Device, kept as Devices change
        self._own_events = events is None
        self.events = events if events is not None else EventRecorder(kube)
        self._node_ready: dict[str, bool | None] = {}
        self._edge_conditions: dict[Key, dict[str, conds.Cond]] = {}
        self._edge_state: dict[Key, str] = {}  # the state the edge last reported
        self._conditions: dict[Key, list[dict[str, Any]]] = {}  # as last written
        self._writes: set[asyncio.Task[None]] = set()
        # Device conditions to write next and the one writer per device: writes of one device never
        # overtake each other (an older set landing last would stay).
        self._conditions_wanted: dict[Key, list[dict[str, Any]]] = {}
        self._conditions_writers: set[Key] = set()
        self._events_at: dict[Key, float] = {}
        syncer.add_source(SOURCE_DEVICECONTROLLER, self.objects_for)
        hub.register_upstream(SOURCE_TWIN, self._upstream)
        hub.on_connect(self._connected)

    async def start(self) -> None:
        if self._own_events:
            await self.events.start()
        for inf in (self.nodes, self.statuses, self.models, self.devices):
            await inf.start()
            await inf.wait_synced()
        await self.status.start()

    async def stop(self) -> None:
        await self.status.stop()
        for inf in (self.devices, self.models, self.statuses, self.nodes):
            await inf.stop()
        if self._writes:
            await asyncio.gather(*self._writes, return_exceptions=True)
        if self._own_events:
            await self.events.stop()

    # downstream -------------------------------------------------------------------------------

    def objects_for(self, node: str) -> Iterator[Obj]:
        models: set[Key] = set()
        for key, dev in list(self.devices.cache.items()):
            if _node(dev) != node:
                continue
            model_key = (key[0], _model_name(dev))
            model = self.models.cache.get(model_key)
            if model is None:
                # KubeEdge's edge refuses a Device whose model it has not seen; it follows its model.
                continue
            if model_key not in models:
                models.add(model_key)
                yield model
            yield dev

    async def _connected(self, node: str) -> None:
        """Membership messages are not acknowledged: one sent while the node was away (or on a
        session that was then lost) is gone. The whole membership again on every connect (KubeEdge's
        edge, its ``device`` table, and ours take an added device they have as a no-op), and the
        removal of the devices it has that are no longer its own."""
        mine = [d for d in self.devices.cache.values() if _node(d) == node]
        keys = {_key(d) for d in mine}
        # Devices the node acknowledged that are gone or moved meanwhile: their Device delete comes
        # from the resync, the membership removal from here.
        gone: list[Obj] = [
            {"metadata": {"namespace": s.namespace or "default", "name": s.name}}
            for s in self.syncer.store.of_node(node).values()
            if s.kind == "Device" and (s.namespace or "default", s.name) not in keys
        ]
        for i in range(0, max(len(mine), len(gone)), _MEMBERSHIP_BATCH):
            self._membership(node, mine[i : i + _MEMBERSHIP_BATCH], gone[i : i + _MEMBERSHIP_BATCH])

    def _nodes_using(self, model_key: Key) -> set[str]:
        return {
            _node(d)
            for k, d in self.devices.cache.items()
            if k[0] == model_key[0] and _model_name(d) == model_key[1] and _node(d)
        }

    def _membership(self, node: str, added: list[Obj], removed: list[Obj]) -> None:
        content = {
            "event_id": str(uuid.uuid4()),
            "timestamp": now_ms(),
            "added_devices": [_membership_device(d) for d in added] or None,
            "removed_devices": [_membership_device(d) for d in removed] or None,
        }
        msg = Message.new(
            source=SOURCE_DEVICECONTROLLER,
            group=GROUP_TWIN,
            operation="update",
            resource="membership",
            content=content,
        )
        self.hub.send_to_node(node, msg)

    async def _on_device(self, event: str, obj: Obj, old: Obj | None) -> None:
        key = _key(obj)
        node = "" if event == "DELETED" else _node(obj)
        prev = self.node_of.get(key, "")
        if event == "DELETED":
            self.node_of.pop(key, None)
            self.status.forget(key)
            for table in (self._edge_conditions, self._edge_state, self._conditions, self._cycles):
                table.pop(key, None)
            await self._delete_status(key)
        else:
            self.node_of[key] = node
            self._cycles[key] = report_cycle(obj)
            if (key[0], key[1]) not in self.statuses.cache:
                await self._ensure_status(obj)
            if prev != node:
                self._edge_conditions.pop(key, None)
                self._edge_state.pop(key, None)
                if node and self._node_ready.get(node) is False:
                    self.status.state_report(key, "unknown", "")  # e.g. cloudcore started while it was down
            self._refresh(key)
            if old is not None and prev == node and _without_status(old) == _without_status(obj):
                return  # only status changed (our conditions): nothing for the edge
        if prev and prev != node:
            self._remove_from(prev, old or obj)
        if not node:
            return
        if prev != node:
            self._membership(node, [obj], [])
        model = self.models.cache.get((key[0], _model_name(obj)))
        if model is None:
            # Sent when its model arrives (_on_model): KubeEdge's edge refuses a Device before its model.
            return
        self._push_device(node, model, obj)

    def _push_device(self, node: str, model: Obj, device: Obj) -> None:
        """Send a Device after its model: KubeEdge's edge handles the two messages concurrently and
        refuses a Device whose model its device module has not seen, so the Device waits for the
        model's acknowledgement."""
        if self.syncer.acknowledged(node, model):
            self.syncer.push(node, device, module=SOURCE_DEVICECONTROLLER)
            return
        model_key = (node, model["metadata"]["uid"])
        self._after_model.setdefault(model_key, set()).add(_key(device))

        def model_acked() -> None:
            for key in self._after_model.pop(model_key, set()):
                dev = self.devices.cache.get(key)
                if dev is not None and _node(dev) == node:
                    self.syncer.push(node, dev, module=SOURCE_DEVICECONTROLLER)

        sent = self.syncer.push(node, model, module=SOURCE_DEVICECONTROLLER, on_ack=model_acked)
        if not sent and self.syncer.acknowledged(node, model):
            model_acked()

    def _remove_from(self, node: str, obj: Obj) -> None:
        self._membership(node, [], [obj])
        self.syncer.retract(node, obj, module=SOURCE_DEVICECONTROLLER)
        model_key = (_key(obj)[0], _model_name(obj))
        model = self.models.cache.get(model_key)
        if model is not None and node not in self._nodes_using(model_key):
            self.syncer.retract(node, model, module=SOURCE_DEVICECONTROLLER)

    async def _on_model(self, event: str, obj: Obj, old: Obj | None) -> None:
        model_key = _key(obj)
        for key, dev in list(self.devices.cache.items()):
            if key[0] == model_key[0] and _model_name(dev) == model_key[1]:
                self._refresh(key)
        nodes = self._nodes_using(model_key)
        for node in nodes:
            if event == "DELETED":
                self.syncer.retract(node, obj, module=SOURCE_DEVICECONTROLLER)
            else:
                # With the Devices that waited for this model (pushing one the node has is a no-op).
                for key, dev in list(self.devices.cache.items()):
                    if key[0] == _key(obj)[0] and _model_name(dev) == _key(obj)[1] and _node(dev) == node:
                        self._push_device(node, obj, dev)
                self.syncer.push(node, obj, module=SOURCE_DEVICECONTROLLER)

    async def _on_status(self, event: str, obj: Obj, old: Obj | None) -> None:
        if event == "DELETED":
            key = _key(obj)
            if key in self.devices.cache:
                await self._ensure_status(self.devices.cache[key])

    async def _on_node(self, event: str, obj: Obj, old: Obj | None) -> None:
        name = str((obj.get("metadata") or {}).get("name") or "")
        ready = None if event == "DELETED" else _node_ready(obj)
        before = self._node_ready.get(name)
        self._node_ready[name] = ready
        if ready == before:
            return
        for key, node in list(self.node_of.items()):
            if node != name:
                continue
            if ready is False:
                self.status.state_report(key, "unknown", "")
            elif ready and key in self._edge_state:
                self.status.state_report(key, self._edge_state[key], "")
            self._refresh(key)

    # conditions -----------------------------------------------------------------------------

    def _refresh(self, key: Key) -> None:
        """Recompute the device's conditions; write them (and record Events) when they changed."""
        device = self.devices.cache.get(key)
        if device is None:
            return
        node = _node(device)
        model = _model_name(device)
        node_ready = self._node_ready.get(node)
        if node_ready is None and ("", node) in self.nodes.cache:
            node_ready = self._node_ready[node] = _node_ready(self.nodes.cache["", node])
        computed = conds.device_conditions(
            namespace=key[0],
            model=model,
            model_found=(key[0], model) in self.models.cache,
            node=node,
            node_ready=node_ready,
            state=self._edge_state.get(key),
            edge=self._edge_conditions.get(key, {}),
        )
        previous = self._conditions.get(key)
        if previous is None:
            previous = ((device.get("status") or {}).get("conditions")) or None
        rendered = conds.render(computed, previous)
        if key in self._conditions and conds.same(rendered, previous):
            return
        self._conditions[key] = rendered
        self.status.conditions_report(key, rendered)
        if not conds.same(rendered, previous):
            self._conditions_wanted[key] = rendered
            if key not in self._conditions_writers:
                self._conditions_writers.add(key)
                self._spawn(self._device_conditions_writer(key))
        was_false = {(c.get("type"), c.get("reason")) for c in previous or [] if c.get("status") == "False"}
        for cond in computed:
            if (
                cond.type == "Reporting"
                and cond.status == "False"
                and cond.reason in (conds.MODEL_NOT_FOUND, conds.NODE_NOT_READY)
                and (cond.type, cond.reason) not in was_false
            ):
                self.events.record(
                    new_event(involved(device), WARNING, cond.reason, cond.message, SOURCE_DEVICECONTROLLER)
                )

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def _device_conditions_writer(self, key: Key) -> None:
        try:
            while key in self._conditions_wanted:
                await self._write_device_conditions(key, self._conditions_wanted.pop(key))
        finally:
            self._conditions_writers.discard(key)

    async def _write_device_conditions(self, key: Key, rendered: list[dict[str, Any]]) -> None:
        try:
            await self.kube.run(
                self.kube.patch, DEVICES, key[1], {"status": {"conditions": rendered}}, key[0]
            )
        except ApiError as exc:
            if exc.status != 404:
                log.warning("device %s/%s: conditions not written: %s", *key, exc)

    # DeviceStatus ---------------------------------------------------------------------------

    def _cached_status(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.statuses.cache.get((namespace, name))

    def _properties(self, namespace: str, name: str) -> set[str] | None:
        device = self.devices.cache.get((namespace, name))
        if device is None:
            return None
        props = (device.get("spec") or {}).get("properties") or []
        return {str(p["name"]) for p in props if isinstance(p, dict) and p.get("name")}

    def _refused(self, key: Key, reason: str) -> None:
        """A DeviceStatus write refused for good: a Warning Event on the Device (a few per hour)."""
        device = self.devices.cache.get(key)
        now = time.monotonic()
        if device is None or now - self._events_at.get(key, -_EVENT_INTERVAL) < _EVENT_INTERVAL:
            return
        if len(self._events_at) > 10000:
            self._events_at.clear()
        self._events_at[key] = now
        message = f"DeviceStatus write refused by the API server; values dropped, not retried: {reason}"
        self.events.record(
            new_event(involved(device), WARNING, "DeviceStatusRefused", message, SOURCE_DEVICECONTROLLER)
        )

    async def _ensure_status(self, device: Obj) -> bool:
        md = device["metadata"]
        body = {
            "apiVersion": f"{GROUP}/v1beta1",
            "kind": "DeviceStatus",
            "metadata": {
                "name": md["name"],
                "namespace": md.get("namespace") or "default",
                "ownerReferences": [
                    {
                        "apiVersion": f"{GROUP}/v1beta1",
                        "kind": "Device",
                        "name": md["name"],
                        "uid": md.get("uid", ""),
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
            },
            "spec": {},
        }
        try:
            await self.kube.run(self.kube.create, DEVICESTATUSES, body, md.get("namespace") or "default")
        except ApiError as exc:
            if exc.status != 409:
                log.warning("cannot create DeviceStatus %s/%s: %s", md.get("namespace"), md["name"], exc)
                return False
        return True

    async def _delete_status(self, key: Key) -> None:
        try:
            await self.kube.run(self.kube.delete, DEVICESTATUSES, key[1], key[0])
        except ApiError as exc:
            log.debug("DeviceStatus %s/%s not deleted: %s", *key, exc)

    async def _patch_status(self, namespace: str, name: str, patch: dict[str, Any]) -> bool:
        for _ in range(2):
            try:
                await self.kube.run(self.kube.patch, DEVICESTATUSES, name, patch, namespace)
                return True
            except ApiError as exc:
                if exc.status != 404:
                    raise
            device = self.devices.cache.get((namespace, name))
            if device is None or not await self._ensure_status(device):
                return False
        return False

    # upstream --------------------------------------------------------------------------------

    async def _upstream(self, node: str, msg: Message) -> None:
        parts = msg.route.resource.split("/")
        if len(parts) < 5 or parts[0] != "device":
            return  # membership/detail and the like: nothing to do (as KubeEdge)
        key = (parts[1], parts[2])
        action = "/".join(parts[3:])
        device = self.devices.cache.get(key)
        if device is None or _node(device) != node:
            log.info("node %s reported %s for device %s/%s it does not have", node, action, *key)
            self._reply(node, msg)  # nothing to retry: the device is not (or no longer) there
            return
        content = msg.content_data()
        if not isinstance(content, dict):
            log.warning("node %s: %s content is not a JSON object", node, msg.route.resource)
            return
        if action == "twin/edge_updated":
            twins = content.get("twin")
            if not isinstance(twins, dict):
                return
            self.status.twin_report(
                key,
                twins,
                lambda: self._reply(node, msg),
                lambda reason: self._reply(node, msg, f"refused: {reason}"),
            )
            desired = {
                n: t["desired"]
                for n, t in twins.items()
                if isinstance(t, dict) and isinstance(t.get("desired"), dict)
            }
            if desired:
                await self._desired_from_edge(device, desired)
        elif action == "state/update":
            inner = content.get("device")
            dev: dict[str, Any] = inner if isinstance(inner, dict) else content
            state = next((v for k, v in dev.items() if k.lower() == "state"), None)
            if not isinstance(state, str) or not state:
                return
            last_online = str(dev.get("lastOnlineTime") or "")
            self._edge_state[key] = state
            if "conditions" in dev:  # kubeshore's edge only; KubeEdge's sends none
                self._edge_conditions[key] = conds.parse_edge_conditions(dev["conditions"])
            if self._node_ready.get(node) is False:
                state = "unknown"  # stale news from a node the cloud considers gone
            self.status.state_report(
                key,
                state,
                last_online,
                lambda: self._reply(node, msg),
                lambda reason: self._reply(node, msg, f"refused: {reason}"),
            )
            self._refresh(key)

    def _reply(self, node: str, msg: Message, content: str = ACK_OK) -> None:
        reply = Message.new(
            source=SOURCE_DEVICECONTROLLER,
            group=GROUP_TWIN,
            operation=OP_RESPONSE,
            resource="twin",
            content=content,
            parent_msg_id=msg.msg_id,
        )
        self.hub.send_to_node(node, reply)

    async def _desired_from_edge(self, device: Obj, desired: dict[str, dict[str, Any]]) -> None:
        """Write desired values set at the edge into the Device spec, unless the spec moved on."""
        props = (device.get("spec") or {}).get("properties") or []
        ops: list[dict[str, Any]] = []
        for i, prop in enumerate(props):
            want = desired.get(str(prop.get("name")))
            if want is None or want.get("value") is None:
                continue
            current = (prop.get("desired") or {}).get("value")
            if current == want["value"]:
                continue
            ops.append({"op": "test", "path": f"/spec/properties/{i}/name", "value": prop.get("name")})
            base = want.get("base")
            if base is not None:
                ops.append({"op": "test", "path": f"/spec/properties/{i}/desired/value", "value": base})
            ops.append(
                {"op": "add", "path": f"/spec/properties/{i}/desired", "value": {"value": str(want["value"])}}
            )
        if not ops:
            return
        md = device["metadata"]
        ns = md.get("namespace") or "default"
        try:
            await self.kube.run(
                self.kube.request,
                "PATCH",
                DEVICES.path(ns, md["name"]),
                body=ops,
                content_type="application/json-patch+json",
            )
            log.info(
                "device %s/%s: desired values from the edge written to spec: %s",
                ns,
                md["name"],
                json.dumps(desired),
            )
        except ApiError as exc:
            # A failed test means the user changed the spec meanwhile: the user's value wins.
            log.info("device %s/%s: desired value from the edge not written: %s", ns, md["name"], exc)
