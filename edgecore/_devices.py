"""Device management on an edge node: devicetwin, the DMI server and the MQTT eventbus, wired to
metamanager (Devices and DeviceModels arrive through it, persisted and acknowledged) and to the
cloud (membership and replies by route group ``twin``; twin and state reports out)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from edgecore._router import ModuleRouter
from edgecore.config import EdgeCoreConfig
from edgecore.devicetwin import Device, DeviceTwin, TwinStore
from edgecore.dmiserver import DmiServer
from edgecore.eventbus import MqttClient
from edgecore.metamanager import Change, EdgeStore, open_error
from kubeshore.events import event_message, involved, new_event
from kubeshore.message import GROUP_TWIN, SOURCE_TWIN, Message

log = logging.getLogger(__name__)

DEVICE_GVR = "devices.kubeedge.io/v1beta1/devices"
MODEL_GVR = "devices.kubeedge.io/v1beta1/devicemodels"


class _Cloud:
    """devicetwin's CloudSender over the module router (not queued offline: twins sync by state)."""

    def __init__(self, router: ModuleRouter) -> None:
        self.router = router
        self.connected = False

    async def send(self, *, resource: str, operation: str, group: str, content: Any) -> str:
        msg = Message.new(
            source=SOURCE_TWIN, group=group, operation=operation, resource=resource, content=content
        )
        return msg.msg_id if await self.router.to_cloud(msg, queue_offline=False) else ""


class DeviceModule:
    def __init__(self, cfg: EdgeCoreConfig, router: ModuleRouter, store: EdgeStore) -> None:
        self.cfg = cfg
        self.router = router
        self.edge_store = store
        self.store = TwinStore(cfg.database.path, engine=store.engine, executor=store.executor)
        self.cloud = _Cloud(router)
        self.mqtt = eventbus_client(cfg)
        self.twin = DeviceTwin(self.store, cfg.node_name, mqtt=self.mqtt, cloud=self.cloud)
        self.twin.on_event = self._event
        self.dmi = DmiServer(self.twin, str(cfg.dmi.socket))
        # (type, gvr, namespace, name): the object itself is read back from the edge store when its
        # turn comes, so a burst (a node receiving its 1,000 devices) does not wait here parsed.
        self._changes: asyncio.Queue[tuple[str, str, str | None, str]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._sending: set[asyncio.Task[bool]] = set()
        router.register(GROUP_TWIN, self._from_cloud)
        router.on_cloud_state(self._cloud_state)
        store.add_watcher(self._watch)

    async def start(self) -> None:
        try:
            await self.store.open()
        except (OSError, SQLAlchemyError) as exc:
            raise open_error(self.cfg.database.path, exc) from None
        await self._catch_up()
        await self.mqtt.start()
        await self.twin.start()
        await self.dmi.start()
        self._task = asyncio.create_task(self._apply_changes(), name="devicetwin-changes")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.dmi.stop()
        await self.twin.stop()
        await self.mqtt.stop()
        await self.store.close()

    async def _catch_up(self) -> None:
        """Devices and models metamanager committed while devicetwin was not running."""
        known_models = set()
        async for models in self.edge_store.batches(MODEL_GVR):
            for model in models:
                md = model.get("metadata") or {}
                known_models.add(f"{md.get('namespace') or 'default'}/{md.get('name')}")
                await self.twin.upsert_model(model)
        present = set()
        async for devices in self.edge_store.batches(DEVICE_GVR):
            for device in devices:
                md = device.get("metadata") or {}
                present.add(f"{md.get('namespace') or 'default'}/{md.get('name')}")
                await self.twin.upsert_device(device, committed=True)
        for device_id in list(self.store.devices):
            if device_id not in present:
                await self.twin.remove_device(device_id, committed=True)
        for model_id in list(self.store.models):
            if model_id not in known_models:
                await self.twin.remove_model(model_id)

    def _watch(self, change: Change) -> None:
        if change.gvr in (DEVICE_GVR, MODEL_GVR):
            md = change.obj.get("metadata") or {}
            self._changes.put_nowait((change.type, change.gvr, md.get("namespace"), str(md.get("name"))))

    async def _apply_changes(self) -> None:
        while True:
            kind, gvr, namespace, name = await self._changes.get()
            object_id = f"{namespace or 'default'}/{name}"
            try:
                if kind == "DELETED":
                    if gvr == MODEL_GVR:
                        await self.twin.remove_model(object_id)
                    else:
                        await self.twin.remove_device(object_id, committed=True)
                    continue
                obj = await self.edge_store.get(gvr, namespace, name)
                if obj is None:
                    continue  # deleted meanwhile: its DELETED change is queued behind this one
                if gvr == MODEL_GVR:
                    await self.twin.upsert_model(obj)
                else:
                    await self.twin.upsert_device(obj, committed=True)
            except Exception:
                log.exception("devicetwin failed on %s %s", kind, object_id)
            except asyncio.CancelledError:
                # A cancelled gRPC call raises CancelledError too; only a cancel of this task stops it.
                task = asyncio.current_task()
                if task is not None and task.cancelling() > 0:
                    raise
                log.warning("devicetwin: a call was cancelled while handling %s %s", kind, object_id)

    async def _from_cloud(self, msg: Message) -> None:
        await self.twin.handle_cloud_message(
            resource=msg.route.resource,
            operation=msg.route.operation,
            content=msg.content,
            parent_id=msg.header.parent_msg_id,
        )

    def _event(self, device: Device, type_: str, reason: str, message: str) -> None:
        """An Event about a Device, up the channel as KubeEdge's edged sends its Events."""
        md = (device.body.get("metadata") or {}) if device.raw else {}
        ref = involved(
            {
                "apiVersion": "devices.kubeedge.io/v1beta1",
                "kind": "Device",
                "metadata": {"namespace": device.namespace, "name": device.name, "uid": md.get("uid", "")},
            }
        )
        event = new_event(ref, type_, reason, message, "edgecore", self.cfg.node_name)
        msg = event_message(event)
        log.info("device %s: %s: %s", device.id, reason, message)
        task = asyncio.ensure_future(self.router.to_cloud(msg))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _cloud_state(self, connected: bool) -> None:
        self.cloud.connected = connected
        self.twin.cloud_connection_changed(connected)


def eventbus_client(cfg: EdgeCoreConfig) -> MqttClient:
    """edgecore's MQTT client with KubeEdge's eventBus settings: credentials and TLS (whose files
    default, as KubeEdge's do, to the node's CA, certificate and key)."""
    bus = cfg.event_bus
    tls = None
    if bus.event_bus_tls.enable:
        from kubeshore.pki import client_tls_context

        t = bus.event_bus_tls
        tls = client_tls_context(
            t.tls_mqtt_ca_file or cfg.certs.ca_file,
            t.tls_mqtt_cert_file or cfg.certs.cert_file,
            t.tls_mqtt_private_key_file or cfg.certs.key_file,
        )
    return MqttClient(
        bus.mqtt_url,
        f"edgecore-{cfg.node_name}",
        username=bus.mqtt_username or None,
        password=bus.mqtt_password if bus.mqtt_username else None,
        tls=tls,
    )
