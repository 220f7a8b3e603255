from __future__ import annotations

import asyncio
from typing import Any

from cloudcore.devicecontroller import StatusWriter


def twin(actual: str, ts: int, expected: str | None = None) -> dict[str, Any]:
    t: dict[str, Any] = {
        "actual": {"value": actual, "metadata": {"timestamp": ts}},
        "metadata": {"type": "int"},
    }
    if expected is not None:
        t["expected"] = {"value": expected, "metadata": {"timestamp": ts}}
    return t


class Api:
    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], dict[str, Any]] = {("default", "t1"): {"status": {}}}
        self.patches: list[dict[str, Any]] = []
        self.fail = 0

    async def patch(self, ns: str, name: str, body: dict[str, Any]) -> bool:
        if self.fail:
            self.fail -= 1
            raise ConnectionError("apiserver away")
        obj = self.objects.get((ns, name))
        if obj is None:
            return False
        self.patches.append(body)
        obj["status"].update(body["status"])
        return True

    def current(self, ns: str, name: str) -> dict[str, Any] | None:
        return self.objects.get((ns, name))


async def test_coalesces_to_one_write_with_newest_values() -> None:
    api = Api()
    w = StatusWriter(api.patch, api.current, flush_interval=0.01)
    replies: list[int] = []
    for i in range(100):
        w.twin_report(
            ("default", "t1"), {"temp": twin(str(i), 1000 + i, "30")}, lambda i=i: replies.append(i)
        )
    w.state_report(("default", "t1"), "online", "2026-01-01T00:00:00Z")
    await w.flush()
    assert len(api.patches) == 1
    status = api.objects[("default", "t1")]["status"]
    assert status["twins"] == [
        {
            "propertyName": "temp",
            "reported": {"value": "99", "metadata": {"timestamp": "1099", "type": "int"}},
            "observedDesired": {"value": "30", "metadata": {"timestamp": "1099", "type": "int"}},
        }
    ]
    assert status["state"] == "online" and status["lastOnlineTime"] == "2026-01-01T00:00:00Z"
    assert len(replies) == 100


async def test_never_regresses_and_retries_failed_writes() -> None:
    api = Api()
    w = StatusWriter(api.patch, api.current, flush_interval=0.01)
    w.twin_report(("default", "t1"), {"temp": twin("5", 5000), "hum": twin("40", 5000)})
    await w.flush()
    # A late message with an older timestamp does not overwrite; other properties are kept.
    w.twin_report(("default", "t1"), {"temp": twin("4", 4000)})
    await w.flush()
    twins = {t["propertyName"]: t for t in api.objects[("default", "t1")]["status"]["twins"]}
    assert twins["temp"]["reported"]["value"] == "5" and twins["hum"]["reported"]["value"] == "40"
    # The API server fails once: nothing is lost, the reply waits for the write.
    api.fail = 1
    done = asyncio.Event()
    w.twin_report(("default", "t1"), {"temp": twin("6", 6000)}, done.set)
    await w.start()
    try:
        await asyncio.wait_for(done.wait(), 5)
    finally:
        await w.stop()
    twins = {t["propertyName"]: t for t in api.objects[("default", "t1")]["status"]["twins"]}
    assert twins["temp"]["reported"]["value"] == "6"


async def test_deleted_device_status_drops_values_and_replies() -> None:
    api = Api()
    w = StatusWriter(api.patch, api.current)
    replied: list[bool] = []
    w.twin_report(("default", "gone"), {"temp": twin("1", 1)}, lambda: replied.append(True))
    await w.flush()
    assert replied == [True] and api.patches == []


async def test_a_flush_keeps_only_a_few_writes_in_flight() -> None:
    """A flush of many devices is not one burst of requests that everything else waits behind."""
    api = Api()
    in_flight = peak = 0

    async def slow_patch(ns: str, name: str, body: dict[str, Any]) -> bool:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.001)
        in_flight -= 1
        return await api.patch(ns, name, body)

    for i in range(40):
        api.objects[("default", f"d{i}")] = {"status": {}}
    w = StatusWriter(slow_patch, api.current, concurrency=3)
    replies: list[str] = []
    for i in range(40):
        w.twin_report(("default", f"d{i}"), {"temp": twin("1", 1000)}, lambda i=i: replies.append(f"d{i}"))
    await w.flush()
    assert peak == 3
    assert len(api.patches) == 40 and len(replies) == 40


