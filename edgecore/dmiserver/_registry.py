"""Mappers registered on this node and what each has been given.

Better than KubeEdge (§9.2 of the reference): registrations live in the twin store and are
restored at edgecore start; several mappers may serve one protocol (a Device picks one with the
``MAPPER_ANNOTATION``). Otherwise, as in KubeEdge, where the newest registration for a protocol
replaces the DMI client of that protocol, the live mapper whose name registered last serves the
protocol's devices: a mapper that moved to a Pod or was renamed takes them over at once, without
waiting for the old one to let go. A mapper is dead when its socket refuses a connection (probed at
start, when a newer mapper of its protocol registers, and after a call fails UNAVAILABLE); a slow one
that times out is not (it would accept the connection), so a busy mapper keeps its devices. A dead
mapper while a newer one serves its protocol is dropped, from the store too, so neither a restart
nor a retry sends devices to its socket. Re-registering
under the same name keeps the first registration time, so mappers that all re-register after an
edgecore restart do not trade devices by the order they come back in. A device
is sent to its mapper with UpdateDevice only when what the mapper would receive really changed
(a fingerprint of the DMI message is kept per device and persisted with the registration); and a
device whose mapper is not registered yet, or not reachable, is delivered as soon as it is.

Each mapper is isolated: it has its own delivery queue and worker, so calls to one mapper never
wait on another, and a call that gets no answer within ``call_timeout`` (3 s) marks that mapper
unhealthy (logged, ``edgecore_mapper_healthy`` 0, its devices' state ``unhealthy``) while the
others keep their latency. Its worker retries every ``retry_interval``.
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

from dmi.rpc import Channel, RpcError, StatusCode
from dmi.v1beta1 import api_pb2
from edgecore.devicetwin import Device, DeviceTwin, TwinError
from edgecore.dmiserver._convert import ConversionError, device_to_dmi, model_to_dmi

log = logging.getLogger(__name__)

MAPPER_ANNOTATION = "devices.kubeshore.io/mapper"


def _wanted_mapper(device: Device) -> str | None:
    """The mapper the Device's annotation names, if any."""
    annotations = (device.body.get("metadata") or {}).get("annotations") or {}
    wanted = annotations.get(MAPPER_ANNOTATION) if isinstance(annotations, dict) else None
    return str(wanted) if wanted else None


# crds.DeviceConditionType.MAPPER_AVAILABLE, spelled out: crds loads with the first conversion
# (tests/test_edge_memory.py checks they agree).
MAPPER_AVAILABLE = "MapperAvailable"
CALL_TIMEOUT = 3.0
_SERVICE = "/" + api_pb2.DESCRIPTOR.services_by_name["DeviceMapperService"].full_name + "/"

R = TypeVar("R", bound=Message)


def _order(m: Mapper) -> tuple[float, str]:
    """Newer registrations sort last."""
    return (m.registered_at, m.name)


