"""cloudcore and edgecore in one process over real TLS websockets, against an in-memory API."""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from cloudcore._app import CloudCore
from cloudcore._resources import OBJECTSYNCS
from edgecore._node import EdgeNode
from edgecore.config import EdgeCoreConfig
from kubeclient import CONFIGMAPS, NODES, PODS, SECRETS
from kubeshore import pki

from ._helpers import Cloud, cloud_config, edge_config, eventually, join
from .memkube import MemoryKube

EdgeStarter = Callable[[EdgeCoreConfig], Awaitable[EdgeNode]]


def pod(name: str, node: str, configmap: str = "", secret: str = "") -> dict[str, object]:
    volumes = []
    if configmap:
        volumes.append({"name": "c", "configMap": {"name": configmap}})
    env = [{"name": "S", "valueFrom": {"secretKeyRef": {"name": secret, "key": "k"}}}] if secret else []
    return {
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "nodeName": node,
            "volumes": volumes,
            "containers": [{"name": "c", "image": "x", "env": env}],
        },
    }


def ready(cloud: Cloud, node: str) -> str | None:
    obj = cloud.kube.get(NODES, node)
    for c in ((obj or {}).get("status") or {}).get("conditions") or []:
        if c["type"] == "Ready":
            return str(c["status"])
    return None


async def stored_names(node: EdgeNode, gvr: str) -> set[str]:
    return {o["metadata"]["name"] for o in await node.store.list_objects(gvr)}


async def test_join_connect_ready_and_pods_reach_only_their_node(
    cloud: Cloud, edges: EdgeStarter, tmp_path: Path
) -> None:
    assert await join(cloud, "edge-a", tmp_path / "a") == 0
    assert await join(cloud, "edge-b", tmp_path / "b") == 0
    a = await edges(edge_config(tmp_path / "a"))
    b = await edges(edge_config(tmp_path / "b"))
    await eventually(lambda: ready(cloud, "edge-a") == "True" and ready(cloud, "edge-b") == "True")
    node = cloud.kube.get(NODES, "edge-a")
    assert node is not None
    assert "node-role.kubernetes.io/edge" in node["metadata"]["labels"]
    await eventually(lambda: "nodeInfo" in (cloud.kube.get(NODES, "edge-a") or {}).get("status", {}))

    cloud.kube.put(CONFIGMAPS, {"metadata": {"name": "cfg", "namespace": "default"}, "data": {"k": "v"}})
    cloud.kube.put(SECRETS, {"metadata": {"name": "sec", "namespace": "default"}, "data": {"k": "dg=="}})
    cloud.kube.put(CONFIGMAPS, {"metadata": {"name": "unrelated", "namespace": "default"}, "data": {}})
    cloud.kube.put(PODS, pod("web", "edge-a", configmap="cfg", secret="sec"))

    await eventually(lambda: stored_names(a, "core/v1/pods"))
    assert await stored_names(a, "core/v1/pods") == {"web"}
    await eventually(lambda: stored_names(a, "core/v1/configmaps"))
    assert await stored_names(a, "core/v1/configmaps") == {"cfg"}
    await eventually(lambda: stored_names(a, "core/v1/secrets"))
    assert await b.store.count() == 0

    # Acknowledged versions are kept as ObjectSync objects named <node>.<uid>.
    web = cloud.kube.get(PODS, "web", "default")
    assert web is not None
    name = f"edge-a.{web['metadata']['uid']}"
    await eventually(lambda: cloud.kube.get(OBJECTSYNCS, name, "default"))
    sync = cloud.kube.get(OBJECTSYNCS, name, "default")
    assert sync is not None
    assert sync["status"]["objectResourceVersion"] == web["metadata"]["resourceVersion"]
    assert sync["spec"] == {"objectAPIVersion": "v1", "objectKind": "Pod", "objectName": "web"}

    # Update and delete propagate; deleting the pod removes its configmap from the node.
    cloud.kube.patch(CONFIGMAPS, "cfg", {"data": {"k": "v2"}}, "default")
    await eventually(
        lambda: _cm_value(a, "cfg"),
    )
    cloud.kube.delete(PODS, "web", "default")
    await eventually(lambda: _empty(a, "core/v1/pods"))
    await eventually(lambda: _empty(a, "core/v1/configmaps"))
    await eventually(lambda: cloud.kube.get(OBJECTSYNCS, name, "default") is None)


