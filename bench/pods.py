"""Pods at the edge: Deployment applied -> all its Pods Running (and Ready), on one node; kubeshore's
edgecore and KubeEdge's side by side, in the same run, under the same cloud.

Real processes: one standalone cloudcore (its workload controllers make the Pods) and two edge nodes
joined to it, each with a containerd of its own (``tests/pods/_containerd``): kubeshore's edgecore
with edged on, and KubeEdge's edgecore (``../shared/kubeedge``) with its edged (KubeEdge's embedded
kubelet) on, set up as the interop lane does (``tests/interop/_kubeedge``). Both with their defaults
(heartbeats, log levels). Pods from the local busybox image, placed on one node by the scheduler
(a ``nodeSelector`` on the node's ``kubernetes.io/hostname``, which is its name). After one round not counted
(warm-up), for 1, 10 and 50 replicas, several rounds on each node in turn: the time from ``kubectl
apply`` of the Deployment until every Pod reports Ready (p50 and p99 over rounds), then the Deployment
is scaled to 0, the node drained and the Deployment (and its ReplicaSet) deleted before the next
round. Then both edgecores' RSS and CPU with 50 Pods each running and nothing changing (idle,
measured over the same 30 s).

Needs root and Debian's containerd, runc, containernetworking-plugins, busybox-static, umoci, skopeo;
KubeEdge's binaries for its column (without them kubeshore alone is measured, and the results say so).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
import yaml  # noqa: E402
from _peers import mosquitto  # noqa: E402
from _stack import Stack, wait_for  # noqa: E402
from pods._containerd import BUSYBOX, PAUSE, Containerd, missing  # noqa: E402

from bench._measure import cpu_seconds, percentile, rss_mb, write_results  # noqa: E402
from tests.interop._kubeedge import KubeEdgeEdge, edged_missing  # noqa: E402
from tests.interop.conftest import unpack_kubeedge  # noqa: E402

RECIPES = ROOT.parent / "shared" / "kubeedge" / "recipes"


@dataclass
class Edge:
    name: str  # the edgecore: "kubeshore" or "kubeedge"
    node: str
    runtime: Containerd
    pid: int

    @property
    def app(self) -> str:
        return f"bench-{self.name}"


def deployment(edge: Edge, replicas: int) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": edge.app, "namespace": "default"},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": edge.app}},
                "template": {
                    "metadata": {"labels": {"app": edge.app}},
                    "spec": {
                        "nodeSelector": {"kubernetes.io/hostname": edge.node},
                        "terminationGracePeriodSeconds": 0,
                        "containers": [
                            {"name": "main", "image": BUSYBOX, "imagePullPolicy": "Never",
                             "command": ["sh", "-c", "exec sleep 3600"]}
                        ],
                    },
                },
            },
        }
    )  # fmt: skip


def ready_count(stack: Stack, app: str) -> int:
    out = stack.kubectl(
        "get", "pods", "-l", f"app={app}", "-o",
        "jsonpath={range .items[*]}{.status.conditions[?(@.type=='Ready')].status}{'\\n'}{end}",
    )  # fmt: skip
    return sum(1 for line in out.splitlines() if line.strip() == "True")


def node_schedulable(stack: Stack, node: str) -> bool:
    """Ready, and its capacity reported (the scheduler fits Pods to ``allocatable``)."""
    obj = json.loads(stack.kubectl("get", "node", node, "-o", "json"))
    status = obj.get("status") or {}
    ready = any(
        c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or []
    )
    return ready and bool((status.get("allocatable") or {}).get("pods"))


def rounds_on(stack: Stack, edge: Edge, replicas: int, rounds: int, keep_last: bool) -> list[float]:
    samples = []
    for i in range(rounds):
        t0 = time.monotonic()
        stack.apply(deployment(edge, replicas))
        wait_for(lambda: ready_count(stack, edge.app) == replicas, 600, f"{edge.name}: {replicas} pods Ready")
        samples.append(time.monotonic() - t0)
        print(f"{edge.name}: {replicas} pods Ready in {samples[-1]:.2f} s", flush=True)
        if keep_last and i == rounds - 1:
            break
        # Scaled to 0 before the delete: deleting the Deployment at once races the ReplicaSet controller,
        # which may replace a Pod the cascade just deleted, leaving it orphaned.
        stack.kubectl("scale", "deploy", edge.app, "--replicas=0")
        wait_for(
            lambda: edge.app not in stack.kubectl("get", "pods", "-o", "name"), 300, f"{edge.name}: pods gone"
        )
        wait_for(lambda: not edge.runtime.container_pids(), 300, f"{edge.name}: node drained")
        # The ReplicaSet too: the embedded API server's garbage collection can leave it behind, and the
        # next Deployment's ReplicaSet (same template, same name) would then not be created.
        stack.kubectl("delete", "deploy", edge.app)
        stack.kubectl("delete", "rs", "-l", f"app={edge.app}", "--ignore-not-found")
    return samples


def run(args: argparse.Namespace) -> dict[str, Any]:
    kubeedge_bin = unpack_kubeedge() if args.kubeedge else None
    why_not = (
        "not asked for (--no-kubeedge)"
        if not args.kubeedge
        else "no KubeEdge binaries in ../shared/kubeedge/bin"
    )
    if kubeedge_bin is not None and (why := edged_missing()) is not None:
        print(f"bench/pods.py: KubeEdge's edgecore not measured: {why}", file=sys.stderr)
        kubeedge_bin, why_not = None, why
    load_start = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-pods-") as d, mosquitto() as broker:
        tmp = Path(d)
        ks_runtime = Containerd(tmp / "ks-ctrd")
        ke_runtime = Containerd(tmp / "ke-ctrd")
        stack = Stack(tmp, broker)
        ke: KubeEdgeEdge | None = None
        try:
            ks_runtime.start()
            stack.start_cloudcore()
            cfg_path = stack.join_edge(extra=ks_runtime.join_flags)
            # join's own heartbeats, not the short ones Stack sets for tests (as KubeEdge's defaults).
            cfg = yaml.safe_load(cfg_path.read_text())
            for key in ("heartbeat", "reconnectInitial", "reconnectMax"):
                cfg["edgeHub"].pop(key, None)
            cfg_path.write_text(yaml.safe_dump(cfg))
            stack.start_edgecore()
            edges = [Edge("kubeshore", "edge-1", ks_runtime, stack.procs["edgecore"].pid)]
            if kubeedge_bin is not None:
                ke_runtime.start()
                ke = KubeEdgeEdge.on_kubeshore(stack, kubeedge_bin, RECIPES, tmp / "ke-edge", node="ke-edge",
                                               mqtt=broker)  # fmt: skip
                ke.enable_edged(ke_runtime.endpoint, PAUSE)
                ke.start(verbosity=None)
                edges.append(Edge("kubeedge", "ke-edge", ke_runtime, stack.procs[ke.name].pid))
            for e in edges:
                wait_for(lambda e=e: node_schedulable(stack, e.node), 120, f"{e.name}: node Ready")
                # A round not counted: the first sandbox on a fresh containerd (CNI's first network) and,
                # on KubeEdge's edge, edged starting its pod sync after its kubelet is up.
                rounds_on(stack, e, 1, 1, keep_last=False)
            rows: list[dict[str, Any]] = []
            for replicas in args.replicas:
                row: dict[str, Any] = {"pods": replicas, "rounds": args.rounds}
                for e in edges:
                    samples = rounds_on(
                        stack, e, replicas, args.rounds, keep_last=replicas == max(args.replicas)
                    )
                    row[e.name] = {
                        "p50_s": round(percentile(samples, 0.5), 2),
                        "p99_s": round(percentile(samples, 0.99), 2),
                    }
                rows.append(row)
                print(json.dumps(row), flush=True)
            time.sleep(5)
            t0 = time.monotonic()
            c0 = {e.name: cpu_seconds(e.pid) for e in edges}
            time.sleep(args.idle)
            wall = time.monotonic() - t0
            idle = {
                e.name: {
                    "pods": max(args.replicas),
                    "edgecore_rss_mb": rss_mb(e.pid),
                    "edgecore_cpu_cores": round((cpu_seconds(e.pid) - c0[e.name]) / wall, 3),
                }
                for e in edges
            }
        finally:
            stack.stop_all()
            ks_runtime.stop()
            ke_runtime.stop()
            if ke is not None:
                ke.cleanup()
    measured_kubeedge = "kubeedge" in idle
    result: dict[str, Any] = {
        "title": "Pods at the edge: kubeshore's edged and KubeEdge's side by side",
        "description": describe(measured_kubeedge, why_not),
        "command": "python bench/pods.py",
        "startup": rows,
        "idle": idle["kubeshore"],
    }
    if measured_kubeedge:
        result["kubeedge"] = {f"idle.{k}": v for k, v in idle["kubeedge"].items()}
    result["machine"] = (
        f"{os.cpu_count()} cores ({_cpu_model()}), {platform.machine()}, Python {platform.python_version()}; "
        f"shared with other engineers' test suites: load average {load_start:.1f} at the start, "
        f"{os.getloadavg()[0]:.1f} at the end"
    )
    return result


def describe(measured_kubeedge: bool, why_not: str = "") -> str:
    return (
        "Deployment applied -> all Pods Ready on one edge node (standalone cloudcore's controllers make "
        "them and the scheduler places them on the node by a nodeSelector on its hostname label; the node's "
        "edged runs them on a containerd "
        "of its own through CRI), p50 and p99 over the rounds (with 3 rounds p99 is the slowest), after "
        "one warm-up round not counted; then each edgecore with the "
        "largest count running, idle over the same 30 s. Both edgecores in the same run, under the same "
        "cloudcore, with their default heartbeats and log levels; each node's Deployment in turn (the "
        "other node idle meanwhile). "
        + (
            "KubeEdge's edgecore (v1.23.0-beta.0-150, built from source) runs its edged, KubeEdge's "
            "embedded kubelet, as the interop lane sets it up: every path in the run's directory, a "
            "cgroup root of its own, a mount namespace of its own (the kubelet's fixed "
            "/var/lib/kubelet/device-plugins), no iptables on its PATH. Its RSS and CPU include the whole "
            "kubelet (cadvisor, PLEG relisting every second, status manager); each of its status patches "
            "waits for the cloud's answer."
            if measured_kubeedge
            else f"KubeEdge's edgecore was not measured: {why_not}."
        )
    )


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown CPU"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--replicas", type=int, nargs="+", default=[1, 10, 50])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--idle", type=float, default=30.0, help="seconds of idle CPU measurement")
    p.add_argument("--no-kubeedge", dest="kubeedge", action="store_false", help="measure kubeshore alone")
    p.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "pods.json")
    args = p.parse_args(argv)
    if (why := missing()) is not None:
        print(f"bench/pods.py: cannot run real Pods here: {why}", file=sys.stderr)
        return 2
    result = run(args)
    write_results(args.output, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
