"""MetaServer: kubectl reads the edge store (get, list, selectors, watch), writes are refused."""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path
from typing import Any

from edgecore.metamanager import EdgeStore
from edgecore.metamanager._store import Remove, Upsert
from edgecore.metamanager.metaserver import MetaServer


def pod(name: str, rv: int, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "uid": f"uid-{name}", "labels": labels or {},
                     "resourceVersion": str(rv), "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {"nodeName": "edge-a", "containers": [{"name": "c", "image": "nginx"}]},
    }  # fmt: skip


async def kubectl(port: int, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = ["kubectl", "--kubeconfig", "/dev/null", "--server", f"http://127.0.0.1:{port}", *args]
    return await asyncio.to_thread(subprocess.run, cmd, capture_output=True, text=True, timeout=30)


async def test_kubectl_reads_the_edge_store(tmp_path: Path) -> None:
    store = EdgeStore(tmp_path / "edge.db")
    await store.apply([Upsert(pod("web", 10, {"app": "web"}), 10), Upsert(pod("db", 11, {"app": "db"}), 11)])
    cm = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "cfg", "namespace": "default"},
        "data": {},
    }
    await store.apply([Upsert(cm, 12)])
    server = MetaServer(store, "127.0.0.1", 0)
    await server.start()
    try:
        out = await kubectl(server.port, "get", "pods", "-A")
        assert out.returncode == 0, out.stderr
        assert "web" in out.stdout and "db" in out.stdout
        out = await kubectl(server.port, "get", "pods", "-n", "default", "-l", "app=web", "-o", "json")
        assert [o["metadata"]["name"] for o in json.loads(out.stdout)["items"]] == ["web"]
        out = await kubectl(
            server.port, "get", "pods", "-A", "--field-selector", "spec.nodeName=edge-a", "-o", "name"
        )
        assert sorted(out.stdout.split()) == ["pod/db", "pod/web"]
        out = await kubectl(server.port, "get", "configmap", "cfg", "-n", "default", "-o", "json")
        assert json.loads(out.stdout)["metadata"]["name"] == "cfg"
        out = await kubectl(server.port, "delete", "pod", "web", "-n", "default")
        assert out.returncode != 0

        # watch sees changes applied to the store after it started
        watch = asyncio.create_task(
            kubectl(
                server.port,
                "get",
                "pods",
                "-n",
                "default",
                "--watch-only",
                "-o",
                "name",
                "--request-timeout=3s",
            )
        )
        await asyncio.sleep(1.0)
        await store.apply([Upsert(pod("new", 20), 20), Remove("core/v1/pods", "default", "db", "uid-db")])
        out = await watch
        assert "pod/new" in out.stdout
        out = await kubectl(server.port, "get", "pods", "-n", "default", "-o", "name")
        assert sorted(out.stdout.split()) == ["pod/new", "pod/web"]
    finally:
        await server.stop()
        store.close()