async def _connectable(address: str, within: float = 1.0) -> bool:
    """Whether a mapper's socket accepts a connection (a dead mapper's file may still be there)."""
    try:
        async with asyncio.timeout(within):
            _, writer = await asyncio.open_unix_connection(address.removeprefix("unix:"))
    except (OSError, TimeoutError, ValueError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


def _fingerprint(msg: Any) -> str:
    return hashlib.sha256(msg.SerializeToString(deterministic=True)).hexdigest()[:32]


@dataclass(eq=False)
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
    alive: bool = True  # its socket accepts connections, as far as we know
    call_timeout: float = CALL_TIMEOUT
    # device ids this mapper's worker must reconcile (insertion order), and the worker itself
    queue: dict[str, None] = field(default_factory=dict)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    worker: asyncio.Task[None] | None = None
    busy: bool = False  # the worker is in a call
    # device ids moved to another mapper: told RemoveDevice, once reachable (not persisted: a mapper
    # that registers again gets its list from MapperRegister and drops the rest by itself)
    leaving: set[str] = field(default_factory=set)

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

    def enqueue(self, device_id: str) -> None:
        self.queue[device_id] = None
        self.wake.set()

    async def call(self, method: str, request: Message, response_type: type[R]) -> R:
        """Call DeviceMapperService.``method`` on this mapper; raises RpcError."""
        if self.channel is None:
            self.channel = Channel(self.address)
        return await self.channel.unary(_SERVICE + method, request, response_type, timeout=self.call_timeout)

    async def close(self) -> None:
        if self.worker is not None:
            self.worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.worker
            self.worker = None
        if self.channel is not None:
            await self.channel.close()
            self.channel = None


class MapperRegistry:
    """Implements devicetwin's DeviceListener: turns device/model changes into DMI calls, each
    mapper's on its own worker."""

    def __init__(
        self, twin: DeviceTwin, *, retry_interval: float = 2.0, call_timeout: float = CALL_TIMEOUT
    ) -> None:
        self.twin = twin
        self.store = twin.store
        self.retry_interval = retry_interval
        self.call_timeout = call_timeout
        self.mappers: dict[str, Mapper] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._started = False

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
                call_timeout=self.call_timeout,
            )
        if self.mappers:
            log.info("restored %d mapper registration(s): %s", len(self.mappers), ", ".join(self.mappers))
        # Like KubeEdge (PR #6597), only a socket that accepts a connection counts as a live mapper.
        for m, live in zip(
            list(self.mappers.values()),
            await asyncio.gather(*(_connectable(m.address) for m in self.mappers.values())),
            strict=True,
        ):
            if not live:
                m.reachable = m.alive = False
                log.info("restored mapper %s does not answer at %s", m.name, m.address)
        for m in list(self.mappers.values()):
            self._drop_if_replaced(m, route=False)
        self._started = True
        for m in self.mappers.values():
            self._start_worker(m)
        # Deliver whatever changed while edgecore was down; unchanged devices cost no call.
        self._route(set(self.store.devices) | {d for m in self.mappers.values() for d in m.delivered})

    async def stop(self) -> None:
        self._started = False
        for task in list(self._tasks):
            task.cancel()
        for m in self.mappers.values():
            await m.close()

    def _start_worker(self, mapper: Mapper) -> None:
        if self._started and mapper.worker is None:
            mapper.worker = asyncio.create_task(self._work(mapper), name=f"dmi-mapper-{mapper.name}")

    async def settled(self, within: float = 10.0) -> None:
        """Wait until every reachable mapper's queue is empty and its worker idle (for tests)."""
        async with asyncio.timeout(within):
            # Polled: a test helper, and the workers have no "all idle" event to wait on.
            while any(  # noqa: ASYNC110
                m.queue or m.busy or m.wake.is_set() for m in self.mappers.values() if m.reachable
            ):
                await asyncio.sleep(0.01)

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
            call_timeout=self.call_timeout,
        )
        if old is not None:
            if old.address == address and old.channel is not None:
                mapper.channel = old.channel  # it reconnects by itself
                old.channel = None
            # Its worker stops; a call it is making finishes (or times out) on the channel it has.
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
                current = self.mapper_of(device_id)
                if current is not None and current is not mapper:
                    self._leave(current, device_id)  # taken over: the new mapper runs it from now on
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
        self._start_worker(mapper)
        # Devices of this protocol that another mapper serves, or that waited for one.
        self._route(set(self.store.devices))
        self._spawn(self._probe_older(mapper))
        return response

    async def _probe_older(self, mapper: Mapper) -> None:
        """The mappers ``mapper`` replaces that no longer answer are dropped now, rather than when a
        call to them fails (one with no device left to remove would never get a call)."""
        for m in list(self.mappers.values()):
            if m is mapper or m.protocol != mapper.protocol or await _connectable(m.address):
                continue
            if self.mappers.get(m.name) is m:  # not registered again while it was probed
                m.reachable = m.alive = False
                self._drop_if_replaced(m)

    async def _check_alive(self, mapper: Mapper) -> None:
        """After a call failed UNAVAILABLE: a socket that refuses connections means a dead mapper,
        whose devices go to another mapper of the protocol, if one lives."""
        if not mapper.alive or await _connectable(mapper.address):
            return
        if self.mappers.get(mapper.name) is mapper and mapper.alive:
            mapper.alive = False
            if not self._drop_if_replaced(mapper):
                self._route_protocol(mapper.protocol)

    def _drop_if_replaced(self, mapper: Mapper, *, route: bool = True) -> bool:
        """Forget a dead mapper when a newer registration serves its protocol."""
        if mapper.alive or self.mappers.get(mapper.name) is not mapper:
            return False
        newer = [
            m
            for m in self.mappers.values()
            if m is not mapper and m.protocol == mapper.protocol and _order(m) > _order(mapper)
        ]
        if not newer:
            return False
        log.warning(
            "mapper %s (%s) at %s does not answer and mapper %s registered for its protocol since:"
            " its registration is dropped",
            mapper.name,
            mapper.protocol,
            mapper.address,
            max(newer, key=_order).name,
        )
        del self.mappers[mapper.name]
        self.store.remove_mapper(mapper.name)
        self._spawn(self._close_later(mapper))
        if route:
            self._route(set(mapper.delivered) | set(mapper.queue))
            self._route_protocol(mapper.protocol)
        return True

    def _leave(self, mapper: Mapper, device_id: str) -> None:
        mapper.delivered.pop(device_id, None)
        mapper.leaving.add(device_id)
        self.store.put_mapper(mapper.name, mapper.to_json())
        mapper.enqueue(device_id)

    async def _close_later(self, mapper: Mapper) -> None:
        if mapper.worker is not None:
            mapper.worker.cancel()
            mapper.worker = None
        await asyncio.sleep(mapper.call_timeout + 1)
        await mapper.close()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def choose(self, device: Device) -> Mapper | None:
        wanted = _wanted_mapper(device)
        if wanted:
            m = self.mappers.get(str(wanted))
            return m if m is not None and m.protocol == device.protocol else None
        candidates = [m for m in self.mappers.values() if m.protocol == device.protocol]
        if not candidates:
            return None
        return max(candidates, key=lambda m: (m.alive, *_order(m)))

    def mapper_of(self, device_id: str) -> Mapper | None:
        for m in self.mappers.values():
            if device_id in m.delivered:
                return m
        return None

    # DeviceListener: never waits for a mapper --------------------------------------------------

    async def device_upserted(self, device_id: str, spec_changed: bool) -> None:
        device = self.store.devices.get(device_id)
        current = self.mapper_of(device_id)
        if spec_changed or current is None or (device is not None and self.choose(device) is not current):
            self._route({device_id})

    async def device_removed(self, device: Device) -> None:
        self._route({device.id})

    async def model_upserted(self, model_id: str, changed: bool) -> None:
        if not changed:
            return
        # A model change reaches the mappers by itself: its devices' DMI messages change too.
        self._route({d.id for d in self.store.devices.values() if d.model_id == model_id})

    async def model_removed(self, model_id: str, body: dict[str, Any]) -> None:
        for m in list(self.mappers.values()):
            if model_id in m.models:
                self._spawn(self._remove_model(m, model_id))

    async def _remove_model(self, m: Mapper, model_id: str) -> None:
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

    def _route(self, device_ids: set[str]) -> None:
        """Put each device in the queue of the mapper that should have it; one that has it while
        another should is told RemoveDevice on its own worker, so a dead one delays no move."""
        for device_id in sorted(device_ids):
            device = self.store.devices.get(device_id)
            current = self.mapper_of(device_id)
            target = self.choose(device) if device is not None else None
            if current is not None and current is not target:
                self._leave(current, device_id)
            if target is not None:
                target.enqueue(device_id)
            elif device is not None:
                self._no_mapper(device)  # waits for its mapper; register() routes every device again

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

    async def _work(self, mapper: Mapper) -> None:
        """This mapper's deliveries, one device at a time; a mapper that fails waits, alone."""
        while True:
            await mapper.wake.wait()
            mapper.wake.clear()
            while mapper.queue:
                device_id = next(iter(mapper.queue))
                del mapper.queue[device_id]
                mapper.busy = True
                try:
                    await self._reconcile(mapper, device_id)
                except RpcError as exc:
                    self._call_failed(mapper, device_id, exc)
                    if exc.code in (StatusCode.UNAVAILABLE, StatusCode.DEADLINE_EXCEEDED):
                        mapper.queue[device_id] = None  # retried with the rest, after a pause
                        await asyncio.sleep(self.retry_interval)
                    else:
                        self._spawn(self._again_later(mapper, device_id))
                except Exception:
                    log.exception("DMI delivery of %s to mapper %s failed", device_id, mapper.name)
                    self._spawn(self._again_later(mapper, device_id))
                finally:
                    mapper.busy = False

    async def _again_later(self, mapper: Mapper, device_id: str) -> None:
        await asyncio.sleep(self.retry_interval)
        mapper.enqueue(device_id)

    def _call_failed(self, mapper: Mapper, device_id: str, exc: RpcError) -> None:
        if exc.code in (StatusCode.UNAVAILABLE, StatusCode.DEADLINE_EXCEEDED):
            if mapper.reachable:
                mapper.reachable = False
                log.warning(
                    "mapper %s at %s is unhealthy (%s after at most %g s); its devices wait for it",
                    mapper.name,
                    mapper.address,
                    exc.code.name,
                    mapper.call_timeout,
                )
            if exc.code == StatusCode.UNAVAILABLE:
                self._spawn(self._check_alive(mapper))
            # Every time: devices that came to this mapper since it was marked say so too.
            self._mark_devices(mapper)
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

    def _mark_devices(self, mapper: Mapper) -> None:
        """The devices of an unhealthy mapper say so in their state (and so in DeviceStatus)."""
        for device in list(self.store.devices.values()):
            if device.state == "unhealthy" or self.choose(device) is not mapper:
                continue
            self.twin.set_condition(
                device.id,
                MAPPER_AVAILABLE,
                "False",
                "MapperUnreachable",
                f"mapper {mapper.name} at {mapper.address} does not answer within {mapper.call_timeout:g} s",
            )
            with contextlib.suppress(TwinError):
                self.twin.report_state(device.namespace, device.name, "unhealthy")

    async def _reconcile(self, mapper: Mapper, device_id: str) -> None:
        """Make ``mapper`` hold what it should of ``device_id``; raises RpcError to retry later."""
        device = self.store.devices.get(device_id)
        target = self.choose(device) if device is not None else None
        if device_id in mapper.leaving and target is not mapper:
            ns, name = device_id.split("/", 1)
            try:
                await mapper.call(
                    "RemoveDevice",
                    api_pb2.RemoveDeviceRequest(deviceName=name, deviceNamespace=ns),
                    api_pb2.RemoveDeviceResponse,
                )
            except RpcError as exc:
                if exc.code != StatusCode.NOT_FOUND:
                    raise
            mapper.leaving.discard(device_id)
            self._reachable(mapper)
            return
        mapper.leaving.discard(device_id)  # it came back before it was removed: delivered again below
        current = self.mapper_of(device_id)
        if device is None or target is not mapper or current not in (None, mapper):
            self._route({device_id})  # the registrations changed since it was queued
            return
        if self.store.models.get(device.model_id) is None:
            # Mappers need the model before the device (KubeEdge's wait 3 s for it, then fail);
            # model_upserted() routes the device again when the model arrives.
            return
        dmi_device = self._dmi_device(device_id)
        if dmi_device is None:
            return  # not convertible: logged; retrying would not help
        await self._deliver(mapper, device, device_id, dmi_device)
        self._reachable(mapper)
        self._available(device_id, mapper)

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
        wanted = _wanted_mapper(device)
        if not device.protocol:
            message = "the device names no protocol (spec.protocol.protocolName), so no mapper serves it"
        elif wanted:
            message = f"mapper {wanted} (annotation {MAPPER_ANNOTATION}) is not registered on node {node}"
            message += f" for protocol {device.protocol}"
        else:
            message = f"no mapper for protocol {device.protocol} is registered on node {node}"
        self.twin.set_condition(device.id, MAPPER_AVAILABLE, "False", "NoMapper", message)

    def _reachable(self, mapper: Mapper) -> None:
        if not mapper.reachable:
            mapper.reachable = True
            log.info("mapper %s is reachable again", mapper.name)
        if not mapper.alive:
            mapper.alive = True
            self._route_protocol(mapper.protocol)  # it may serve its protocol again

    def _route_protocol(self, protocol: str) -> None:
        """Liveness decides between mappers of one protocol: route its devices again."""
        self._route({d.id for d in self.store.devices.values() if d.protocol == protocol})

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
