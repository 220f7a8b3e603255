"""DeviceTwin: the edge's device registry and twins, their MQTT API and their sync to the cloud.

Inputs: Device/DeviceModel/membership messages from the cloud, twin reports and states from
mappers (DMI, through the dmiserver) and from applications (MQTT). Outputs: KubeEdge's MQTT
result/document/delta topics, change notifications to the dmiserver (which calls the mappers)
and ``twin/edge_updated`` / ``state/update`` messages to the cloud.

Cloud sync is state-based rather than a queue of messages: each twin side keeps the version the
cloud has acknowledged, and a sync loop sends, per device, everything newer. While the cloud is
away twins keep changing locally; after reconnecting the cloud gets the newest value of each
property once, even across an edgecore restart (acknowledged versions are in SQLite).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from edgecore.devicetwin import _formats as fmt
from edgecore.devicetwin._state import (
    UNREACHABLE_STATES,
    Change,
    Device,
    TwinError,
    apply_report,
    apply_spec,
    apply_state,
    apply_twin_update,
    model_types,
)
from edgecore.devicetwin._store import TwinStore
from kubeshore.logs import Throttled

log = logging.getLogger(__name__)

TOPIC_PREFIX = "$hw/events/device/"
NODE_PREFIX = "$hw/events/node/"
SUBSCRIPTIONS = (
    "$hw/events/device/+/+/twin/+",
    "$hw/events/device/+/+/state/update",
    "$hw/events/node/+/membership/get",
)


class Publisher(Protocol):
    def publish(self, topic: str, payload: bytes | str, *, qos: int = 0, retain: bool = False) -> bool: ...

    def subscribe(self, topic_filter: str, handler: Callable[[str, bytes], None]) -> None: ...


class CloudSender(Protocol):
    """How devicetwin reaches the cloud (edgehub in edgecore, a fake in unit tests)."""

    @property
    def connected(self) -> bool: ...

    async def send(self, *, resource: str, operation: str, group: str, content: Any) -> str:
        """Send a message to the cloud; returns its msg_id (the cloud's reply carries it as parent),
        or "" when it could not be sent (it is then sent again at a later sync)."""
        ...


class DeviceListener(Protocol):
    """What the dmiserver needs to hear about, to call the mappers."""

    async def device_upserted(self, device_id: str, spec_changed: bool) -> None: ...

    async def device_removed(self, device: Device) -> None: ...

    async def model_upserted(self, model_id: str, changed: bool) -> None: ...

    async def model_removed(self, model_id: str, body: dict[str, Any]) -> None: ...


@dataclass(slots=True)
class _InFlight:
    device_id: str
    kind: str  # "twin" | "state"
    versions: dict[str, tuple[int, int]]
    state_version: int
    sent_at: float


def _rv(obj: dict[str, Any]) -> int:
    try:
        return int((obj.get("metadata") or {}).get("resourceVersion") or 0)
    except (TypeError, ValueError):
        return 0


class DeviceTwin:
    def __init__(
        self,
        store: TwinStore,
        node_name: str,
        *,
        mqtt: Publisher | None = None,
        cloud: CloudSender | None = None,
        sync_interval: float = 0.5,
        retry_after: float = 15.0,
    ) -> None:
        self.store = store
        self.node_name = node_name
        self.mqtt = mqtt
        self.cloud = cloud
        self.sync_interval = sync_interval
        self.retry_after = retry_after
        self.listeners: list[DeviceListener] = []
        self.on_report: list[Callable[[str, list[Change]], None]] = []
        #: ``record(device, type, reason, message)``: an Event about a Device (sent to the cloud)
        self.on_event: Callable[[Device, str, str, str], None] | None = None
        self._cloud_dirty: set[str] = set()
        self._inflight: dict[str, _InFlight] = {}
        self._sent: dict[str, dict[str, tuple[int, int]]] = {}  # versions sent, not yet acknowledged
        self._state_sent: dict[str, int] = {}
        self._resend_state: set[str] = set()
        self._sync_task: asyncio.Task[None] | None = None
        self._sync_wake = asyncio.Event()
        self._bg: set[asyncio.Task[Any]] = set()
        self._types: dict[str, dict[str, str]] = {}
        #: twin property changes applied (DMI reports and MQTT updates), for /metrics
        self.twin_updates = 0
        #: MQTT messages refused, by kind (twin, state, payload, operation, topic, internal)
        self.mqtt_refused: Counter[str] = Counter()
        self._throttled = Throttled(log)

    async def start(self) -> None:
        for dev in self.store.devices.values():
            if dev.state_version > dev.state_synced or any(t.unsynced for t in dev.twins.values()):
                self._cloud_dirty.add(dev.id)
        if self.mqtt is not None:
            for topic in SUBSCRIPTIONS:
                self.mqtt.subscribe(topic, self.handle_mqtt)
        self._sync_task = asyncio.create_task(self._sync_loop(), name="devicetwin-cloud-sync")

    async def stop(self) -> None:
        if self._sync_task is not None:
            self._sync_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sync_task
        for task in list(self._bg):
            task.cancel()
        await self.store.sync()

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._bg.add(task)
        task.add_done_callback(self._bg.discard)

    # ---- devices and models from the cloud ----------------------------------------------------

    def model_of(self, device: Device) -> dict[str, Any] | None:
        return self.store.models.get(device.model_id)

    def types_of(self, device: Device) -> dict[str, str]:
        """Property name -> twin value type, from the device's model (cached per model)."""
        types = self._types.get(device.model_id)
        if types is None:
            types = self._types[device.model_id] = model_types(self.model_of(device))
        return types

    async def upsert_device(self, obj: dict[str, Any], *, committed: bool = False) -> None:
        """A Device from the cloud. Its twin rows are committed before the mapper hears of it, unless
        ``committed``: the object is already durable in metamanager's store, from which edgecore
        applies every Device again at start; then the rows are written in the background and the
        mapper is told at once."""
        meta = obj.get("metadata") or {}
        ns = sys.intern(str(meta.get("namespace") or "default"))  # a few namespaces, thousands of devices
        name = str(meta.get("name") or "")
        if not name:
            raise ValueError("device without metadata.name")
        device_id = f"{ns}/{name}"
        existing = self.store.devices.get(device_id)
        rv = _rv(obj)
        if existing is not None and rv and existing.resource_version and rv < existing.resource_version:
            log.info(
                "ignoring device %s at resourceVersion %s older than %s",
                device_id,
                rv,
                existing.resource_version,
            )
            return
        spec_changed = existing is None or existing.spec() != obj.get("spec")
        labels = meta.get("labels") or {}
        if existing is None:
            device = Device(id=device_id, namespace=ns, name=name, body=obj)
        else:
            device = existing
            device.body = obj
        device.resource_version = rv
        device.description = str(labels.get("description", "")) if isinstance(labels, dict) else ""
        desired_changed = apply_spec(device, self.model_of(device))
        self.store.put_device(device)
        await self._persist(device_id, committed)
        if existing is None:
            self._publish_membership([device], [])
        if desired_changed:
            self._cloud_dirty.add(device_id)
            self._publish_document(device, [])
        for listener in self.listeners:
            await listener.device_upserted(device_id, spec_changed)

    async def remove_device(self, device_id: str, *, committed: bool = False) -> None:
        """``committed``: as for :meth:`upsert_device` (the delete is committed in metamanager's store)."""
        device = self.store.remove_device(device_id)
        await self._persist(device_id, committed)
        self._cloud_dirty.discard(device_id)
        if device is None:
            return
        self._publish_membership([], [device])
        for listener in self.listeners:
            await listener.device_removed(device)

    async def _persist(self, device_id: str, committed: bool) -> None:
        if committed:
            self._spawn(self._write_behind(device_id))
        else:
            await self.store.sync_device(device_id)

    async def _write_behind(self, device_id: str) -> None:
        try:
            await self.store.sync_device(device_id)
        except Exception as exc:
            log.warning("twin rows of device %s not written yet (%s); the flusher retries", device_id, exc)

    async def upsert_model(self, obj: dict[str, Any]) -> None:
        meta = obj.get("metadata") or {}
        model_id = f"{meta.get('namespace') or 'default'}/{meta.get('name') or ''}"
        old = self.store.models.get(model_id)
        changed = old is None or old.get("spec") != obj.get("spec")
        self.store.put_model(model_id, obj, _rv(obj))
        self._types.pop(model_id, None)
        if changed:
            # Property types come from the model: re-derive them for the devices that use it.
            for dev in self.store.devices.values():
                if dev.model_id == model_id:
                    apply_spec(dev, obj)
                    self.store.twins_changed(dev.id, list(dev.twins))
        await self.store.sync()
        for listener in self.listeners:
            await listener.model_upserted(model_id, changed)

    async def remove_model(self, model_id: str) -> None:
        body = self.store.models.get(model_id)
        self.store.remove_model(model_id)
        self._types.pop(model_id, None)
        await self.store.sync()
        if body is not None:
            for listener in self.listeners:
                await listener.model_removed(model_id, body)

    def device_for_mapper(self, device_id: str) -> dict[str, Any] | None:
        """The Device as the mapper should see it: desired values set at the edge replace the spec's."""
        device = self.store.devices.get(device_id)
        if device is None:
            return None
        body = device.body
        for prop in (body.get("spec") or {}).get("properties") or []:
            if not isinstance(prop, dict):
                continue
            twin = device.twins.get(str(prop.get("name")))
            if twin is not None and twin.expected is not None and twin.expected_from_edge:
                desired = prop.get("desired")
                prop["desired"] = {**(desired if isinstance(desired, dict) else {}), "value": twin.expected}
        return body

    async def handle_cloud_message(
        self, *, resource: str, operation: str, content: Any, parent_id: str = ""
    ) -> None:
        """A message from the cloud whose resource is edge-relative (as cloudhub trims it)."""
        if operation == "response" and parent_id:
            self._acknowledged(parent_id, content)
            return
        if isinstance(content, (str, bytes)):
            try:
                content = json.loads(content)
            except ValueError:
                log.warning("cloud message %s %s: content is not JSON", operation, resource)
                return
        parts = resource.split("/")
        if parts[-1] == "membership" or resource.endswith("membership"):
            await self._membership(content)
        elif len(parts) >= 3 and parts[1] == "device":
            device_id = f"{parts[0]}/{parts[2]}"
            if operation == "delete":
                await self.remove_device(device_id)
            elif isinstance(content, dict):
                await self.upsert_device(content)
        elif len(parts) >= 3 and parts[1] == "devicemodel":
            model_id = f"{parts[0]}/{parts[2]}"
            if operation == "delete":
                await self.remove_model(model_id)
            elif isinstance(content, dict):
                await self.upsert_model(content)
        else:
            log.debug("devicetwin ignores cloud message %s %s", operation, resource)

    async def _membership(self, content: Any) -> None:
        if not isinstance(content, dict):
            return
        for dev in content.get("removed_devices") or []:
            if isinstance(dev, dict) and dev.get("id"):
                await self.remove_device(str(dev["id"]))
        # Added devices need their Device object, which the cloud sends next as a device message.

    def cloud_connection_changed(self, connected: bool) -> None:
        self._inflight.clear()
        self._sent.clear()
        self._state_sent.clear()
        if connected:
            # Every state again: the cloud may have marked this node's devices unknown meanwhile.
            self._resend_state = {d.id for d in self.store.devices.values() if d.state or d.conditions}
            self._cloud_dirty.update(self._resend_state)
            for dev in self.store.devices.values():
                if dev.state_version > dev.state_synced or any(t.unsynced for t in dev.twins.values()):
                    self._cloud_dirty.add(dev.id)
            self._sync_wake.set()

    # ---- reports from mappers (DMI) ----------------------------------------------------------

    def report_status(
        self,
        namespace: str,
        name: str,
        twins: list[tuple[str, str | None, dict[str, str], str | None]],
    ) -> list[Change]:
        device = self._device(namespace, name)
        changes = apply_report(device, twins, self.types_of(device))
        if changes:
            self._after_update(device, changes, None)
        return changes

    def report_state(self, namespace: str, name: str, state: str) -> Device:
        device = self._device(namespace, name)
        before = device.state
        if not apply_state(device, state):
            raise TwinError(400, f"unknown device state {state!r}")
        self.store.device_changed(device.id)
        if device.state_version > max(device.state_synced, self._state_sent.get(device.id, 0)):
            self._cloud_dirty.add(device.id)
        if device.state != before and device.state in UNREACHABLE_STATES:
            self.event(
                device, "Warning", "DeviceUnreachable", f"the mapper reports the device {device.state}"
            )
        return device

    def desired_outcome(
        self, namespace: str, name: str, reported: list[str], refused: dict[str, str]
    ) -> None:
        """What a mapper's report says of the desired values of the ``reported`` properties:
        ``refused`` maps those it did not apply to why."""
        device = self._device(namespace, name)
        for prop in reported:
            if prop in refused:
                device.refused[prop] = refused[prop]
            else:
                device.refused.pop(prop, None)
        if device.refused:
            reasons = "; ".join(f"property {p}: {why}" for p, why in sorted(device.refused.items()))
            self.set_condition(
                device.id, "DesiredApplied", "False", "DesiredRefused", f"the mapper did not apply {reasons}"
            )
        elif any(t.expected is not None for t in device.twins.values()):
            self.set_condition(
                device.id, "DesiredApplied", "True", "Applied", "the mapper accepted every desired value"
            )

    def event(self, device: Device, type_: str, reason: str, message: str) -> None:
        if self.on_event is not None:
            self.on_event(device, type_, reason, message)

    def set_condition(self, device_id: str, ctype: str, status: str, reason: str, message: str) -> bool:
        """Set one of the edge's conditions of a device; a change goes to the cloud with the state, and
        one to False is recorded as a Warning Event (reason and message as the condition's)."""
        device = self.store.devices.get(device_id)
        if device is None:
            return False
        # Interned: a fleet's devices mostly share a message ("no mapper for protocol ... on node ...").
        value = (status, reason, sys.intern(message))
        if device.conditions.get(ctype) == value:
            return False
        device.conditions[ctype] = value
        device.state_version += 1
        self._cloud_dirty.add(device_id)
        self._sync_wake.set()
        if status == "False":
            self.event(device, "Warning", reason, message)
        return True

    def _device(self, namespace: str, name: str) -> Device:
        device = self.store.devices.get(f"{namespace}/{name}")
        if device is None:
            raise TwinError(404, f"device {namespace}/{name} is not on node {self.node_name}")
        return device

    # ---- MQTT -------------------------------------------------------------------------------

    def handle_mqtt(self, topic: str, payload: bytes) -> None:
        """Every message on the twin topics; bad input is answered on ``<topic>/result`` (code and
        reason), counted in ``mqtt_refused`` and logged (one line per reason a minute), never raised."""
        try:
            self._handle_mqtt(topic, payload)
        except Exception as exc:  # a bug, not the peer's fault: still one line, and the next message goes on
            self._refused("internal", topic, f"{type(exc).__name__}: {exc}")

    def _handle_mqtt(self, topic: str, payload: bytes) -> None:
        if topic.startswith(TOPIC_PREFIX):
            parts = topic[len(TOPIC_PREFIX) :].split("/")
            if len(parts) < 4:
                self._refused("topic", topic, "not a device topic")
                return
            ns, name, action = parts[0], parts[1], "/".join(parts[2:])
            base = f"{TOPIC_PREFIX}{ns}/{name}"
            if action == "twin/update":
                self._mqtt_twin_update(base, ns, name, payload)
            elif action == "twin/get":
                self._mqtt_twin_get(base, ns, name, payload)
            elif action == "state/update":
                self._mqtt_state_update(base, ns, name, payload)
            elif not action.endswith(("/result", "/document", "/delta")):
                # Our own publications come back through the wildcard; anything else is unknown.
                self._refused("operation", topic, f"unknown operation {action!r}")
        elif topic.startswith(NODE_PREFIX) and topic.endswith("/membership/get"):
            event_id = ""
            try:
                event_id, _ = self._event(payload)
            except TwinError as err:
                self._refused("payload", topic, err.reason)
                self._publish(topic + "/result", fmt.error_result(event_id, err.code, err.reason))
                return
            doc = fmt.header(event_id)
            doc["devices"] = [fmt.membership_device(d) for d in self.store.devices.values()]
            self._publish(topic + "/result", doc)

    def _refused(self, kind: str, topic: str, reason: str) -> None:
        self.mqtt_refused[kind] += 1
        self._throttled.warning(kind, "MQTT message on %s refused: %s", topic, reason, refused=kind)

    def _event(self, payload: bytes) -> tuple[str, dict[str, Any]]:
        try:
            doc = fmt.loads(payload) if payload else {}
        except ValueError as exc:
            raise TwinError(400, f"payload is not valid JSON: {exc}") from None
        if not isinstance(doc, dict):
            raise TwinError(400, "payload must be a JSON object")
        event_id = doc.get("event_id", "")
        return (event_id if isinstance(event_id, str) else str(event_id)), doc

    def _mqtt_twin_update(self, base: str, ns: str, name: str, payload: bytes) -> None:
        event_id = ""
        try:
            event_id, doc = self._event(payload)
            twins = doc.get("twin")
            if not isinstance(twins, dict):
                raise TwinError(400, "twin must be an object of property name -> twin")
            device = self._device(ns, name)
            changes = apply_twin_update(device, twins, self.types_of(device))
        except TwinError as err:
            self._refused("twin", base + "/twin/update", err.reason)
            self._publish(base + "/twin/update/result", fmt.error_result(event_id, err.code, err.reason))
            return
        self._after_update(device, changes, event_id)
        if any(c.desired_changed for c in changes):
            # A desired value set by an application must survive a crash before the mapper acts on it.
            self._spawn(self._desired_from_edge(device.id))

    async def _desired_from_edge(self, device_id: str) -> None:
        await self.store.sync_device(device_id)
        for listener in self.listeners:
            await listener.device_upserted(device_id, True)

    def _mqtt_twin_get(self, base: str, ns: str, name: str, payload: bytes) -> None:
        event_id = ""
        try:
            event_id, _ = self._event(payload)
            device = self._device(ns, name)
        except TwinError as err:
            self._refused("twin", base + "/twin/get", err.reason)
            self._publish(base + "/twin/get/result", fmt.error_result(event_id, err.code, err.reason))
            return
        self._publish(base + "/twin/get/result", fmt.get_result(event_id, device))

    def _mqtt_state_update(self, base: str, ns: str, name: str, payload: bytes) -> None:
        event_id = ""
        try:
            event_id, doc = self._event(payload)
            state = next((v for k, v in doc.items() if k.lower() == "state"), None)
            if not isinstance(state, str):
                raise TwinError(400, "state must be a string")
            device = self.report_state(ns, name, state)
        except TwinError as err:
            self._refused("state", base + "/state/update", err.reason)
            self._publish(base + "/state/update/result", fmt.error_result(event_id, err.code, err.reason))
            return
        self._publish(base + "/state/update/result", fmt.state_result(event_id, device))
        self._sync_wake.set()

    def _after_update(self, device: Device, changes: list[Change], event_id: str | None) -> None:
        """``event_id`` None: a DMI report, whose sender got its answer over gRPC (no /result)."""
        self.store.twins_changed(device.id, [c.name for c in changes])
        self.twin_updates += len(changes)
        if any(c.current is not None for c in changes):
            self._cloud_dirty.add(device.id)
        base = f"{TOPIC_PREFIX}{device.namespace}/{device.name}"
        if event_id is not None:
            self._publish(base + "/twin/update/result", fmt.update_result(event_id, changes))
        self._publish_document(device, changes)
        for hook in self.on_report:
            hook(device.id, changes)

    def _publish_document(self, device: Device, changes: list[Change]) -> None:
        base = f"{TOPIC_PREFIX}{device.namespace}/{device.name}"
        if changes:
            self._publish(base + "/twin/update/document", fmt.twin_document(changes))
        delta = fmt.twin_delta(device)
        if delta is not None:
            self._publish(base + "/twin/update/delta", delta)

    def _publish_membership(self, added: list[Device], removed: list[Device]) -> None:
        doc = fmt.header()
        doc["added_devices"] = [fmt.membership_device(d) for d in added]
        doc["removed_devices"] = [fmt.membership_device(d) for d in removed]
        self._publish(f"{NODE_PREFIX}{self.node_name}/membership/updated", doc)

    def _publish(self, topic: str, doc: dict[str, Any]) -> None:
        if self.mqtt is not None:
            self.mqtt.publish(topic, fmt.dumps(doc))

    # ---- cloud sync ---------------------------------------------------------------------------

    async def _sync_loop(self) -> None:
        # A sync every interval (a report waits at most that long for the cloud), or sooner when
        # woken (a state change, a reconnect); a short pause keeps a burst of wakes from spinning.
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.sync_interval):
                    await self._sync_wake.wait()
            self._sync_wake.clear()
            try:
                await self.sync_once()
            except Exception:
                log.exception("device twin cloud sync failed")
            await asyncio.sleep(min(0.05, self.sync_interval))

    async def sync_once(self) -> int:
        """Send each device's twins and state changed since they were last sent; returns messages sent.

        Messages are pipelined: a device's next message does not wait for the reply to the previous
        one (the cloud keeps the newest value per property, so order does not matter). What was sent
        but not acknowledged within ``retry_after`` (or before a disconnect) is sent again.
        """
        cloud = self.cloud
        if cloud is None or not cloud.connected:
            return 0
        now = time.monotonic()
        for msg_id, inflight in list(self._inflight.items()):
            if now - inflight.sent_at > self.retry_after:
                self._inflight.pop(msg_id, None)
                self._sent.pop(inflight.device_id, None)
                self._state_sent.pop(inflight.device_id, None)
                self._cloud_dirty.add(inflight.device_id)
        sent = 0
        for i, device_id in enumerate(list(self._cloud_dirty)):
            if i and not i % 25:
                # Hundreds of devices take tens of ms: let mappers' reports in between.
                await asyncio.sleep(0)
            if device_id not in self._cloud_dirty:
                continue
            self._cloud_dirty.discard(device_id)
            device = self.store.devices.get(device_id)
            if device is None:
                continue
            was_sent = self._sent.setdefault(device_id, {})
            pending = {}
            for name, t in device.twins.items():
                se, sa = was_sent.get(name, (0, 0))
                if t.expected_version > max(se, t.synced_expected) or t.actual_version > max(
                    sa, t.synced_actual
                ):
                    pending[name] = t
            if pending:
                content = fmt.header()
                content["twin"] = {n: fmt.cloud_twin(t) for n, t in pending.items()}
                msg_id = await cloud.send(
                    resource=f"device/{device.namespace}/{device.name}/twin/edge_updated",
                    operation="update",
                    group="resource",
                    content=content,
                )
                if not msg_id:
                    self._cloud_dirty.add(device_id)
                    return sent
                versions = {n: (t.expected_version, t.actual_version) for n, t in pending.items()}
                was_sent.update(versions)
                self._inflight[msg_id] = _InFlight(device_id, "twin", versions, 0, now)
                sent += 1
            state_sent = self._state_sent.get(device_id, 0)
            if device.state_version > max(device.state_synced, state_sent) or device_id in self._resend_state:
                doc = fmt.cloud_state(device)
                msg_id = await cloud.send(
                    resource=f"device/{device.namespace}/{device.name}/state/update",
                    operation="update",
                    group="resource",
                    content=json.dumps(doc),
                )
                if not msg_id:
                    self._cloud_dirty.add(device_id)
                    return sent
                self._state_sent[device_id] = device.state_version
                self._resend_state.discard(device_id)
                self._inflight[msg_id] = _InFlight(device_id, "state", {}, device.state_version, now)
                sent += 1
        return sent

    def _acknowledged(self, msg_id: str, content: Any) -> None:
        inflight = self._inflight.pop(msg_id, None)
        if inflight is None:
            return
        device = self.store.devices.get(inflight.device_id)
        if device is None:
            return
        if isinstance(content, str) and content.startswith("refused"):
            # The API server will refuse these values again (too large, invalid): sending them
            # again would wedge the device; the cloud recorded an Event, the next values go through.
            self._throttled.warning(
                f"cloud-refused/{device.id}", "cloud refused the twin sync of %s: %.300s", device.id, content
            )
        elif content not in ("OK", b"OK", '"OK"'):
            log.warning("cloud rejected twin sync of %s: %s", inflight.device_id, content)
            self._sent.pop(device.id, None)
            self._state_sent.pop(device.id, None)
            self._cloud_dirty.add(device.id)
            return
        if inflight.kind == "state":
            device.state_synced = max(device.state_synced, inflight.state_version)
            self.store.device_changed(device.id)
            return
        acked: list[str] = []
        for name, (ev, av) in inflight.versions.items():
            twin = device.twins.get(name)
            if twin is None:
                continue
            twin.synced_expected = max(twin.synced_expected, ev)
            twin.synced_actual = max(twin.synced_actual, av)
            acked.append(name)
        # Forget what the cloud now has, so an idle node keeps no per-twin bookkeeping.
        was_sent = self._sent.get(device.id)
        if was_sent is not None:
            for name in acked:
                twin = device.twins[name]
                se, sa = was_sent.get(name, (0, 0))
                if se <= twin.synced_expected and sa <= twin.synced_actual:
                    was_sent.pop(name, None)
            if not was_sent:
                del self._sent[device.id]
        self.store.twins_changed(device.id, acked)
