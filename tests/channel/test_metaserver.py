"""MetaServer: kubectl reads the edge store (get, list, selectors, watch), writes are refused."""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp

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


@asynccontextmanager
async def metaserver(tmp_path: Path, *objects: dict[str, Any]) -> AsyncIterator[MetaServer]:
    """A MetaServer on a free port over a fresh edge store holding ``objects``."""
    store = EdgeStore(tmp_path / "edge.db")
    await store.apply([Upsert(obj, int(obj["metadata"].get("resourceVersion") or 1)) for obj in objects])
    server = MetaServer(store, "127.0.0.1", 0)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()
        store.close()


async def kubectl(port: int, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = ["kubectl", "--kubeconfig", "/dev/null", "--server", f"http://127.0.0.1:{port}", *args]
    return await asyncio.to_thread(subprocess.run, cmd, capture_output=True, text=True, timeout=30)


async def test_kubectl_reads_the_edge_store(tmp_path: Path) -> None:
    cm = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "cfg", "namespace": "default", "resourceVersion": "12"},
        "data": {},
    }
    async with metaserver(
        tmp_path, pod("web", 10, {"app": "web"}), pod("db", 11, {"app": "db"}), cm
    ) as server:
        store = server.store
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


async def test_tables_have_the_builtin_columns(tmp_path: Path) -> None:
    running = pod("web", 10)
    running["status"] = {
        "phase": "Running",
        "podIP": "10.0.0.7",
        "containerStatuses": [{"name": "c", "ready": True, "restartCount": 3, "state": {"running": {}}}],
    }
    async with metaserver(tmp_path, running) as server:
        url = f"http://127.0.0.1:{server.port}/api/v1/namespaces/default/pods"
        async with aiohttp.ClientSession() as http:
            headers = {"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"}
            async with http.get(url, headers=headers) as resp:
                assert resp.status == 200, await resp.text()
                table = await resp.json()
        assert table["kind"] == "Table"
        columns = [c["name"] for c in table["columnDefinitions"]]
        assert columns == ["Name", "Ready", "Status", "Restarts", "Age", "IP", "Node"]
        assert table["rows"][0]["cells"][:4] == ["web", "1/1", "Running", 3]

        out = await kubectl(server.port, "get", "pods", "-n", "default", "-o", "wide")
        assert out.returncode == 0, out.stderr
        header, row = out.stdout.splitlines()
        assert header.split()[:7] == ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE"]
        assert row.split()[:4] == ["web", "1/1", "Running", "3"]
        assert "10.0.0.7" in row and "edge-a" in row
        out = await kubectl(server.port, "get", "po", "-n", "default", "-o", "name")
        assert out.stdout.split() == ["pod/web"], out.stderr


async def test_watch_from_a_version_replays_changes_since(tmp_path: Path) -> None:
    """Changes before the watch came are read back from SQLite; a change superseded since is folded
    into the next one, and a deleted object is shown as it was."""
    async with metaserver(tmp_path, pod("a", 1), pod("b", 2)) as server:
        store = server.store
        url = f"http://127.0.0.1:{server.port}/api/v1/namespaces/default/pods"
        async with aiohttp.ClientSession() as http:
            async with http.get(url) as resp:
                since = (await resp.json())["metadata"]["resourceVersion"]
            await store.apply([Upsert(pod("a", 3, {"v": "1"}), 3)])
            await store.apply([Upsert(pod("a", 4, {"v": "2"}), 4)])
            await store.apply([Remove("core/v1/pods", "default", "b", "uid-b"), Upsert(pod("c", 5), 5)])
            params = {"watch": "1", "resourceVersion": since, "timeoutSeconds": "1"}
            async with http.get(url, params=params) as resp:
                assert resp.status == 200
                events = [json.loads(line) for line in (await resp.text()).splitlines() if line]
    seen = [
        (e["type"], e["object"]["metadata"]["name"], e["object"]["metadata"].get("labels")) for e in events
    ]
    assert seen == [("MODIFIED", "a", {"v": "2"}), ("DELETED", "b", {}), ("ADDED", "c", {})]
    versions = [int(e["object"]["metadata"]["resourceVersion"]) for e in events]
    assert versions == sorted(versions) and versions[0] > int(since)
