"""Node-group benchmark: `python -m bench.nodegroup`.

1. The per-node EndpointSlice view cloudcore computes for every node it sends a slice to
   (100 endpoints over 10 groups).
2. The controllers (the real `nodegroup-controller` command) against the embedded API server:
   time to label 200 nodes into 10 groups, latency from a node's Ready flip to the NodeGroup status
   showing it, and from creating an EdgeApplication with 10 target groups to all 10 Deployments
   existing; resident memory of the controller process.
3. Traffic views end to end (standalone `cloudcore` and two `edgecore`s, real commands): a node moves
   to the other group and back, 10 times; the time until both edges' stores hold the new views of a
   range-nodegroup EndpointSlice.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script too
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from _stack import start_apiserver

from bench._measure import percentile, rss_mb, write_results
from kubeclient import Kube
from nodegroup.endpointfilter import filter_endpoint_slice
from up.processes import Processes

ROOT = Path(__file__).resolve().parents[1]
RESULT = ROOT / "bench" / "results" / "nodegroup.json"
BIN = Path(sys.executable).parent
NODES, GROUPS = 200, 10


def bench_filter() -> dict[str, Any]:
    groups = {f"n{i}": f"g{i % 10}" for i in range(1000)}
    slice_ = {
        "kind": "EndpointSlice",
        "metadata": {"name": "s", "namespace": "default", "labels": {"kubernetes.io/service-name": "web"}},
        "endpoints": [
            {"addresses": [f"10.0.{i // 250}.{i % 250}"], "nodeName": f"n{i * 7 % 1000}"} for i in range(100)
        ],
    }
    service = {"metadata": {"annotations": {"apps.kubeedge.io/service-topology": "range-nodegroup"}}}
    samples = []
    for i in range(5000):
        start = time.perf_counter()
        filter_endpoint_slice(slice_, service, f"n{i % 1000}", groups.get)
        samples.append((time.perf_counter() - start) * 1e6)
    return {
        "median_us": statistics.median(samples),
        "p99_us": percentile(samples, 0.99),
        "views": len(samples),
    }


async def wait_for(check: Any, within: float = 60.0) -> None:
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached")
        await asyncio.sleep(0.01)


async def bench_controllers(kubeconfig: Path, controller_pid: int) -> dict[str, Any]:
    kube = Kube.from_kubeconfig(str(kubeconfig))
    ng = "/apis/apps.kubeedge.io/v1alpha1/nodegroups"
    ready = {"type": "Ready", "status": "True"}
    for i in range(NODES):
        await kube.acreate(
            "/api/v1/nodes", {"metadata": {"name": f"n{i}", "labels": {"site": f"s{i % GROUPS}"}}}
        )
        await kube.apatch(f"/api/v1/nodes/n{i}/status", {"status": {"conditions": [ready]}})
    start = time.perf_counter()
    for g in range(GROUPS):
        await kube.acreate(ng, {"metadata": {"name": f"g{g}"}, "spec": {"matchLabels": {"site": f"s{g}"}}})

    async def all_labelled() -> bool:
        nodes = await kube.aget("/api/v1/nodes")
        return all(
            (n["metadata"].get("labels") or {}).get("apps.kubeedge.io/belonging-to") for n in nodes["items"]
        )

    await wait_for(all_labelled)
    label_seconds = time.perf_counter() - start

    flips = []
    for i in range(40):
        node, group = f"n{i * 5 % NODES}", f"g{i * 5 % NODES % GROUPS}"
        state = "False" if i % 2 == 0 else "True"
        want = "NotReady" if state == "False" else "Ready"
        start = time.perf_counter()
        await kube.apatch(
            f"/api/v1/nodes/{node}/status", {"status": {"conditions": [{"type": "Ready", "status": state}]}}
        )

        async def shown(node: str = node, group: str = group, want: str = want) -> bool:
            obj = await kube.aget(f"{ng}/{group}")
            entries = (obj.get("status") or {}).get("nodeStatuses") or []
            return any(e["nodeName"] == node and e["readyStatus"] == want for e in entries)

        await wait_for(shown)
        flips.append((time.perf_counter() - start) * 1000)

    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "a", "image": "nginx"}]},
            },
        },
    }
    edge_app = {
        "apiVersion": "apps.kubeedge.io/v1alpha1",
        "kind": "EdgeApplication",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "workloadTemplate": {"manifests": [deployment]},
            "workloadScope": {
                "targetNodeGroups": [{"name": f"g{g}", "overriders": {"replicas": g}} for g in range(GROUPS)]
            },
        },
    }
    start = time.perf_counter()
    await kube.acreate("/apis/apps.kubeedge.io/v1alpha1/namespaces/default/edgeapplications", edge_app)

    async def stamped() -> bool:
        items = (await kube.aget("/apis/apps/v1/namespaces/default/deployments"))["items"]
        return len(items) == GROUPS

    await wait_for(stamped)
    stamp_ms = (time.perf_counter() - start) * 1000
    kube.close()
    return {
        "label_200_nodes_10_groups_s": label_seconds,
        "ready_flip_to_status_median_ms": statistics.median(flips),
        "ready_flip_to_status_p99_ms": percentile(flips, 0.99),
        "edgeapplication_10_groups_ms": stamp_ms,
        "controller_rss_mb": rss_mb(controller_pid),
    }


async def _held_nodes(edge_dir: Path, name: str) -> list[str]:
    from edgecore.config import EdgeCoreConfig
    from edgecore.metamanager import EdgeStore
    from kubeshore.config import load_config

    store = EdgeStore(load_config(EdgeCoreConfig, edge_dir / "edgecore.yaml").database.path)
    try:
        obj = await store.get("discovery.k8s.io/v1/endpointslices", "default", name)
    finally:
        store.close()
    return sorted(ep.get("nodeName", "") for ep in (obj or {}).get("endpoints") or [])


async def bench_views(kubeconfig: str, edges: dict[str, Path]) -> dict[str, Any]:
    kube = Kube.from_kubeconfig(kubeconfig)
    ng = "/apis/apps.kubeedge.io/v1alpha1/nodegroups"
    await kube.acreate(ng, {"metadata": {"name": "ga"}, "spec": {"nodes": ["e1"]}})
    await kube.acreate(ng, {"metadata": {"name": "gb"}, "spec": {"nodes": ["e2"]}})
    annotations = {"apps.kubeedge.io/service-topology": "range-nodegroup"}
    await kube.acreate(
        "/api/v1/namespaces/default/services",
        {"metadata": {"name": "web", "annotations": annotations}, "spec": {"ports": [{"port": 80}]}},
    )
    await kube.acreate(
        "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices",
        {
            "metadata": {"name": "web-1", "labels": {"kubernetes.io/service-name": "web"}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": [f"10.0.0.{i}"], "nodeName": n} for i, n in enumerate(edges, 1)],
            "ports": [{"port": 80}],
        },
    )

    async def views_are(expected: dict[str, list[str]]) -> bool:
        return all([await _held_nodes(edges[n], "web-1") == want for n, want in expected.items()])

    await wait_for(lambda: views_are({"e1": ["e1"], "e2": ["e2"]}))
    moves = []
    for i in range(10):
        together = i % 2 == 0
        start_time = time.perf_counter()
        if together:
            await kube.apatch(f"{ng}/gb", {"spec": {"nodes": []}})
            await kube.apatch(f"{ng}/ga", {"spec": {"nodes": ["e1", "e2"]}})
            expected = {"e1": ["e1", "e2"], "e2": ["e1", "e2"]}
        else:
            await kube.apatch(f"{ng}/ga", {"spec": {"nodes": ["e1"]}})
            await kube.apatch(f"{ng}/gb", {"spec": {"nodes": ["e2"]}})
            expected = {"e1": ["e1"], "e2": ["e2"]}
        await wait_for(lambda expected=expected: views_are(expected))
        moves.append((time.perf_counter() - start_time) * 1000)
    kube.close()
    return {
        "group_move_to_edge_views_median_ms": statistics.median(moves),
        "group_move_p99_ms": percentile(moves, 0.99),
    }


def run_views(data: Path) -> dict[str, Any]:
    cloud_dir = data / "cloud"
    flags = ["--bind", "127.0.0.1", "--websocket-port", "0", "--https-port", "0", "--metrics-port", "0"]
    procs = Processes(data, cwd=data)
    try:
        cloud = procs.start(
            "cloudcore", str(BIN / "cloudcore"), "--standalone", "--data-dir", str(cloud_dir),
            "--apiserver-port", "0", *flags,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while not (cloud_dir / "cloudcore.json").exists():
            if time.monotonic() > deadline or cloud.poll() is not None:
                raise SystemExit("cloudcore did not start")
            time.sleep(0.1)
        time.sleep(0.2)
        state = json.loads((cloud_dir / "cloudcore.json").read_text())
        token = subprocess.run(
            [str(BIN / "kubeshore"), "token", "create", "--data-dir", str(cloud_dir)],
            capture_output=True, text=True, check=True,
        ).stdout.split()[-1]  # fmt: skip
        edges = {}
        for name in ("e1", "e2"):
            edge_dir = data / name
            subprocess.run(
                [str(BIN / "kubeshore"), "join", "--cloudcore", f"127.0.0.1:{state['websocketPort']}",
                 "--https-port", str(state["httpsPort"]), "--token", token, "--node-name", name,
                 "--data-dir", str(edge_dir), "--metaserver-port", "0", "--metrics-port", "0"],
                capture_output=True, check=True,
            )  # fmt: skip
            procs.start(name, str(BIN / "edgecore"), "--config", str(edge_dir / "edgecore.yaml"))
            edges[name] = edge_dir
        return asyncio.run(bench_views(state["kubeconfig"], edges))
    finally:
        procs.stop_all()


def main() -> int:
    result: dict[str, Any] = {
        "title": "Node groups",
        "description": __doc__.split("\n\n", 1)[1].strip() if __doc__ else "",
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "endpointslice_view": bench_filter(),
    }
    with tempfile.TemporaryDirectory(prefix="bench-nodegroup-") as tmp:
        data = Path(tmp)
        procs = Processes(data, cwd=data)
        try:
            start_apiserver(procs, data)
            kubeconfig = data / "admin.kubeconfig"
            crds = [
                ROOT / "crds" / f
                for f in ("nodegroups.apps.kubeedge.io.yaml", "edgeapplications.apps.kubeedge.io.yaml")
            ]
            subprocess.run(
                [
                    "kubectl",
                    "--kubeconfig",
                    str(kubeconfig),
                    "apply",
                    *(a for c in crds for a in ("-f", str(c))),
                ],
                check=True,
                capture_output=True,
            )
            while subprocess.run(
                ["kubectl", "--kubeconfig", str(kubeconfig), "get", "nodegroups"], capture_output=True
            ).returncode:
                time.sleep(0.1)
            command = str(Path(sys.executable).parent / "nodegroup-controller")
            controller = procs.start("controller", command, "--kubeconfig", str(kubeconfig))
            result["controllers"] = asyncio.run(bench_controllers(kubeconfig, controller.pid))
        finally:
            procs.stop_all()
    with tempfile.TemporaryDirectory(prefix="bench-nodegroup-views-") as tmp:
        result["traffic_views"] = run_views(Path(tmp))
    write_results(RESULT, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
