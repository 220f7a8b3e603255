"""Row "JSON nested 100,000 deep on the websocket; non-JSON payload on membership/get:
RecursionError / unhandled traceback; unknown operations log one warning line per message".

Bounds: cloudhub closes a session whose frame nests 100,000 deep with code 1007 and a reason,
counts it, and the node reconnects; 20,000 messages with an unknown operation are counted one by
one, logged in at most 3 lines, and the session keeps serving (a valid message after them is
answered within 30 s); on the edge's broker, a non-JSON membership/get, a twin update nested
100,000 deep and an unknown operation are answered or counted with a reason; no process logs a
traceback.
"""

from __future__ import annotations

import asyncio
import json

from _stack import wait_for

from kubeshore.message import Message
from robustness._robust import App, HostileNode, RobustStack, twin_update

DEEP = "[" * 100_000 + "]" * 100_000


def _refusals(stack: RobustStack, reason: str) -> float:
    return stack.samples("cloudcore").get(f'cloudhub_refusals_total{{reason="{reason}"}}', 0.0)


async def test_cloudhub_refuses_malformed_frames(stack: RobustStack) -> None:
    run = asyncio.to_thread
    node = HostileNode(stack, "edge-3")
    malformed = await run(_refusals, stack, "malformed_frame")
    unknown = await run(_refusals, stack, "unknown_operation")
    log_lines = len(stack.log("cloudcore").splitlines())

    async with node:
        await node.send_raw('{"header":{},"route":{},"content":' + DEEP + "}")
        await run(wait_for, lambda: node.closed is not None, 30, "session closed")
        assert node.closed.code == 1007 and "nested too deeply" in node.closed.reason, node.closed
    assert await run(_refusals, stack, "malformed_frame") == malformed + 1

    async with node:
        frame = Message.new(
            source="twin", group="resource", operation="frobnicate", resource="device/default/x/twin/y"
        ).to_json()
        for _ in range(20_000):
            await node.send_raw(frame)
        mid = await node.send("device/default/not-here/twin/edge_updated", twin_update({"p0": "1"}))
        assert await node.answer(mid, within=30) == "OK"
        assert node.closed is None
    assert await run(_refusals, stack, "unknown_operation") == unknown + 20_000
    new = stack.log("cloudcore").splitlines()[log_lines:]
    assert len([line for line in new if "unknown operation" in line]) <= 3
    assert "Traceback" not in stack.log("cloudcore") and "RecursionError" not in stack.log("cloudcore")


async def test_edge_mqtt_refuses_malformed_input(stack: RobustStack) -> None:
    before = await asyncio.to_thread(stack.samples, "edgecore")
    membership = "$hw/events/node/edge-1/membership/get"
    base = "$hw/events/device/default/meter-2"
    async with App(stack.broker) as app:
        app.publish(membership, b"\xff not json")
        result = await app.expect(membership + "/result")
        assert result["code"] == 400 and "not valid JSON" in result["reason"], result

        app.publish(base + "/twin/update", DEEP)
        result = await app.expect(base + "/twin/update/result")
        assert result["code"] == 400 and "not valid JSON" in result["reason"], result

        app.publish(base + "/twin/frobnicate", json.dumps({"event_id": "u1"}))
        # The node still answers afterwards.
        app.publish(membership, json.dumps({"event_id": "m1"}))
        result = await app.expect(membership + "/result", lambda d: d["event_id"] == "m1")
        assert any(d["id"] == "default/meter-2" for d in result["devices"])
    after = await asyncio.to_thread(stack.samples, "edgecore")

    def grew(kind: str) -> float:
        key = f'edgecore_mqtt_refused_total{{kind="{kind}"}}'
        return after.get(key, 0) - before.get(key, 0)

    assert grew("payload") >= 1 and grew("twin") >= 1 and grew("operation") >= 1, after
    assert "Traceback" not in stack.log("edgecore")
