"""One device at run time: its driver connection, per-property collect and push loops, its state.

Every device owns its tasks and its driver instance, and every driver call runs under a timeout, so
a slow or broken device only ever delays itself. ``update`` compares the old and new configuration
and restarts only the loops whose inputs changed; the driver is reopened only when the protocol
config changed (KubeEdge restarts the whole device on every update, issue #6269).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar, Protocol

from kubeshore.backoff import Backoff
from mappers.sdk import _metrics, _values
from mappers.sdk._types import DeviceConfig, DeviceModel, DeviceState, ModelProperty, PropertyConfig, Reading
from mappers.sdk.driver import DeviceUnavailable, Driver, WriteRejected

log = logging.getLogger("mappers.device")
# An unchanged state is reported again this often (edgecore forwards it to the cloud once a minute).
STATE_REFRESH_S = 30.0

#: errors that mean "the device is gone", as opposed to "this property failed"
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (DeviceUnavailable, OSError, TimeoutError)


@dataclass(frozen=True)
class RuntimeSettings:
    read_timeout_s: float = 5.0
    open_timeout_s: float = 10.0
    reconnect_min_s: float = 0.5
    reconnect_max_s: float = 10.0


class RuntimeEvents(Protocol):
    """What a device tells the rest of the mapper (implemented by ``_mapper.Mapper``)."""

    def twin_updated(self, device: DeviceRuntime, reading: Reading) -> None: ...

    def state_changed(self, device: DeviceRuntime) -> None: ...

    def push(self, device: DeviceRuntime, prop: PropertyConfig, reading: Reading) -> None: ...


@dataclass
class TwinValue:
    reading: Reading | None = None
    error: str = ""


@dataclass
class _PropertyTasks:
    #: a pending subscription attempt (drivers that override ``subscribe``)
    collect: asyncio.Task[None] | None = None
    push: asyncio.Task[None] | None = None
    subscribed: bool = False


@dataclass
class _CollectGroup:
    """The polled properties of one device that share a collectCycle, read in one loop.

    Reads of a device never overlap anyway, so one task and one timer per cycle (instead of per
    property) costs the same latency and a fraction of the CPU. Properties join and leave without
    restarting the loop.
    """

    cycle_ms: int
    props: dict[str, PropertyConfig] = field(default_factory=dict)
    task: asyncio.Task[None] | None = None
    #: cleared on stop: some client libraries swallow a cancellation, the loop must still end
    active: bool = True


@dataclass
class UpdateResult:
    """What ``DeviceRuntime.update`` restarted; logged, and asserted on by tests."""

    reopened: bool = False
    changes: list[str] = field(default_factory=list)


class DeviceRuntime:
    def __init__(
        self,
        config: DeviceConfig,
        model: DeviceModel,
        driver_cls: type[Driver],
        events: RuntimeEvents,
        settings: RuntimeSettings,
        driver_options: Mapping[str, Any] | None = None,
    ) -> None:
        self.config = config
        self.model = model
        self._driver_cls = driver_cls
        self._events = events
        self._settings = settings
        self._driver_options = driver_options or {}
        self.driver: Driver | None = None
        self.twins: dict[str, TwinValue] = {}
        self.state = DeviceState.UNKNOWN
        #: property -> why its desired value was not applied (reported to edgecore with observedDesired)
        self.desired_errors: dict[str, str] = {}
        self._state_reported_at = 0.0
        self.last_online: datetime | None = None
        self.opens = 0
        self._lock = asyncio.Lock()
        self._lost = asyncio.Event()
        self._props: dict[str, _PropertyTasks] = {}
        self._groups: dict[int, _CollectGroup] = {}
        self._supervisor: asyncio.Task[None] | None = None
        self._state_task: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[Any]] = set()
        self._stopping = False
        self._inflight: tuple[asyncio.Task[Any], float] | None = None
        self._expired = False

    @property
    def id(self) -> str:
        return self.config.id

    @property
    def connected(self) -> bool:
        return self.driver is not None

    def model_property(self, name: str) -> ModelProperty | None:
        return self.model.properties.get(name)

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        self._supervisor = self._spawn(self._connection_loop(), "connect")
        self._state_task = self._spawn(self._state_loop(), "state")
        for prop in self.config.properties:
            self._props[prop.name] = _PropertyTasks()
            self._start_push(prop)

    def _tasks(self) -> list[asyncio.Task[Any]]:
        tasks: list[asyncio.Task[Any]] = [t for t in (self._supervisor, self._state_task) if t is not None]
        for pt in self._props.values():
            tasks.extend(t for t in (pt.collect, pt.push) if t is not None)
        tasks.extend(g.task for g in self._groups.values() if g.task is not None)
        tasks.extend(self._background)
        return [t for t in tasks if not t.done()]

    async def stop(self) -> None:
        self._stopping = True
        for group in self._groups.values():
            group.active = False
        # Loop: a task finishing its current step may have started another before seeing the flag.
        while tasks := self._tasks():
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        self._props.clear()
        self._groups.clear()
        await self._close_driver()
        self._stopping = False

    def _spawn(self, coro: Coroutine[Any, Any, None], what: str) -> asyncio.Task[None]:
        if self._stopping:
            coro.close()
            raise asyncio.CancelledError
        return asyncio.get_running_loop().create_task(coro, name=f"{self.id}:{what}")

    # -- connection ------------------------------------------------------------------------------

    async def _connection_loop(self) -> None:
        backoff = Backoff(self._settings.reconnect_min_s, self._settings.reconnect_max_s)
        while True:
            driver = self._driver_cls(self.config, self._driver_options)
            try:
                async with asyncio.timeout(self._settings.open_timeout_s):
                    await driver.open(self.config.protocol)
            except asyncio.CancelledError:
                await _close_quietly(driver)
                raise
            except Exception as exc:
                log.warning(
                    "device %s: cannot open (%s); retry in %.1fs", self.id, _describe(exc), backoff.nominal
                )
                await _close_quietly(driver)
                self._set_state(DeviceState.OFFLINE)
                await backoff.sleep()
                continue
            self.opens += 1
            self.driver = driver
            self._lost = asyncio.Event()
            backoff.reset()
            log.info("device %s: connected", self.id)
            self._set_state(DeviceState.ONLINE)
            for prop in self.config.properties:
                self._apply_desired(prop)
                self._start_collect(prop)
            await self._lost.wait()
            log.warning("device %s: connection lost; reconnecting", self.id)
            await self._stop_collects()
            await self._close_driver()
            self._set_state(DeviceState.OFFLINE)
            await backoff.sleep()

    async def _close_driver(self) -> None:
        driver, self.driver = self.driver, None
        if driver is not None:
            await _close_quietly(driver)

    async def _stop_collects(self) -> None:
        tasks = [g.task for g in self._groups.values() if g.task is not None]
        for group in self._groups.values():
            group.task = None
            group.active = False
        self._groups.clear()
        for t in tasks:
            t.cancel()
        for pt in self._props.values():
            if pt.collect is not None:
                pt.collect.cancel()
                tasks.append(pt.collect)
                pt.collect = None
            pt.subscribed = False
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _call(self, fn: Callable[[Driver], Awaitable[Any]]) -> Any:
        """Run one driver call: never two at once on a device, always under the read timeout.

        The timeout is enforced by the shared watchdog rather than a timer per call: with thousands
        of reads per second, per-call timers dominated the mapper's CPU.
        """
        driver = self.driver
        if driver is None:
            raise DeviceUnavailable(f"device {self.id} is not connected")
        async with self._lock:
            task = asyncio.current_task()
            assert task is not None
            self._inflight = (task, asyncio.get_running_loop().time() + self._settings.read_timeout_s)
            _Watchdog.busy.add(self)
            _Watchdog.ensure_running()
            try:
                return await fn(driver)
            except asyncio.CancelledError:
                if self._expired:
                    self._expired = False
                    task.uncancel()
                    raise TimeoutError(f"no answer within {self._settings.read_timeout_s}s") from None
                raise
            finally:
                self._inflight = None
                _Watchdog.busy.discard(self)

    def _expire_if_overdue(self, now: float) -> None:
        inflight = self._inflight
        if inflight is not None and now > inflight[1] and not self._expired:
            self._expired = True
            inflight[0].cancel()

    def _connection_failed(self, exc: BaseException) -> None:
        if not self._lost.is_set():
            log.warning("device %s: %s", self.id, _describe(exc))
            self._lost.set()

    # -- properties ------------------------------------------------------------------------------

    def _start_collect(self, prop: PropertyConfig) -> None:
        pt = self._props.setdefault(prop.name, _PropertyTasks())
        driver = self.driver
        if driver is None:
            return
        if type(driver).subscribe is Driver.subscribe:
            self._join_group(prop)
        else:
            pt.collect = self._spawn(self._subscribe_or_poll(prop, pt), f"subscribe:{prop.name}")

    def _join_group(self, prop: PropertyConfig) -> None:
        group = self._groups.get(prop.collect_cycle_ms)
        if group is None:
            group = _CollectGroup(prop.collect_cycle_ms)
            self._groups[prop.collect_cycle_ms] = group
        group.props[prop.name] = prop
        if group.task is None or group.task.done():
            group.task = self._spawn(self._group_loop(group), f"collect:{prop.collect_cycle_ms}ms")

    def _leave_group(self, name: str) -> None:
        for cycle, group in list(self._groups.items()):
            if group.props.pop(name, None) is not None and not group.props:
                group.active = False
                if group.task is not None:
                    group.task.cancel()
                del self._groups[cycle]

    def _start_push(self, prop: PropertyConfig) -> None:
        pt = self._props.setdefault(prop.name, _PropertyTasks())
        if prop.push is not None and prop.push.targets():
            pt.push = self._spawn(self._push_loop(prop), f"push:{prop.name}")

    async def _subscribe_or_poll(self, prop: PropertyConfig, pt: _PropertyTasks) -> None:
        def on_value(raw: Any) -> None:
            if self._props.get(prop.name) is pt:
                self._record(prop.name, raw)

        try:
            pt.subscribed = bool(await self._call(lambda d: d.subscribe(prop.visitor, on_value)))
        except CONNECTION_ERRORS as exc:
            self._connection_failed(exc)
            return
        except Exception as exc:
            log.warning("device %s property %s: subscribe failed (%s); polling", self.id, prop.name, exc)
        if pt.subscribed:
            log.info("device %s property %s: subscribed, not polling", self.id, prop.name)
        else:
            self._join_group(prop)

    async def _group_loop(self, group: _CollectGroup) -> None:
        loop = asyncio.get_running_loop()
        cycle = max(group.cycle_ms, 1) / 1000
        deadline = loop.time()
        while group.props and group.active and not self._stopping:
            for name, prop in list(group.props.items()):
                if not group.active:
                    return
                if group.props.get(name) is not prop:
                    continue  # changed or removed during this pass
                try:
                    raw = await self._call(lambda d, v=prop.visitor: d.read(v))  # type: ignore[misc]
                except CONNECTION_ERRORS as exc:
                    self._connection_failed(exc)
                    return
                except Exception as exc:
                    if group.props.get(name) is prop:
                        self._record_error(name, exc)
                else:
                    if group.props.get(name) is prop:
                        self._record(name, raw)
            deadline += cycle
            delay = deadline - loop.time()
            if delay < 0:
                # Behind schedule (slow device): skip missed cycles rather than bursting reads.
                deadline = loop.time()
                delay = 0
            await asyncio.sleep(delay)

    def _record(self, name: str, raw: Any) -> None:
        mprop = self.model_property(name)
        try:
            value = _values.normalize(raw, mprop)
        except ValueError as exc:
            self._record_error(name, exc)
            return
        ptype = mprop.type.value if mprop is not None else "STRING"
        reading = Reading(
            self.config.namespace, self.config.name, name, _values.to_text(value, mprop), ptype, _now_ms()
        )
        twin = self.twins.setdefault(name, TwinValue())
        had_error = bool(twin.error)
        twin.reading, twin.error = reading, ""
        if had_error:
            self._refresh_derived_state()
        self._events.twin_updated(self, reading)

    def _record_error(self, name: str, exc: BaseException) -> None:
        _metrics.read_errors.labels(self._driver_cls.protocol or self._driver_cls.__name__).inc()
        twin = self.twins.setdefault(name, TwinValue())
        if not twin.error:
            log.warning("device %s property %s: read failed: %s", self.id, name, _describe(exc))
        twin.error = _describe(exc)
        self._refresh_derived_state()

    async def _push_loop(self, prop: PropertyConfig) -> None:
        cycle = max(prop.report_cycle_ms, 1) / 1000
        last: Reading | None = None
        while True:
            await asyncio.sleep(cycle)
            twin = self.twins.get(prop.name)
            if twin is not None and twin.reading is not None and twin.reading is not last:
                last = twin.reading
                self._events.push(self, prop, twin.reading)

    # -- writes ----------------------------------------------------------------------------------

    async def write(self, name: str, text: str) -> Any:
        """Check and write one property; returns the typed value written."""
        prop = self.config.property(name)
        if prop is None:
            raise WriteRejected(f"device {self.id} has no property {name!r}")
        value = _values.check_write(self.model_property(name), text, name=name)
        await self._call(lambda d: d.write(prop.visitor, value))
        log.info("device %s property %s: wrote %s", self.id, name, text)
        with contextlib.suppress(Exception):
            self._record(name, await self._call(lambda d: d.read(prop.visitor)))
        return value

    async def read_now(self, name: str) -> Reading:
        """Read one property from the device right now (REST), recording it like a collect."""
        prop = self.config.property(name)
        if prop is None:
            raise KeyError(f"device {self.id} has no property {name!r}")
        self._record(name, await self._call(lambda d: d.read(prop.visitor)))
        twin = self.twins[name]
        if twin.reading is None or twin.error:
            raise ValueError(twin.error or f"property {name}: no value")
        return twin.reading

    def _apply_desired(self, prop: PropertyConfig) -> None:
        mprop = self.model_property(prop.name)
        if not prop.desired or mprop is None or mprop.read_only:
            return

        async def apply() -> None:
            try:
                await self.write(prop.name, prop.desired)
                self.desired_errors.pop(prop.name, None)
            except WriteRejected as exc:
                self.desired_errors[prop.name] = f"{prop.desired!r} refused: {exc}"
                log.warning("device %s: desired value not applied: %s", self.id, exc)
            except CONNECTION_ERRORS as exc:
                self._connection_failed(exc)
            except Exception as exc:
                self.desired_errors[prop.name] = f"writing {prop.desired!r} failed: {_describe(exc)}"
                log.warning("device %s property %s: desired write failed: %s", self.id, prop.name, exc)

        task = asyncio.get_running_loop().create_task(apply())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # -- state -----------------------------------------------------------------------------------

    def _derived_state(self) -> DeviceState:
        if self.driver is None:
            return DeviceState.OFFLINE
        if any(t.error for t in self.twins.values()):
            return DeviceState.UNHEALTHY
        return DeviceState.ONLINE

    def _refresh_derived_state(self) -> None:
        self._set_state(self._derived_state())

    def _set_state(self, state: DeviceState) -> None:
        if state in (DeviceState.ONLINE, DeviceState.OK):
            self.last_online = datetime.now(UTC)
        if state != self.state:
            log.info("device %s: %s -> %s", self.id, self.state.value, state.value)
            self.state = state
            self._events.state_changed(self)

    async def _state_loop(self) -> None:
        """Ask the driver for its own view on the state cycle; report changes at once."""
        while not self._stopping:
            await asyncio.sleep(max(self.config.state_report_cycle_ms, 100) / 1000)
            state = self._derived_state()
            if self.driver is not None:
                try:
                    state = await self._call(lambda d: d.state()) or state
                except CONNECTION_ERRORS as exc:
                    self._connection_failed(exc)
                    continue
                except Exception as exc:
                    log.warning("device %s: state() failed: %s", self.id, _describe(exc))
            changed = state != self.state
            self._set_state(state)
            now = time.monotonic()
            if changed:
                self._state_reported_at = now
            elif now - self._state_reported_at >= STATE_REFRESH_S:
                # The same state again, so that edgecore's lastOnlineTime (the last time the device
                # was reported online) moves on. KubeEdge's mappers report every cycle; edgecore
                # passes it on to the cloud at most every minute, so more often would be wasted calls.
                self._state_reported_at = now
                self._events.state_changed(self)

    # -- update ----------------------------------------------------------------------------------

    async def update(self, config: DeviceConfig, model: DeviceModel) -> UpdateResult:
        old = self.config
        result = UpdateResult()
        self.model = model
        if config.connection_key() != old.connection_key():
            await self.stop()
            self.config = config
            self.twins.clear()
            self.start()
            result.reopened = True
            result.changes.append("protocol changed: device reopened")
            return result
        self.config = config
        old_props = {p.name: p for p in old.properties}
        new_props = {p.name: p for p in config.properties}
        for name in old_props.keys() - new_props.keys():
            await self._stop_property(old_props[name])
            self.twins.pop(name, None)
            result.changes.append(f"property {name}: removed")
        for name, prop in new_props.items():
            before = old_props.get(name)
            if before is None:
                self._props[name] = _PropertyTasks()
                self._start_collect(prop)
                self._start_push(prop)
                self._apply_desired(prop)
                result.changes.append(f"property {name}: added")
                continue
            if before.collection_key() != prop.collection_key():
                await self._restart_collect(before, prop)
                result.changes.append(f"property {name}: collection restarted")
            if (before.report_cycle_ms, before.push) != (prop.report_cycle_ms, prop.push):
                pt = self._props.setdefault(name, _PropertyTasks())
                await _cancel(pt.push)
                pt.push = None
                self._start_push(prop)
                result.changes.append(f"property {name}: push restarted")
            if before.desired != prop.desired and self.driver is not None:
                self._apply_desired(prop)
                result.changes.append(f"property {name}: desired {prop.desired!r} written")
        if old.state_report_cycle_ms != config.state_report_cycle_ms and self._state_task is not None:
            await _cancel(self._state_task)
            self._state_task = self._spawn(self._state_loop(), "state")
            result.changes.append("state cycle changed")
        return result

    async def _restart_collect(self, before: PropertyConfig, prop: PropertyConfig) -> None:
        pt = self._props.setdefault(prop.name, _PropertyTasks())
        await _cancel(pt.collect)
        pt.collect = None
        self._leave_group(prop.name)
        if pt.subscribed and self.driver is not None:
            with contextlib.suppress(Exception):
                await self._call(lambda d: d.unsubscribe(before.visitor))
        pt.subscribed = False
        # A fresh holder makes callbacks of the old subscription stale.
        fresh = _PropertyTasks(push=pt.push)
        self._props[prop.name] = fresh
        self._start_collect(prop)

    async def _stop_property(self, before: PropertyConfig) -> None:
        pt = self._props.pop(before.name, None)
        if pt is None:
            return
        await _cancel(pt.collect)
        await _cancel(pt.push)
        self._leave_group(before.name)
        if pt.subscribed and self.driver is not None:
            with contextlib.suppress(Exception):
                await self._call(lambda d: d.unsubscribe(before.visitor))

    # -- views -----------------------------------------------------------------------------------

    def readings(self) -> list[Reading]:
        return [t.reading for t in self.twins.values() if t.reading is not None]


class _Watchdog:
    """One task per event loop that times out overdue driver calls of every device."""

    INTERVAL_S = 0.1
    #: devices with a driver call in progress
    busy: ClassVar[set[DeviceRuntime]] = set()
    _task: ClassVar[asyncio.Task[None] | None] = None

    @classmethod
    def ensure_running(cls) -> None:
        task = cls._task
        if task is None or task.done() or task.get_loop() is not asyncio.get_running_loop():
            cls._task = asyncio.get_running_loop().create_task(cls._run(), name="driver-call-watchdog")

    @classmethod
    async def _run(cls) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(cls.INTERVAL_S)
            now = loop.time()
            for device in list(cls.busy):
                device._expire_if_overdue(now)


async def _cancel(task: asyncio.Task[Any] | None) -> None:
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task


async def _close_quietly(driver: Driver) -> None:
    try:
        async with asyncio.timeout(5):
            await driver.close()
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        log.debug("driver close failed: %s", exc)


def _describe(exc: BaseException) -> str:
    text = str(exc)
    if isinstance(exc, TimeoutError) and not text:
        return "timed out"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _now_ms() -> int:
    return time.time_ns() // 1_000_000
