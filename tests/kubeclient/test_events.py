"""Events through the embedded API server: one Event per (object, reason, message) whose count grows,
also across a restart of the recorder; Events from edge nodes checked and attributed to the node."""

from __future__ import annotations

from pathlib import Path

from cloudcore.apiserver import EmbeddedAPIServer
from cloudcore.edgecontroller import EdgeEvents
from kubeclient import EVENTS, EventRecorder, Kube
from kubeshore.events import WARNING, event_message, new_event

REF = {"apiVersion": "devices.kubeedge.io/v1beta1", "kind": "Device", "namespace": "default", "name": "d1"}


async def test_repeats_count_on_one_event_and_edge_events_name_their_node(tmp_path: Path) -> None:
    async with EmbeddedAPIServer(tmp_path / "api", port=0) as server:
        kube = Kube.from_kubeconfig(str(server.kubeconfig))
        try:
            recorder = EventRecorder(kube, min_interval=0)
            await recorder.start()
            for _ in range(3):
                recorder.record(new_event(REF, WARNING, "NoMapper", "no mapper for protocol x", "edgecore"))
                await recorder.flushed()
            await recorder.stop()
            again = EventRecorder(kube, min_interval=0)  # a restarted cloudcore: count read back
            await again.start()
            again.record(new_event(REF, WARNING, "NoMapper", "no mapper for protocol x", "edgecore"))
            await again.flushed()
            items, _ = await kube.run(kube.list, EVENTS, namespace="default")
            assert [(e["reason"], e["count"]) for e in items] == [("NoMapper", 4)]

            edge = EdgeEvents(again)
            claims = new_event(REF, WARNING, "DeviceUnreachable", "offline", "edgecore", "edge-9")
            assert edge.handle_upstream("edge-1", event_message(claims))
            elsewhere = new_event({**REF, "namespace": "kube-system"}, WARNING, "X", "y", "edgecore")
            msg = event_message(elsewhere)
            msg.route.resource = "default/event/" + elsewhere["metadata"]["name"]
            assert edge.handle_upstream("edge-1", msg) and edge.refused == {"edge-1": 1}
            await again.flushed()
            items, _ = await kube.run(kube.list, EVENTS, namespace="default")
            unreachable = next(e for e in items if e["reason"] == "DeviceUnreachable")
            assert unreachable["source"]["host"] == "edge-1"  # the sender, not what the body claims
            assert not (await kube.run(kube.list, EVENTS, namespace="kube-system"))[0]
            await again.stop()
        finally:
            kube.close()
