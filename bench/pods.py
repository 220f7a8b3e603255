"""Pods at the edge: Deployment applied -> all its Pods Running (and Ready), on one node.

Real processes: a standalone cloudcore (its workload controllers schedule the Pods), one edgecore with
edged on its own containerd, Pods from the local busybox image. For 1, 10 and 50 replicas, several
rounds each: the time from ``kubectl apply`` of the Deployment until every Pod reports Ready (p50 and
p99 over rounds), then the Deployment is deleted and the node drained before the next round. Then
edgecore's RSS and CPU with 50 Pods running and nothing changing (idle, over 30 s).

Needs root and Debian's containerd, runc, containernetworking-plugins, busybox-static, umoci, skopeo.
KubeEdge's edgecore is not measured side by side yet: running its edged (a kubelet) on the same
containerd was not attempted (see the note in the results).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
import yaml  # noqa: E402
from _peers import mosquitto  # noqa: E402
from _stack import Stack, wait_for  # noqa: E402
from pods._containerd import BUSYBOX, Containerd, missing  # noqa: E402

from bench._measure import cpu_seconds, percentile, rss_mb, write_results  # noqa: E402


def deployment(replicas: int) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "bench", "namespace": "default"},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": "bench"}},
                "template": {
                    "metadata": {"labels": {"app": "bench"}},
                    "spec": {
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


def ready_count(stack: Stack) -> int:
    out = stack.kubectl(
        "get", "pods", "-l", "app=bench", "-o",
        "jsonpath={range .items[*]}{.status.conditions[?(@.type=='Ready')].status}{'\\n'}{end}",
    )  # fmt: skip
    return sum(1 for line in out.splitlines() if line.strip() == "True")


def run(args: argparse.Namespace) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="bench-pods-") as d, mosquitto() as broker:
        tmp = Path(d)
        ctr = Containerd(tmp / "ctrd")
        ctr.start()
        stack = Stack(tmp, broker)
        try:
            stack.start_cloudcore()
            stack.join_edge(extra=("--remote-runtime-endpoint", ctr.endpoint))
            stack.start_edgecore()
            ready = "jsonpath={.status.conditions[?(@.type=='Ready')].status}"
            wait_for(lambda: "True" in stack.kubectl("get", "node", "edge-1", "-o", ready), 60, "node Ready")
            edge_pid = stack.procs["edgecore"].pid
            rows = []
            for replicas in args.replicas:
                samples = []
                for _ in range(args.rounds):
                    t0 = time.monotonic()
                    stack.apply(deployment(replicas))
                    wait_for(lambda n=replicas: ready_count(stack) == n, 300, f"{replicas} pods Ready")
                    samples.append(time.monotonic() - t0)
                    if replicas == max(args.replicas) and _ == args.rounds - 1:
                        break
                    stack.kubectl("delete", "deploy", "bench", "--wait=false")
                    wait_for(lambda: not ctr.container_pids(), 120, "node drained")
                    wait_for(
                        lambda: "bench" not in stack.kubectl("get", "pods", "-o", "name"), 120, "pods gone"
                    )
                rows.append(
                    {
                        "pods": replicas,
                        "rounds": len(samples),
                        "p50_s": round(percentile(samples, 0.5), 2),
                        "p99_s": round(percentile(samples, 0.99), 2),
                    }
                )
                print(rows[-1], flush=True)
            time.sleep(5)
            c0, t0 = cpu_seconds(edge_pid), time.monotonic()
            time.sleep(args.idle)
            cpu = (cpu_seconds(edge_pid) - c0) / (time.monotonic() - t0)
            idle = {
                "pods": max(args.replicas),
                "edgecore_rss_mb": rss_mb(edge_pid),
                "edgecore_cpu_cores": round(cpu, 3),
            }
        finally:
            stack.stop_all()
            ctr.stop()
    return {
        "title": "Pods at the edge (edged on containerd)",
        "description": (
            "Deployment applied -> all Pods Ready on one edge node (standalone cloudcore's controllers "
            "schedule them, edged runs them on containerd through CRI); then edgecore with the largest "
            "count running, idle. KubeEdge's edgecore with its edged on the same containerd was not "
            "measured (not attempted yet)."
        ),
        "command": "python bench/pods.py",
        "startup": rows,
        "idle": idle,
        "machine": f"{os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}, "
        f"load average {os.getloadavg()[0]:.1f} at the end",
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--replicas", type=int, nargs="+", default=[1, 10, 50])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--idle", type=float, default=30.0, help="seconds of idle CPU measurement")
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
