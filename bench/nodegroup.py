"""Node-group benchmark: `python -m bench.nodegroup`.

1. The per-node EndpointSlice view cloudcore computes for every node it sends a slice to
   (100 endpoints over 10 groups).
2. The controllers (the real `nodegroup-controller` command) against the embedded API server:
   time to label 200 nodes into 10 groups, latency from a node's Ready flip to the NodeGroup status
   showing it, and from creating an EdgeApplication with 10 target groups to all 10 Deployments
   existing; resident memory of the controller process.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from nodegroup._kube import Kube, api_client_from_kubeconfig
from nodegroup.endpointfilter import filter_endpoint_slice

ROOT = Path(__file__).resolve().parents[1]
RESULT = ROOT / "bench" / "results" / "nodegroup.json"
NODES, GROUPS = 200, 10


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


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


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def wait_for(check: Any, within: float = 60.0) -> None:
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached")
        await asyncio.sleep(0.01)


async def bench_controllers(kubeconfig: Path, controller_pid: int) -> dict[str, Any]:
    kube = Kube(api_client_from_kubeconfig(str(kubeconfig)))
    ng = "/apis/apps.kubeedge.io/v1alpha1/nodegroups"
    ready = {"type": "Ready", "status": "True"}
    for i in range(NODES):
        await kube.create(
            "/api/v1/nodes", {"metadata": {"name": f"n{i}", "labels": {"site": f"s{i % GROUPS}"}}}
        )
        await kube.patch(f"/api/v1/nodes/n{i}/status", {"status": {"conditions": [ready]}})
    start = time.perf_counter()
    for g in range(GROUPS):
        await kube.create(ng, {"metadata": {"name": f"g{g}"}, "spec": {"matchLabels": {"site": f"s{g}"}}})

    async def all_labelled() -> bool:
        nodes = await kube.get("/api/v1/nodes")
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
        await kube.patch(
            f"/api/v1/nodes/{node}/status", {"status": {"conditions": [{"type": "Ready", "status": state}]}}
        )

        async def shown(node: str = node, group: str = group, want: str = want) -> bool:
            obj = await kube.get(f"{ng}/{group}")
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
    await kube.create("/apis/apps.kubeedge.io/v1alpha1/namespaces/default/edgeapplications", edge_app)

    async def stamped() -> bool:
        items = (await kube.get("/apis/apps/v1/namespaces/default/deployments"))["items"]
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


def start(cmd: list[str], log: Path, cwd: Path) -> subprocess.Popen[bytes]:
    with open(log, "w") as out:
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=cwd, start_new_session=True)


def main() -> int:
    result: dict[str, Any] = {
        "title": "Node groups",
        "description": __doc__.split("\n\n", 1)[1].strip() if __doc__ else "",
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "endpointslice_view": bench_filter(),
    }
    with tempfile.TemporaryDirectory(prefix="bench-nodegroup-") as tmp:
        data = Path(tmp)
        server = start(
            [sys.executable, "-m", "kubeshore.cli", "apiserver", "--data-dir", str(data), "--port", "0"],
            data / "apiserver.log",
            data,
        )
        controller = None
        try:
            kubeconfig = data / "admin.kubeconfig"
            deadline = time.monotonic() + 30
            while (
                not kubeconfig.exists()
                or subprocess.run(
                    ["kubectl", "--kubeconfig", str(kubeconfig), "get", "--raw", "/version"],
                    capture_output=True,
                ).returncode
            ):
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit("the embedded API server did not start")
                time.sleep(0.1)
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
            controller = start([command, "--kubeconfig", str(kubeconfig)], data / "controller.log", data)
            result["controllers"] = asyncio.run(bench_controllers(kubeconfig, controller.pid))
        finally:
            for proc in (controller, server):
                if proc is not None and proc.poll() is None:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
    text = json.dumps(result, indent=2)
    print(text)
    RESULT.parent.mkdir(parents=True, exist_ok=True)
    RESULT.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