async def test_each_device_is_paced_on_its_own() -> None:
    """A first report is written at once; a device's next write waits for its own interval, not a
    global tick, so devices reporting at different times are written at different times."""
    api = Api()
    api.objects[("default", "t2")] = {"status": {}}
    loop = asyncio.get_running_loop()
    written: list[tuple[str, float]] = []

    async def patch(ns: str, name: str, body: dict[str, Any]) -> bool:
        written.append((name, loop.time()))
        return await api.patch(ns, name, body)

    w = StatusWriter(patch, api.current, flush_interval=0.4)
    await w.start()
    try:
        t0 = loop.time()
        w.twin_report(("default", "t1"), {"temp": twin("1", 1000)})
        await asyncio.sleep(0.1)
        w.twin_report(("default", "t1"), {"temp": twin("2", 2000)})  # coalesced: waits for t1's interval
        w.twin_report(("default", "t2"), {"temp": twin("9", 1000)})  # another device: written at once
        await asyncio.sleep(0.1)
        assert [n for n, _ in written] == ["t1", "t2"]
        assert written[0][1] - t0 < 0.1 and written[1][1] - t0 < 0.2
        await asyncio.sleep(0.4)
        assert [n for n, _ in written] == ["t1", "t2", "t1"]
        assert written[2][1] - written[0][1] >= 0.4 - 0.01  # at most one write per interval
        assert api.objects[("default", "t1")]["status"]["twins"][0]["reported"]["value"] == "2"
    finally:
        await w.stop()


async def test_a_change_after_a_put_off_report_is_written_at_once() -> None:
    """A report that changes nothing is put off for refresh_interval; a state change that arrives
    for the same device meanwhile is written within the flush interval, not an hour later."""
    api = Api()
    w = StatusWriter(api.patch, api.current, flush_interval=0.01, refresh_interval=3600)
    await w.start()
    try:
        w.twin_report(("default", "t1"), {"temp": twin("5", 5000)})
        await asyncio.sleep(0.1)
        w.twin_report(("default", "t1"), {"temp": twin("5", 6000)})  # only a newer timestamp
        await asyncio.sleep(0.1)
        w.state_report(("default", "t1"), "unhealthy", "")
        async with asyncio.timeout(5):
            while api.objects[("default", "t1")]["status"].get("state") != "unhealthy":  # noqa: ASYNC110
                await asyncio.sleep(0.01)
    finally:
        await w.stop()


async def test_reports_that_change_nothing_wait_for_the_refresh_interval() -> None:
    """A value read again, or the same state with a newer lastOnlineTime, is answered at once but not
    written until ``refresh_interval`` has passed (or something changes)."""
    api = Api()
    w = StatusWriter(api.patch, api.current, flush_interval=0.01, refresh_interval=3.0)
    key = ("default", "t1")
    await w.start()
    try:
        w.twin_report(key, {"temp": twin("20", 1000)})
        w.state_report(key, "online", "2026-01-01T00:00:00Z")
        for _ in range(500):
            if len(api.patches) == 1 and "state" in api.patches[0]["status"]:
                break
            await asyncio.sleep(0.01)
        assert len(api.patches) == 1, api.patches
        held_since = asyncio.get_running_loop().time()
        replies: list[int] = []
        for i in range(10):  # the same value read again, the same state reported again
            w.twin_report(key, {"temp": twin("20", 2000 + i)}, lambda i=i: replies.append(i))
            w.state_report(key, "online", f"2026-01-01T00:00:{10 + i}Z", lambda: replies.append(-1))
            await asyncio.sleep(0.03)
        if asyncio.get_running_loop().time() - held_since < 3.0:  # (a very slow machine: skip this check)
            assert len(api.patches) == 1, api.patches
        assert len(replies) == 20  # the edge does not wait for the held write
        for _ in range(1000):
            if api.patches[-1]["status"].get("lastOnlineTime") == "2026-01-01T00:00:19Z":
                break
            await asyncio.sleep(0.01)
        refresh = api.patches[-1]["status"]
        assert "state" not in refresh and refresh["lastOnlineTime"] == "2026-01-01T00:00:19Z"
        assert refresh["twins"][0]["reported"]["metadata"]["timestamp"] == "2009"
        written = len(api.patches)
        w.twin_report(key, {"temp": twin("21", 3000)})  # a change is written at the flush interval
        for _ in range(500):
            if len(api.patches) == written + 1:
                break
            await asyncio.sleep(0.01)
        assert api.patches[-1]["status"]["twins"][0]["reported"]["value"] == "21"
    finally:
        await w.stop()
