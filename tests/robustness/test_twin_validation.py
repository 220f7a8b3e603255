"""Rows "one MQTT twin update with a far-future timestamp: that twin froze on the edge and in the
cloud" and "one MQTT update with 1,000 junk twins: every later DeviceStatus write fails with 413".

Bounds: each bad update is answered on ``.../twin/update/result`` with code 400 and a reason within
10 s, counted in ``edgecore_mqtt_refused_total``, and changes nothing; the twin's next value from
its mapper reaches MQTT within 10 s and DeviceStatus within 30 s; 200 bad updates log at most 5
lines.
"""

from __future__ import annotations

import asyncio
import json
import time

from _stack import wait_for

from dmi.rpc import Channel
from robustness._robust import App, RobustStack, report

BASE = "$hw/events/device/default/meter-1"


def _update(event_id: str, twins: dict[str, object]) -> str:
    return json.dumps({"event_id": event_id, "timestamp": int(time.time() * 1000), "twin": twins})


async def test_bad_twin_updates_are_refused_and_do_not_freeze_the_twin(stack: RobustStack) -> None:
    run = asyncio.to_thread
    before = await run(stack.samples, "edgecore")
    now = int(time.time() * 1000)
    bad = {
        "future": {"p1": {"actual": {"value": "7", "metadata": {"timestamp": now + 3_600_000}}}},
        # 1 MB: larger messages are dropped by the MQTT client itself (its 2 MiB packet limit)
        "junk": {f"junk{i}": {"actual": {"value": "x" * 1000}} for i in range(1000)},
        "unknown": {"bogus": {"actual": {"value": "1"}}},
        "type": {"p1": {"actual": {"value": "warm"}}},
        "long": {"note": {"actual": {"value": "y" * 5000}}},
    }
    words = {
        "future": "in the future",
        "junk": "at most 256",
        "unknown": "not a property",
        "type": "not of type int",
        "long": "longer than",
    }
    async with App(stack.broker) as app:
        for event_id, twins in bad.items():
            app.publish(BASE + "/twin/update", _update(event_id, twins))
            result = await app.expect(BASE + "/twin/update/result", lambda d, e=event_id: d["event_id"] == e)
            assert result["code"] == 400 and words[event_id] in result["reason"], result

        # Nothing of it is on the twin, and the mapper's next value goes through at once.
        app.publish(BASE + "/twin/get", json.dumps({"event_id": "get-1"}))
        got = await app.expect(BASE + "/twin/get/result", lambda d: d["event_id"] == "get-1")
        assert set(got["twin"]) == {"p0", "p1", "p2", "note"}, sorted(got["twin"])[:10]
        ch = Channel(stack.dmi_socket())
        try:
            await report(ch, "meter-1", {"p1": "4242"})
        finally:
            await ch.close()
        doc = await app.expect(
            BASE + "/twin/update/document",
            lambda d: (d["twin"].get("p1") or {}).get("current", {}).get("actual", {}).get("value") == "4242",
        )
        assert doc["twin"]["p1"]["current"]["actual"]["metadata"]["timestamp"] <= time.time() * 1000 + 5000
    await run(wait_for, lambda: stack.reported("meter-1").get("p1") == "4242", 30, "p1=4242 in DeviceStatus")

    after = await run(stack.samples, "edgecore")
    key = 'edgecore_mqtt_refused_total{kind="twin"}'
    assert after[key] - before.get(key, 0) >= len(bad)


async def test_repeated_bad_updates_log_few_lines(stack: RobustStack) -> None:
    key = 'edgecore_mqtt_refused_total{kind="twin"}'
    counted = (await asyncio.to_thread(stack.samples, "edgecore")).get(key, 0)
    lines_before = len(stack.log("edgecore").splitlines())
    async with App(stack.broker) as app:
        for i in range(200):
            app.publish(BASE + "/twin/update", _update(f"b{i}", {"bogus": {"actual": {"value": "1"}}}))
        await app.expect(BASE + "/twin/update/result", lambda d: d["event_id"] == "b199", within=20)
    new = stack.log("edgecore").splitlines()[lines_before:]
    refused = [line for line in new if "refused" in line]
    # One line a minute per kind (none if an earlier test logged this kind in the last minute).
    assert len(refused) <= 5, refused
    assert (await asyncio.to_thread(stack.samples, "edgecore"))[key] - counted >= 200
    assert "Traceback" not in "\n".join(new)