async def _cm_value(node: EdgeNode, name: str) -> bool:
    obj = await node.store.get("core/v1/configmaps", "default", name)
    return obj is not None and obj["data"]["k"] == "v2"


async def _empty(node: EdgeNode, gvr: str) -> bool:
    return not await node.store.list_objects(gvr)


async def test_disconnect_then_only_changes_are_sent(
    cloud: Cloud, edges: EdgeStarter, tmp_path: Path
) -> None:
    assert await join(cloud, "edge-a", tmp_path / "a") == 0
    cfg = edge_config(tmp_path / "a")
    for i in range(5):
        cloud.kube.put(
            CONFIGMAPS, {"metadata": {"name": f"c{i}", "namespace": "default"}, "data": {"v": "1"}}
        )
        cloud.kube.put(PODS, pod(f"p{i}", "edge-a", configmap=f"c{i}"))
    a = await edges(cfg)
    await eventually(lambda: _count(a, 10))
    await cloud.core.store.flushed()
    await a.stop()
    await eventually(lambda: ready(cloud, "edge-a") == "Unknown", within=10)

    stats = cloud.core.hub.stats["edge-a"]  # type: ignore[union-attr]
    before = dict(stats.objects_sent)
    cloud.kube.patch(CONFIGMAPS, "c0", {"data": {"v": "2"}}, "default")  # changed
    cloud.kube.delete(PODS, "p1", "default")  # deleted (and its configmap c1 no longer needed)
    cloud.kube.put(PODS, pod("p9", "edge-a"))  # created
    a2 = await edges(cfg)
    await eventually(lambda: ready(cloud, "edge-a") == "True")
    await eventually(lambda: _count(a2, 9))
    assert await stored_names(a2, "core/v1/pods") == {"p0", "p2", "p3", "p4", "p9"}
    c0 = await a2.store.get("core/v1/configmaps", "default", "c0")
    assert c0 is not None and c0["data"]["v"] == "2"
    after = stats.objects_sent
    sent = {k: after.get(k, 0) - before.get(k, 0) for k in after if after.get(k, 0) != before.get(k, 0)}
    assert sent == {
        ("configmap", "update"): 1,
        ("pod", "delete"): 1,
        ("configmap", "delete"): 1,
        ("pod", "insert"): 1,
    }


async def _count(node: EdgeNode, n: int) -> bool:
    return await node.store.count() == n


def _client_ctx(data_dir: Path, cert: Path | None = None, key: Path | None = None) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.load_verify_locations(data_dir / "certs" / "ca.crt")
    ctx.load_cert_chain(cert or data_dir / "certs" / "server.crt", key or data_dir / "certs" / "server.key")
    return ctx


