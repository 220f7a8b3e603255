"""The device runtime and mapper core with the virtual driver, edgecore replaced by the Reporter's
send functions recording what would go on the wire."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import pytest

from mappers.sdk import DeviceConfig, DeviceModel, DeviceState, ModelProperty, PropertyConfig, PropertyType
from mappers.sdk._device import DeviceRuntime, RuntimeSettings
from mappers.sdk._mapper import Mapper
from mappers.sdk._report import Reporter
from mappers.sdk._types import Reading
from mappers.virtual import VirtualDriver

Until = Callable[..., Coroutine[Any, Any, None]]
FAST = RuntimeSettings(read_timeout_s=0.3, open_timeout_s=1, reconnect_min_s=0.1, reconnect_max_s=0.2)


class Wire:
    def __init__(self) -> None:
        self.statuses: list[tuple[str, list[Reading]]] = []
        self.states: list[tuple[str, str]] = []

    async def status(self, device: DeviceRuntime, readings: list[Reading]) -> None:
        self.statuses.append((device.id, readings))

    async def state(self, device: DeviceRuntime) -> None:
        self.states.append((device.id, device.state.value))


@pytest.fixture
async def wired() -> AsyncIterator[tuple[Mapper, Wire]]:
    wire = Wire()
    reporter = Reporter(wire.status, wire.state, lambda exc: False, window_s=0.02)
    reporter.ready.set()
    mapper = Mapper(VirtualDriver, settings=FAST, reporter=reporter)
    task = asyncio.create_task(reporter.run())
    yield mapper, wire
    await mapper.close()
    task.cancel()


MODEL = DeviceModel(
    "default",
    "thermo",
    {
        "temp": ModelProperty("temp", PropertyType.DOUBLE, "ReadOnly"),
        "setpoint": ModelProperty("setpoint", PropertyType.INT, minimum="0", maximum="40"),
        "count": ModelProperty("count", PropertyType.INT, "ReadOnly"),
    },
)


def device(name: str = "t1", **protocol: object) -> DeviceConfig:
    return DeviceConfig(
        namespace="default",
        name=name,
        model="thermo",
        protocol_name="virtual",
        protocol=dict(protocol),
        properties=(
            PropertyConfig("temp", {"kind": "sine", "offset": 20, "amplitude": 2}, collect_cycle_ms=50),
            PropertyConfig("setpoint", {"kind": "constant", "value": 10}, desired="21", collect_cycle_ms=50),
            PropertyConfig("count", {"kind": "counter"}, collect_cycle_ms=50),
        ),
        state_report_cycle_ms=100,
    )


def value(rt: DeviceRuntime, prop: str) -> str | None:
    twin = rt.twins.get(prop)
    return twin.reading.value if twin is not None and twin.reading is not None else None


async def test_twins_batched_per_device_desired_written(wired: tuple[Mapper, Wire], until: Until) -> None:
    mapper, wire = wired
    await mapper.upsert_model(MODEL)
    await mapper.add_device(device())
    await until(lambda: any(len(r) == 3 for _, r in wire.statuses))
    rt = mapper.get("default", "t1")
    await until(lambda: value(rt, "setpoint") == "21")
    assert ("default/t1", "online") in wire.states
    assert rt.twins["temp"].reading is not None and rt.twins["temp"].reading.type == "DOUBLE"


async def test_update_changes_only_what_changed(wired: tuple[Mapper, Wire], until: Until) -> None:
    mapper, _ = wired
    await mapper.upsert_model(MODEL)
    base = device()
    await mapper.add_device(base)
    rt = mapper.get("default", "t1")
    await until(lambda: "count" in rt.twins and rt.twins["count"].reading is not None)
    loop_task = rt._groups[50].task

    props = list(base.properties)
    props[1] = dataclasses.replace(props[1], desired="30")
    props[2] = dataclasses.replace(props[2], visitor={"kind": "counter", "value": 1000})
    result = await mapper.update_device(dataclasses.replace(base, properties=tuple(props)))
    assert result is not None and not result.reopened
    assert sorted(result.changes) == [
        "property count: collection restarted",
        "property setpoint: desired '30' written",
    ]
    assert rt.opens == 1
    # the properties' collect loop kept running; only count's visitor was swapped in it
    assert rt._groups[50].task is loop_task and loop_task is not None and not loop_task.done()
    await until(lambda: value(rt, "setpoint") == "30")
    await until(lambda: int(value(rt, "count") or 0) > 1000)

    result = await mapper.update_device(dataclasses.replace(base, protocol={"seed": "x"}))
    assert result is not None and result.reopened
    await until(lambda: rt.opens == 2 and rt.state is DeviceState.ONLINE)


async def test_slow_device_does_not_stall_others(wired: tuple[Mapper, Wire], until: Until) -> None:
    mapper, wire = wired
    await mapper.upsert_model(MODEL)
    await mapper.add_device(device("slow", latencyMs=5000))
    await mapper.add_device(device("fast"))
    fast = mapper.get("default", "fast")
    slow = mapper.get("default", "slow")
    await until(lambda: sum(1 for d, _ in wire.statuses if d == "default/fast") >= 5)
    await until(lambda: ("default/slow", "offline") in wire.states)
    assert fast.state is DeviceState.ONLINE
    assert slow.twins.get("temp") is None or slow.twins["temp"].reading is None


async def test_offline_and_unhealthy_states(wired: tuple[Mapper, Wire], until: Until) -> None:
    mapper, wire = wired
    await mapper.upsert_model(MODEL)
    await mapper.add_device(device("down", offline=True))
    await mapper.add_device(device("broken", failReads=True))
    await until(lambda: ("default/down", "offline") in wire.states)
    await until(lambda: ("default/broken", "unhealthy") in wire.states)
    assert mapper.get("default", "broken").last_online is not None
    assert mapper.get("default", "down").last_online is None
    assert await mapper.remove_device("default", "down")
    assert "default/down" not in mapper.devices


async def test_writes_are_checked_against_the_model(wired: tuple[Mapper, Wire], until: Until) -> None:
    mapper, _ = wired
    await mapper.upsert_model(MODEL)
    await mapper.add_device(device())
    rt = mapper.get("default", "t1")
    await until(lambda: rt.connected)
    from mappers.sdk import WriteRejected

    with pytest.raises(WriteRejected, match="ReadOnly"):
        await mapper.write("default", "t1", "temp", "3")
    with pytest.raises(WriteRejected, match="above the maximum 40"):
        await mapper.write("default", "t1", "setpoint", "41")
    assert await mapper.write("default", "t1", "setpoint", "39") == 39
    assert rt.twins["setpoint"].reading is not None and rt.twins["setpoint"].reading.value == "39"


async def test_unchanged_state_is_reported_again_and_refusals_say_why(
    wired: tuple[Mapper, Wire], until: Until, monkeypatch: pytest.MonkeyPatch
) -> None:
    """edgecore's lastOnlineTime needs the same state again now and then (every STATE_REFRESH_S, not
    every cycle); a desired value the model refuses is kept with its reason for the next report."""
    monkeypatch.setattr("mappers.sdk._device.STATE_REFRESH_S", 0.3)
    mapper, wire = wired
    await mapper.upsert_model(MODEL)
    base = device()
    props = list(base.properties)
    props[1] = dataclasses.replace(props[1], desired="45")  # above the maximum 40
    await mapper.add_device(dataclasses.replace(base, properties=tuple(props)))
    rt = mapper.get("default", "t1")
    await until(lambda: ("default/t1", "online") in wire.states)
    before = wire.states.count(("default/t1", "online"))
    await asyncio.sleep(1.0)
    again = wire.states.count(("default/t1", "online")) - before
    assert 1 <= again <= 4, again  # one per 0.3 s refresh, not one per 100 ms cycle
    await until(lambda: "setpoint" in rt.desired_errors)
    assert "above the maximum 40" in rt.desired_errors["setpoint"] and "'45'" in rt.desired_errors["setpoint"]
