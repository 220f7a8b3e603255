"""Edge behaviour: offline outbox, certificate rotation, metrics and configuration errors."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import urllib.request
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from cryptography import x509

from edgecore._node import EdgeNode
from edgecore.config import EdgeCoreConfig
from edgecore.edgehub import Address, CertificateRequestError, request_certificate
from kubeshore.message import Message

from ._helpers import Cloud, edge_config, eventually, join

EdgeStarter = Callable[[EdgeCoreConfig], Awaitable[EdgeNode]]


async def test_offline_outbox_is_bounded_durable_and_delivered_in_order(
    cloud: Cloud, edges: EdgeStarter, tmp_path: Path
) -> None:
    got: list[str] = []

    async def collect(node: str, msg: Message) -> None:
        got.append(f"{node}:{msg.content}")

    assert cloud.core.hub is not None
    cloud.core.hub.register_upstream("devicetwin-test", collect)
    assert await join(cloud, "edge-a", tmp_path / "a") == 0
    cfg = edge_config(tmp_path / "a")
    cfg.edge_hub.server = "127.0.0.1:9"  # nothing listens: the node is offline
    cfg.outbox.max_messages = 3
    offline = await edges(cfg)
    for i in range(4):
        msg = Message.new(
            source="devicetwin-test", group="twin", operation="update", resource="default/device/d"
        )
        msg.content = f"m{i}"
        queued = await offline.router.to_cloud(msg)
        assert queued == (i < 3)
    ack = Message.new(source="metamanager", group="resource", operation="response", resource="x/y/z")
    assert not await offline.router.to_cloud(ack, queue_offline=False)
    assert await offline.store.outbox_size() == 3
    await offline.stop()

    online = await edges(edge_config(tmp_path / "a"))
    await eventually(lambda: len(got) == 3)
    assert got == ["edge-a:m0", "edge-a:m1", "edge-a:m2"]
    assert await online.store.outbox_size() == 0


async def test_certificate_rotation_and_renewal_for_another_node_is_refused(
    cloud: Cloud, edges: EdgeStarter, tmp_path: Path
) -> None:
    assert await join(cloud, "edge-a", tmp_path / "a") == 0
    assert await join(cloud, "edge-b", tmp_path / "b") == 0
    cfg = edge_config(tmp_path / "a")
    node = await edges(cfg)
    await eventually(lambda: node.hub.connected.is_set())
    before = x509.load_pem_x509_certificate(cfg.certs.cert_file.read_bytes()).serial_number
    await asyncio.to_thread(node.hub.rotate_certificate)
    after = x509.load_pem_x509_certificate(cfg.certs.cert_file.read_bytes())
    assert after.serial_number != before
    assert node.hub.rotation_due_in() > 0

    # edge-b's certificate cannot obtain a certificate for edge-a.
    b = edge_config(tmp_path / "b").certs
    with pytest.raises(CertificateRequestError, match="403"):
        await asyncio.to_thread(
            request_certificate,
            Address.parse(cfg.edge_hub.https_server),
            "edge-a",
            b.ca_file.read_bytes(),
            client=(str(b.cert_file), str(b.key_file)),
        )
    # The renewed certificate is accepted by cloudhub.
    assert node.hub.ws is not None
    await node.hub.ws.close()
    await eventually(lambda: node.hub.connects >= 2 and node.hub.connected.is_set())


async def test_metrics_and_health(cloud: Cloud, edges: EdgeStarter, tmp_path: Path) -> None:
    assert await join(cloud, "edge-a", tmp_path / "a") == 0
    node = await edges(edge_config(tmp_path / "a"))
    await eventually(lambda: node.hub.connected.is_set())
    assert cloud.core.metrics is not None
    base = f"http://127.0.0.1:{cloud.core.metrics.port}"

    def fetch(path: str) -> str:
        with urllib.request.urlopen(base + path, timeout=5) as r:
            return str(r.read().decode())

    async def afetch(path: str) -> str:
        return await asyncio.to_thread(fetch, path)

    await eventually(lambda: _contains(afetch("/metrics"), "cloudhub_connected_nodes 1.0"))
    text = await afetch("/metrics")
    assert 'cloudhub_messages_received_total{node="edge-a"}' in text
    assert "cloudhub_ack_latency_seconds_bucket" in text
    assert (await afetch("/healthz")).strip() == "ok"
    assert (await afetch("/readyz")).strip() == "ok"
    assert "devicecontroller_status_queue_depth 0.0" in text

    # edgecore serves the same endpoints on its own port (0 in tests: any free one).
    assert node.observability is not None and node.ports()["metricsPort"] == node.observability.port
    base = f"http://127.0.0.1:{node.observability.port}"
    edge = await afetch("/metrics")
    assert "edgecore_cloud_connected 1.0" in edge and "edgecore_outbox_depth 0.0" in edge
    assert "edgecore_messages_received_total" in edge and "edgecore_devices 0.0" in edge
    assert "[+]store ok" in await afetch("/readyz?verbose")
    assert (await afetch("/livez")).strip() == "ok"


async def test_edge_is_ready_offline(cloud: Cloud, edges: EdgeStarter, tmp_path: Path) -> None:
    """Offline, edgecore serves from its store: still ready, the lost cloud shows in a metric."""
    assert await join(cloud, "edge-off", tmp_path / "a") == 0
    cfg = edge_config(tmp_path / "a")
    cfg.edge_hub.server = "127.0.0.1:9"  # nothing listens there
    node = await edges(cfg)
    assert node.observability is not None
    base = f"http://127.0.0.1:{node.observability.port}"

    def fetch(path: str) -> str:
        with urllib.request.urlopen(base + path, timeout=5) as r:
            return str(r.read().decode())

    assert (await asyncio.to_thread(fetch, "/readyz")).strip() == "ok"
    assert "edgecore_cloud_connected 0.0" in await asyncio.to_thread(fetch, "/metrics")


async def _contains(text: Awaitable[str], part: str) -> bool:
    return part in await text


def test_cloudcore_config_errors_name_the_key(tmp_path: Path) -> None:
    cfg = tmp_path / "cloudcore.yaml"
    cfg.write_text("kubeconfig: /x\nwebsocketPort: 70000\nnodeLimt: 5\n")
    out = subprocess.run(
        [sys.executable, "-m", "cloudcore.main", "--config", str(cfg)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 2
    assert "websocketPort" in out.stderr and "nodeLimt: unknown key" in out.stderr
    out = subprocess.run([sys.executable, "-m", "cloudcore.main"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 2 and "kubeconfig is required" in out.stderr


JOIN = [sys.executable, "-m", "kubeshore.cli", "join"]


def _node(tmp_path: Path) -> list[str]:
    return ["--node-name", "n1", "--data-dir", str(tmp_path)]


def test_join_reports_unreachable_cloudcore(tmp_path: Path) -> None:
    token = "a" * 64 + ".x.y.z"
    out = subprocess.run(
        [*JOIN, "--cloudcore", "127.0.0.1:9", "--https-port", "9", "--token", token, *_node(tmp_path)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 1
    assert "cannot reach the certificate server at 127.0.0.1:9" in out.stderr
    out = subprocess.run(
        [*JOIN, "--cloudcore", "nohost", "--token", "t", *_node(tmp_path)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 2 and "is not HOST:PORT" in out.stderr