async def test_refusals(cloud: Cloud, edges: EdgeStarter, tmp_path: Path) -> None:
    # Wrong token: a token of another CA fails the CA hash check; a tampered JWT is refused by the cloud.
    other = pki.CertificateAuthority.create("other")
    from kubeshore.jointoken import create_token

    bad = create_token(pki.cert_to_der(other.cert), pki.key_to_der(other.key), 60)
    assert await join(cloud, "edge-x", tmp_path / "x", token=bad) == 1
    forged = pki.ca_hash(cloud.core.certs.ca.cert) + "." + bad.split(".", 1)[1]  # type: ignore[union-attr]
    assert await join(cloud, "edge-x", tmp_path / "x", token=forged) == 1
    assert not (tmp_path / "x" / "edgecore.yaml").exists()

    assert await join(cloud, "edge-a", tmp_path / "a") == 0
    assert await join(cloud, "edge-b", tmp_path / "b") == 0
    b = await edges(edge_config(tmp_path / "b"))
    await eventually(lambda: ready(cloud, "edge-b") == "True")
    url = f"wss://127.0.0.1:{cloud.ws_port}/e632aba927ea4ac2b575ec1603d56f10/edge-b/events"

    # Forged node name: edge-a's certificate claiming to be edge-b.
    with pytest.raises(InvalidStatus) as exc:
        async with connect(url, ssl=_client_ctx(tmp_path / "a"), additional_headers={"node_id": "edge-b"}):
            pass
    assert exc.value.response.status_code == 403

    # A certificate that is not a node certificate (signed by the CA, wrong subject).
    ca = cloud.core.certs.ca  # type: ignore[union-attr]
    cert, key = ca.issue("admin", organization="system:masters", client=True)
    (tmp_path / "admin.crt").write_bytes(pki.cert_to_pem(cert))
    pki.write_private(tmp_path / "admin.key", pki.key_to_pem(key))
    with pytest.raises(InvalidStatus):
        async with connect(
            url, ssl=_client_ctx(tmp_path / "a", tmp_path / "admin.crt", tmp_path / "admin.key")
        ):
            pass

    # A certificate from another CA fails the TLS handshake.
    cert, key = other.issue("system:node:edge-a", organization="system:nodes", client=True)
    (tmp_path / "o.crt").write_bytes(pki.cert_to_pem(cert))
    pki.write_private(tmp_path / "o.key", pki.key_to_pem(key))
    with pytest.raises((ssl.SSLError, OSError, InvalidHandshake)):
        async with connect(
            url, ssl=_client_ctx(tmp_path / "a", tmp_path / "o.crt", tmp_path / "o.key")
        ) as ws:
            await ws.recv()

    # Messages about another node are refused; unknown operations too; garbage closes the connection.
    a_url = url.replace("edge-b", "edge-a")
    async with connect(a_url, ssl=_client_ctx(tmp_path / "a")) as ws:
        status = {"status": {"nodeInfo": {"architecture": "evil"}}}
        await ws.send(_msg("update", "null/nodestatus/edge-b", status))
        await ws.send(_msg("explode", "default/pod/x", {}))
        await ws.send("{not json")
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(_drain(ws), 5)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1007
    refusals = cloud.core.hub.refusals  # type: ignore[union-attr]
    assert refusals.get("forged_node_name") == 1
    assert refusals.get("bad_certificate") == 1
    assert refusals.get("invalid_message") == 1
    assert refusals.get("unknown_operation") == 1
    assert refusals.get("malformed_frame") == 1
    node_b = cloud.kube.get(NODES, "edge-b")
    assert node_b is not None
    assert node_b["status"]["nodeInfo"]["architecture"] != "evil"
    # The other node keeps being served.
    assert cloud.core.hub.is_connected("edge-b")  # type: ignore[union-attr]
    cloud.kube.put(PODS, pod("still", "edge-b"))
    await eventually(lambda: stored_names(b, "core/v1/pods"))


async def _drain(ws: object) -> None:
    while True:
        await ws.recv()  # type: ignore[attr-defined]


def _msg(op: str, resource: str, content: object) -> str:
    return json.dumps(
        {
            "header": {"msg_id": "m-" + op, "timestamp": 1},
            "route": {"source": "edged", "group": "resource", "operation": op, "resource": resource},
            "content": content,
        }
    )


async def test_node_limit_and_oversized_frames(edges: EdgeStarter, tmp_path: Path) -> None:
    from cloudcore._app import CloudCore

    from ._helpers import cloud_config
    from .memkube import MemoryKube

    kube = MemoryKube()
    core = CloudCore(cloud_config(nodeLimit=1, maxFrameBytes=4096), kube)
    await core.start()
    cloud = Cloud(kube, core)
    try:
        assert await join(cloud, "edge-a", tmp_path / "a") == 0
        assert await join(cloud, "edge-b", tmp_path / "b") == 0
        a = await edges(edge_config(tmp_path / "a"))
        await eventually(lambda: a.hub.connected.is_set())
        url = f"wss://127.0.0.1:{cloud.ws_port}/e632aba927ea4ac2b575ec1603d56f10/edge-b/events"
        with pytest.raises(InvalidStatus) as exc:
            async with connect(url, ssl=_client_ctx(tmp_path / "b")):
                pass
        assert exc.value.response.status_code == 503
        assert core.hub is not None
        assert core.hub.refusals.get("node_limit") == 1

        # An oversized frame closes that connection (1009); the node reconnects and is served.
        assert a.hub.ws is not None
        await a.hub.ws.send(_msg("update", "null/nodestatus/edge-a", {"pad": "x" * 8000}))
        await eventually(lambda: core.hub is not None and core.hub.refusals.get("oversized_frame") == 1)
        await eventually(lambda: a.hub.connects >= 2 and a.hub.connected.is_set())
        kube.put(PODS, pod("after", "edge-a"))
        await eventually(lambda: stored_names(a, "core/v1/pods"))
    finally:
        await core.stop()
        kube.close()


