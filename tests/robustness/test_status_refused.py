"""Row "one MQTT update with 1,000 junk twins: every later DeviceStatus write fails with 413 and is
retried for ever, the device's values never reach the cloud again, the wedge survives a cloudcore
restart".

The edge now refuses such updates (test_twin_validation); here a node speaks to cloudhub itself, as
a broken edgecore would, to show the cloud side. Bounds: a report the API server refuses (413) is
answered within 30 s (OK with the junk left out, or ``refused: ...``) and never retried: the
writer's error count does not grow; an Event ``DeviceStatusRefused`` names the device; the next good
value is in DeviceStatus within 30 s, also after a kill -9 and restart of cloudcore; ten more
refused 3.5 MB reports grow cloudcore's RSS by less than 60 MB.
"""

from __future__ import annotations

import asyncio
import json

from _stack import wait_for

from robustness._robust import CLOUD_CONFIG, HostileNode, RobustStack, device, twin_update

RESOURCE = "device/default/junk-1/twin/edge_updated"


async def _good_value(node: HostileNode, stack: RobustStack, value: str) -> None:
    """Report p0=value until DeviceStatus shows it (the cloud may not know the device yet)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 60
    while True:
        await node.send(RESOURCE, twin_update({"p0": value}))
        try:
            await asyncio.to_thread(wait_for, lambda: stack.reported("junk-1").get("p0") == value, 5, "p0")
            return
        except AssertionError:
            if loop.time() > deadline:
                raise


def _rss_mb(stack: RobustStack) -> float:
    with open(f"/proc/{stack.procs['cloudcore'].pid}/status") as f:
        kb = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
    return kb / 1024


def _refused_events(stack: RobustStack) -> list[dict[str, object]]:
    items = json.loads(stack.kubectl("get", "events", "-n", "default", "-o", "json"))["items"]
    return [
        e
        for e in items
        if e.get("reason") == "DeviceStatusRefused" and e["involvedObject"]["name"] == "junk-1"
    ]


async def test_a_refused_status_write_is_not_retried_for_ever(stack: RobustStack) -> None:
    run = asyncio.to_thread
    node = HostileNode(stack, "edge-2")
    await run(stack.apply_objects, device("junk-1", node="edge-2"))
    junk = {f"junk{i}": "j" * 4096 for i in range(1000)}
    async with node:
        await _good_value(node, stack, "1")
        errors = (await run(stack.samples, "cloudcore")).get(
            'devicecontroller_status_writes_total{result="error"}'
        )

        # 4 MB of junk twins next to a good value: 413; written again without the junk.
        mid = await node.send(RESOURCE, twin_update({**junk, "p0": "2"}))
        assert await node.answer(mid) == "OK"
        await run(wait_for, lambda: stack.reported("junk-1").get("p0") == "2", 30, "p0=2 without the junk")
        assert not any(name.startswith("junk") for name in stack.reported("junk-1"))

        # A property of the Device with a 3.5 MB value: refused for good, answered so.
        mid = await node.send(RESOURCE, twin_update({"note": "n" * 3_500_000}))
        answer = await node.answer(mid)
        assert isinstance(answer, str) and answer.startswith("refused") and "413" in answer, answer

        await _good_value(node, stack, "3")
        events = await run(_refused_events, stack)
        assert events and "413" in str(events[0]["message"]), events

        # The same junk again and again: answered each time, and cloudcore's memory stays put.
        rss_before = _rss_mb(stack)
        for _ in range(10):
            mid = await node.send(RESOURCE, twin_update({"note": "n" * 3_500_000}))
            assert str(await node.answer(mid)).startswith("refused")
        assert _rss_mb(stack) - rss_before < 60, (rss_before, _rss_mb(stack))

    # cloudcore restarts; the broken node sends the same again: still no wedge.
    stack.kill9("cloudcore")
    await run(lambda: stack.start_cloudcore(same_ports=True, **CLOUD_CONFIG))
    await run(wait_for, lambda: stack.scrape("cloudcore", "/readyz")[0] == 200, 60, "cloudcore ready")
    async with node:
        mid = await node.send(RESOURCE, twin_update({"note": "n" * 3_500_000}))
        assert str(await node.answer(mid, within=60)).startswith("refused")
        await _good_value(node, stack, "4")
        await asyncio.sleep(2)  # a retry loop would show here
        samples = await run(stack.samples, "cloudcore")
        assert samples['devicecontroller_status_writes_total{result="refused"}'] >= 1
        assert samples['devicecontroller_status_writes_total{result="error"}'] == 0, samples
    assert errors == 0
    assert "Traceback" not in stack.log("cloudcore")
