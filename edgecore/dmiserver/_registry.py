"""Mappers registered on this node and what each has been given.

Better than KubeEdge (§9.2 of the reference): registrations live in the twin store and are
restored at edgecore start; several mappers may serve one protocol (a Device picks one with the
``MAPPER_ANNOTATION``, otherwise the first registered mapper of its protocol serves it); a device
is sent to its mapper with UpdateDevice only when what the mapper would receive really changed
(a fingerprint of the DMI message is kept per device and persisted with the registration); and a
device whose mapper is not registered yet, or not reachable, is delivered as soon as it is.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any, TypeVar

from google.protobuf.message import Message

from crds import DeviceConditionType
from dmi.rpc import Channel, RpcError, StatusCode
from dmi.v1beta1 import api_pb2
from edgecore.devicetwin import Device, DeviceTwin
from edgecore.dmiserver._convert import ConversionError, device_to_dmi, model_to_dmi

log = logging.getLogger(__name__)

MAPPER_ANNOTATION = "devices.kubeshore.io/mapper"
MAPPER_AVAILABLE = DeviceConditionType.MAPPER_AVAILABLE.value
CALL_TIMEOUT = 10.0
_SERVICE = "/" + api_pb2.DESCRIPTOR.services_by_name["DeviceMapperService"].full_name + "/"

R = TypeVar("R", bound=Message)


def _fingerprint(msg: Any) -> str:
    return hashlib.sha256(msg.SerializeToString(deterministic=True)).hexdigest()[:32]


@dataclass
class Mapper:
    name: str
    protocol: str
    address: str
    registered_at: float
    info: dict[str, Any]
    delivered: dict[str, str] = field(default_factory=dict)  # device id -> fingerprint
    models: dict[str, str] = field(default_factory=dict)  # model id -> fingerprint
    channel: Channel | None = None
    reachable: bool = True

    def to_json(self) -> dict[str, Any]:
        return {
            **self.info,
            "name": self.name,
            "protocol": self.protocol,
            "address": self.address,
            "registeredAt": self.registered_at,
            "delivered": self.delivered,
            "models": self.models,
        }

    async def call(self, method: str, request: Message, response_type: type[R]) -> R:
        """Call DeviceMapperService.``method`` on this mapper; raises RpcError."""
        if self.channel is None:
            self.channel = Channel(self.address)
        return await self.channel.unary(_SERVICE + method, request, response_type, timeout=CALL_TIMEOUT)

    async def close(self) -> None:
        if self.channel is not None:
            await self.channel.close()
            self.channel = None


class MapperRegistry:
    """Implements devicetwin's DeviceListener: turns device/model changes into DMI calls."""

    def __init__(self, twin: DeviceTwin, *, retry_interval: float = 2.0) -> None:
        self.twin = twin
        self.store = twin.store
        self.retry_interval = retry_interval
        self.mappers: dict[str, Mapper] = {}
        self._pending: set[str] = set()
        self._lock = asyncio.Lock()
        self._retry_task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()

    async def start(self) -> None:
        for name, info in self.store.mappers.items():
            self.mappers[name] = Mapper(
                name=name,
                protocol=str(info.get("protocol", "")),
                address=str(info.get("address", "")),
                registered_at=float(info.get("registeredAt", 0.0)),
                info={k: v for k, v in info.items() if k not in ("delivered", "models")},
                delivered=dict(info.get("delivered") or {}),
                models=dict(info.get("models") or {}),
            )
        if self.mappers:
            log.info("restored %d mapper registration(s): %s", len(self.mappers), ", ".join(self.mappers))
        # Deliver whatever changed while edgecore was down; unchanged devices cost no call.
        self._pending.update(self.store.devices)
        self._pending.update(d for m in self.mappers.values() for d in m.delivered)
        self._retry_task = asyncio.create_task(self._retry_loop(), name="dmi-delivery")
        self._wake.set()

    async def stop(self) -> None:
        if self._retry_task is not None:
            self._retry_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._retry_task
        for task in list(self._tasks):
            task.cancel()
        for m in self.mappers.values():
            await m.close()

    # registration ----------------------------------------------------------------------------

    async def register(self, info: api_pb2.MapperInfo, with_data: bool) -> api_pb2.MapperRegisterResponse:
        address = bytes(info.address).decode(errors="replace")
        old = self.mappers.get(info.name)
        mapper = Mapper(
            name=info.name,
            protocol=info.protocol,
            address=address,
            registered_at=old.registered_at if old is not None else time.time(),
            info={"version": info.version, "apiVersion": info.api_version, "state": info.state},
        )
        if old is not None:
            if old.address == address and old.channel is not None:
                mapper.channel = old.channel  # it reconnects by itself
            else:
                # Closing a channel fails its calls: let a delivery round that still uses it finish.
                self._spawn(self._close_later(old))
        self.mappers[info.name] = mapper
        response = api_pb2.MapperRegisterResponse()
        if with_data:
            # The mapper starts from this list, so it now has exactly these devices and models.
            for device_id in sorted(self.store.devices):
                device = self.store.devices[device_id]
                if self.choose(device) is not mapper:
                    continue
                if self.store.models.get(device.model_id) is None:
                    continue  # never made-up values: a device waits for its model (cloud: ModelFound=False)
                dmi_device = self._dmi_device(device_id)
                if dmi_device is None:
                    continue
                response.deviceList.append(dmi_device)
                mapper.delivered[device_id] = _fingerprint(dmi_device)
                self._available(device_id, mapper)
                model = self.store.models.get(device.model_id)
                if model is not None and device.model_id not in mapper.models:
                    dmi_model = model_to_dmi(model)
                    response.modelList.append(dmi_model)
                    mapper.models[device.model_id] = _fingerprint(dmi_model)
        self.store.put_mapper(mapper.name, mapper.to_json())
        await self.store.sync()
        log.info(
            "mapper %s registered for protocol %s at %s (%d device(s))",
            mapper.name,
            mapper.protocol,
            address,
            len(response.deviceList),
        )
        # Devices of this protocol that another mapper serves, or that waited for one.
        self._pending.update(self.store.devices)
        self._wake.set()
        return response

    async def _close_later(self, mapper: Mapper) -> None:
        await asyncio.sleep(CALL_TIMEOUT + 1)
        await mapper.close()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def choose(self, device: Device) -> Mapper | None:
        annotations = (device.body.get("metadata") or {}).get("annotations") or {}
        wanted = annotations.get(MAPPER_ANNOTATION) if isinstance(annotations, dict) else None
        if wanted:
            m = self.mappers.get(str(wanted))
            return m if m is not None and m.protocol == device.protocol else None
        candidates = [m for m in self.mappers.values() if m.protocol == device.protocol]
        if not candidates:
            return None
        return min(candidates, key=lambda m: (m.registered_at, m.name))

    def mapper_of(self, device_id: str) -> Mapper | None:
        for m in self.mappers.values():
            if device_id in m.delivered:
                return m
        return None

    # DeviceListener ---------------------------------------------------------------------------

    async def device_upserted(self, device_id: str, spec_changed: bool) -> None:
        device = self.store.devices.get(device_id)
        current = self.mapper_of(device_id)
        if spec_changed or current is None or (device is not None and self.choose(device) is not current):
            self._pending.add(device_id)
            await self._deliver_pending()

    async def device_removed(self, device: Device) -> None:
        self._pending.add(device.id)
        await self._deliver_pending()

    async def model_upserted(self, model_id: str, changed: bool) -> None:
        if not changed:
            return
        # A model change reaches the mappers by itself: its devices' DMI messages change too.
        self._pending.update(d.id for d in self.store.devices.values() if d.model_id == model_id)
        await self._deliver_pending()

    async def model_removed(self, model_id: str, body: dict[str, Any]) -> None:
        async with self._lock:
            await self._remove_model(model_id)

    async def _remove_model(self, model_id: str) -> None:
        for m in list(self.mappers.values()):
            if model_id in m.models:
                with contextlib.suppress(RpcError):
                    ns, name = model_id.split("/", 1)
                    await m.call(
                        "RemoveDeviceModel",
                        api_pb2.RemoveDeviceModelRequest(modelName=name, modelNamespace=ns),
                        api_pb2.RemoveDeviceModelResponse,
                    )
                m.models.pop(model_id, None)
                self.store.put_mapper(m.name, m.to_json())

    # delivery ---------------------------------------------------------------------------------

    def _dmi_device(self, device_id: str) -> api_pb2.Device | None:
        body = self.twin.device_for_mapper(device_id)
        device = self.store.devices.get(device_id)
        if body is None or device is None:
            return None
        try:
            return device_to_dmi(body, self.store.models.get(device.model_id))
        except ConversionError as exc:
            log.error("device %s cannot be given to a mapper: %s", device_id, exc)
            return None

    async def _retry_loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.retry_interval):
                    await self._wake.wait()
            self._wake.clear()
            if self._pending:
                try:
                    await self._deliver_pending()
                except Exception:
                    log.exception("DMI delivery failed")

    async def _deliver_pending(self) -> None:
        async with self._lock:
            pending, self._pending = self._pending, set()
            down: set[str] = set()  # mappers found unreachable in this round: not called again
            for device_id in sorted(pending):
                try:
                    ok = await self._reconcile(device_id, down)
                except _MapperCallError as err:
                    ok = False
                    self._call_failed(err.mapper, device_id, err.cause, down)
                if not ok:
                    self._pending.add(device_id)

    def _call_failed(self, mapper: Mapper, device_id: str, exc: RpcError, down: set[str]) -> None:
        if exc.code in (StatusCode.UNAVAILABLE, StatusCode.DEADLINE_EXCEEDED):
            self.twin.set_condition(
                device_id,
                MAPPER_AVAILABLE,
                "False",
                "MapperUnreachable",
                f"mapper {mapper.name} at {mapper.address} does not answer ({exc.code.name})",
            )
            down.add(mapper.name)
            if mapper.reachable:
                mapper.reachable = False
                log.warning(
                    "mapper %s at %s is unreachable (%s); its devices wait for it",
                    mapper.name,
                    mapper.address,
                    exc.code.name,
                )
        else:
            log.warning(
                "mapper %s refused device %s: %s %s", mapper.name, device_id, exc.code.name, exc.details
            )
            self.twin.set_condition(
                device_id,
                MAPPER_AVAILABLE,
                "False",
                "MapperRefused",
                f"mapper {mapper.name} refused the device: {exc.code.name} {exc.details}",
            )

    async def _reconcile(self, device_id: str, down: set[str]) -> bool:
        """Make the mappers hold exactly what they should for ``device_id``; False = retry later."""
        device = self.store.devices.get(device_id)
        current = self.mapper_of(device_id)
        target = self.choose(device) if device is not None else None
        if current is not None and current is not target:
            if current.name in down:
                return False
            ns, name = device_id.split("/", 1)
            try:
                await current.call(
                    "RemoveDevice",
                    api_pb2.RemoveDeviceRequest(deviceName=name, deviceNamespace=ns),
                    api_pb2.RemoveDeviceResponse,
                )
            except RpcError as exc:
                if exc.code != StatusCode.NOT_FOUND:
                    raise _MapperCallError(current, exc) from exc
            current.delivered.pop(device_id, None)
            self.store.put_mapper(current.name, current.to_json())
        if device is None:
            return True
        if target is None:
            self._no_mapper(device)
            return True  # waits for its mapper: register() looks at every device again
        if self.store.models.get(device.model_id) is None:
            # Mappers need the model before the device (KubeEdge's wait 3 s for it, then fail);
            # model_upserted() puts the device back in the queue when the model arrives.
            return True
        if target.name in down:
            return False
        dmi_device = self._dmi_device(device_id)
        if dmi_device is None:
            return True  # not convertible: logged; retrying would not help
        try:
            await self._deliver(target, device, device_id, dmi_device)
        except RpcError as exc:
            raise _MapperCallError(target, exc) from exc
        if not target.reachable:
            target.reachable = True
            log.info("mapper %s is reachable again", target.name)
        self._available(device_id, target)
        return True

    # conditions -------------------------------------------------------------------------------

    def _available(self, device_id: str, mapper: Mapper) -> None:
        self.twin.set_condition(
            device_id,
            MAPPER_AVAILABLE,
            "True",
            "MapperRegistered",
            f"mapper {mapper.name} ({mapper.protocol}) serves the device",
        )

    def _no_mapper(self, device: Device) -> None:
        node = self.twin.node_name
        annotations = (device.body.get("metadata") or {}).get("annotations") or {}
        wanted = annotations.get(MAPPER_ANNOTATION) if isinstance(annotations, dict) else None
        if not device.protocol:
            message = "the device names no protocol (spec.protocol.protocolName), so no mapper serves it"
        elif wanted:
            message = f"mapper {wanted} (annotation {MAPPER_ANNOTATION}) is not registered on node {node}"
            message += f" for protocol {device.protocol}"
        else:
            message = f"no mapper for protocol {device.protocol} is registered on node {node}"
        self.twin.set_condition(device.id, MAPPER_AVAILABLE, "False", "NoMapper", message)

    async def _deliver(
        self, target: Mapper, device: Device, device_id: str, dmi_device: api_pb2.Device
    ) -> None:
        model = self.store.models.get(device.model_id)
        if model is not None:
            dmi_model = model_to_dmi(model)
            fp = _fingerprint(dmi_model)
            known = target.models.get(device.model_id)
            if known is None:
                await target.call(
                    "CreateDeviceModel",
                    api_pb2.CreateDeviceModelRequest(model=dmi_model),
                    api_pb2.CreateDeviceModelResponse,
                )
            elif known != fp:
                await target.call(
                    "UpdateDeviceModel",
                    api_pb2.UpdateDeviceModelRequest(model=dmi_model),
                    api_pb2.UpdateDeviceModelResponse,
                )
            target.models[device.model_id] = fp
        fp = _fingerprint(dmi_device)
        known = target.delivered.get(device_id)
        if known is None:
            await target.call(
                "RegisterDevice",
                api_pb2.RegisterDeviceRequest(device=dmi_device),
                api_pb2.RegisterDeviceResponse,
            )
        elif known != fp:
            await target.call(
                "UpdateDevice", api_pb2.UpdateDeviceRequest(device=dmi_device), api_pb2.UpdateDeviceResponse
            )
        if known != fp:
            target.delivered[device_id] = fp
            self.store.put_mapper(target.name, target.to_json())


class _MapperCallError(Exception):
    def __init__(self, mapper: Mapper, cause: RpcError) -> None:
        super().__init__(str(cause))
        self.mapper = mapper
        self.cause = cause