@pytest.mark.parametrize("keepalive", [30.0, 1.0], ids=["session-open", "session-closed-first"])
async def test_silent_node_turns_unknown_grace_period_after_its_last_traffic(
    tmp_path: Path, keepalive: float
) -> None:
    """A node that stops sending (frozen process, black-holed network) is Ready=Unknown
    ``nodeGracePeriod`` after its last traffic, whether its session is still open or was closed
    by the keepalive timeout in between; traffic or a reconnect makes it Ready again."""
    kube = MemoryKube()
    core = CloudCore(cloud_config(nodeGracePeriod=2.0, keepaliveTimeout=keepalive), kube)
    await core.start()
    loop = asyncio.get_running_loop()
    try:
        cloud = Cloud(kube, core)
        assert core.hub is not None
        assert await join(cloud, "edge-a", tmp_path / "a") == 0
        url = f"wss://127.0.0.1:{cloud.ws_port}/e632aba927ea4ac2b575ec1603d56f10/edge-a/events"
        ctx = _client_ctx(tmp_path / "a")
        # The client never answers a close: like a frozen peer, it holds the close handshake.
        async with connect(url, ssl=ctx, ping_interval=None, close_timeout=0.1) as ws:
            await eventually(lambda: ready(cloud, "edge-a") == "True")
            await ws.send(_msg("update", "null/nodestatus/edge-a", {"status": {}}))
            await asyncio.sleep(0.2)
            silent_since = loop.time()
            ws.transport.pause_reading()
            await eventually(lambda: ready(cloud, "edge-a") == "Unknown", within=8)
            took = loop.time() - silent_since
            # Grace period plus one monitor tick (0.4 s) and the write; counted from the session's
            # end (the old behaviour) it would be keepalive + close timeout + grace period.
            assert 1.8 < took < 2.8, took
            assert core.hub.is_connected("edge-a") == (keepalive > 2.0)
            if keepalive > 2.0:
                # A heartbeat on the same session makes it Ready again.
                ws.transport.resume_reading()
                await ws.ping()
                await eventually(lambda: ready(cloud, "edge-a") == "True", within=3)
        if keepalive < 2.0:
            async with connect(url, ssl=ctx, ping_interval=None):
                await eventually(lambda: ready(cloud, "edge-a") == "True", within=3)
    finally:
        await core.stop()
        kube.close()


async def test_delete_while_away_carries_the_whole_object(cloud: Cloud, tmp_path: Path) -> None:
    """An object deleted while its node is away is deleted there after the reconnect with the whole
    object, as when the node is connected (KubeEdge's edgecore finds a Device's mapper by its spec)."""
    from edgecore._node import EdgeNode
    from kubeshore.message import GROUP_RESOURCE, OP_DELETE, Message

    assert await join(cloud, "edge-a", tmp_path / "a") == 0
    cfg = edge_config(tmp_path / "a")
    cloud.kube.put(PODS, pod("web", "edge-a"))
    first = EdgeNode(cfg)
    await first.start()
    try:
        await eventually(lambda: stored_names(first, "core/v1/pods"))
    finally:
        await first.stop()
    await eventually(lambda: not cloud.core.hub.is_connected("edge-a"))
    cloud.kube.delete(PODS, "web", "default")

    again = EdgeNode(cfg)
    deletes: list[Message] = []
    store_handler = again.metamanager.handle

    async def spy(msg: Message) -> None:
        if msg.route.operation == OP_DELETE:
            deletes.append(msg)
        await store_handler(msg)

    again.router.register(GROUP_RESOURCE, spy)
    await again.start()
    try:
        await eventually(lambda: deletes)

        async def gone() -> bool:
            return not await stored_names(again, "core/v1/pods")

        await eventually(gone)
        content = deletes[0].content_data()
        assert content["kind"] == "Pod" and content["spec"]["nodeName"] == "edge-a"
    finally:
        await again.stop()
