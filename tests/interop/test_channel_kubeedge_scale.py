"""KubeEdge's edgecore receiving hundreds of Devices from kubeshore's cloudcore at once.

KubeEdge's edgehub sends at most 30 messages a second to the cloud (token bucket messageQPS 30,
messageBurst 60), its ACKs included. With more objects than it can acknowledge within cloudcore's
``ackTimeout x (ackRetries + 1)``, cloudcore must keep the session (the edge is alive: keepalives and
ACKs keep coming), pace what it sends and resend late messages with back-off, as KubeEdge's cloudhub
does; and every Device must reach KubeEdge's device table (membership messages, which are not
acknowledged, sent again after any reconnect).

The ack timeout here is short (1 s x 3 tries) so that a few hundred devices are enough to outrun
30 ACKs a second, keeping the test short."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests._peers import Mosquitto, free_port
from tests._stack import Stack, wait_for
from tests.interop._kubeedge import KubeEdgeEdge

NODE = "ke-scale-1"
DEVICES = 400


def _count(edge: KubeEdgeEdge, sql: str) -> int:
    try:
        with sqlite3.connect(f"file:{edge.root / 'edgecore.db'}?mode=ro", uri=True, timeout=5) as db:
            return int(db.execute(sql).fetchone()[0])
    except sqlite3.Error:
        return 0


def _wait_count(edge: KubeEdgeEdge, sql: str, deadline: float, want: int = DEVICES) -> None:
    while (n := _count(edge, sql)) < want and time.monotonic() < deadline:
        time.sleep(0.5)
    assert n >= want, f"{sql}: {n} of {want}"


@pytest.fixture(scope="module")
def lane(
    kubeedge_bin: Path, kubeedge_recipes: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Stack, KubeEdgeEdge]]:
    tmp = tmp_path_factory.mktemp("kescale")
    broker = Mosquitto(free_port(), tmp)
    broker.start()
    stack = Stack(tmp, broker.url)
    try:
        stack.start_cloudcore(ackTimeout=1.0, ackRetries=2)
        edge = KubeEdgeEdge.on_kubeshore(
            stack, kubeedge_bin, kubeedge_recipes, tmp / "ke-edge", node=NODE, mqtt=broker.url
        )
        yield stack, edge
    finally:
        stack.stop_all()
        broker.stop()


def test_slow_kubeedge_edge_gets_every_device_without_losing_its_session(
    lane: tuple[Stack, KubeEdgeEdge],
) -> None:
    stack, edge = lane
    edge.start()
    wait_for(lambda: stack.samples("cloudcore").get("cloudhub_connected_nodes") == 1.0, 60, "connected")
    model = {
        "apiVersion": "devices.kubeedge.io/v1beta1",
        "kind": "DeviceModel",
        "metadata": {"name": "scale-model", "namespace": "default"},
        "spec": {
            "protocol": "scale-lab",
            "properties": [{"name": "p", "type": "INT", "accessMode": "ReadOnly"}],
        },
    }
    devices = [
        {
            "apiVersion": "devices.kubeedge.io/v1beta1",
            "kind": "Device",
            "metadata": {"name": f"s{i}", "namespace": "default"},
            "spec": {
                "deviceModelRef": {"name": "scale-model"},
                "nodeName": NODE,
                "protocol": {"protocolName": "scale-lab"},
                "properties": [{"name": "p"}],
            },
        }
        for i in range(DEVICES)
    ]
    stack.kubectl("apply", "-f", "-", stdin="\n".join(json.dumps(o) for o in [model, *devices]))

    t0 = time.monotonic()
    # KubeEdge's devicetwin table (filled by membership messages) and its metadata store (Device objects).
    _wait_count(edge, "SELECT count(*) FROM device", t0 + 75)
    _wait_count(edge, "SELECT count(*) FROM meta WHERE type = 'device'", t0 + 75)
    samples = stack.samples("cloudcore")
    print({k: v for k, v in samples.items() if NODE in k and k.startswith("cloudhub_")})
    assert samples.get(f'cloudhub_connects_total{{node="{NODE}"}}') == 1.0, "the session was lost"
    assert f"node {NODE} disconnected" not in stack.log("cloudcore")
    # Paced to what the edge acknowledges: sending all at once makes nearly every message late, and
    # each late one is sent ackRetries times more.
    resent = samples.get(f'cloudhub_resent_total{{node="{NODE}"}}', 0.0)
    assert resent < DEVICES, f"{resent:.0f} resends for {DEVICES} devices: the edge was flooded"
    wait_for(
        lambda: stack.samples("cloudcore").get(f'cloudhub_pending_acks{{node="{NODE}"}}') == 0.0,
        30,
        "nothing left unacknowledged",
    )


def test_membership_reaches_an_edge_that_was_away(lane: tuple[Stack, KubeEdgeEdge]) -> None:
    """Devices added and deleted while the edge is down: their membership (not acknowledged, so not
    resent by the reliable sync) reaches KubeEdge's device table after it reconnects."""
    stack, edge = lane
    edge.kill()
    wait_for(lambda: stack.samples("cloudcore").get("cloudhub_connected_nodes") == 0.0, 60, "disconnected")
    extra = [
        {
            "apiVersion": "devices.kubeedge.io/v1beta1",
            "kind": "Device",
            "metadata": {"name": f"away{i}", "namespace": "default"},
            "spec": {
                "deviceModelRef": {"name": "scale-model"},
                "nodeName": NODE,
                "protocol": {"protocolName": "scale-lab"},
                "properties": [{"name": "p"}],
            },
        }
        for i in range(5)
    ]
    stack.kubectl("apply", "-f", "-", stdin="\n".join(json.dumps(o) for o in extra))
    stack.kubectl("delete", "device", "s0", "-n", "default")
    edge.start()
    _wait_count(edge, "SELECT count(*) FROM device WHERE name LIKE 'away%'", time.monotonic() + 60, 5)
    wait_for(lambda: _count(edge, "SELECT count(*) FROM device WHERE name = 's0'") == 0, 30, "s0 removed")
    assert _count(edge, "SELECT count(*) FROM device") == DEVICES + 4
    _wait_count(edge, "SELECT count(*) FROM meta WHERE type = 'device'", time.monotonic() + 60, DEVICES + 4)
