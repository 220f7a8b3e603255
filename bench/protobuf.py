"""What Kubernetes' protobuf form costs the API server: loading the generated messages, decoding the
bodies KubeEdge's cloudcore sends, encoding answers, lists and watch events.

Run: ``python -m bench.protobuf [--rounds N]``. Prints medians and p99 (microseconds) and writes
``bench/results/protobuf.json``. The bodies are the captured ones of ``tests/fixtures/protobuf``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench._measure import percentile, time_calls, write_results

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "protobuf"

_LOAD = """
import json, time
from bench._measure import rss_mb
import kubeapi.server
from kubeapi import _protobuf
before = rss_mb()
start = time.perf_counter()
_protobuf._pool()
print(json.dumps({"ms": (time.perf_counter() - start) * 1000, "rss_mb": rss_mb() - before}))
"""


def _pod(i: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"web-{i}",
            "namespace": "default",
            "uid": f"00000000-0000-0000-0000-{i:012d}",
            "resourceVersion": str(100 + i),
            "creationTimestamp": "2026-12-05T03:13:16Z",
            "labels": {"app": "web", "tier": "edge"},
        },
        "spec": {
            "nodeName": "edge-1",
            "containers": [
                {
                    "name": "main",
                    "image": "busybox",
                    "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                    "resources": {"limits": {"cpu": "250m", "memory": "64Mi"}},
                    "readinessProbe": {"httpGet": {"path": "/", "port": 8080}, "periodSeconds": 5},
                }
            ],
        },
        "status": {
            "phase": "Running",
            "podIP": "10.0.0.5",
            "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "2026-12-05T03:13:20Z"}],
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3000)
    opts = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from kubeapi import _protobuf

    loads = [
        json.loads(
            subprocess.run(
                [sys.executable, "-c", _LOAD], capture_output=True, text=True, check=True, cwd=ROOT
            ).stdout
        )
        for _ in range(5)
    ]
    node_wire = (FIXTURES / "kubeedge-node.bin").read_bytes()
    lease_wire = (FIXTURES / "kubeedge-lease-update.bin").read_bytes()
    node = _protobuf.decode(node_wire)
    pods = {
        "kind": "PodList",
        "apiVersion": "v1",
        "metadata": {"resourceVersion": "999"},
        "items": [_pod(i) for i in range(500)],
    }
    pods_json = json.dumps(pods, separators=(",", ":")).encode()
    list_rounds = max(10, opts.rounds // 100)
    results = {
        "decode_kubeedge_node": time_calls(lambda: _protobuf.decode(node_wire), opts.rounds),
        "decode_kubeedge_lease": time_calls(lambda: _protobuf.decode(lease_wire), opts.rounds),
        "encode_node": time_calls(lambda: _protobuf.encode(node), opts.rounds),
        "json_dumps_node": time_calls(lambda: json.dumps(node, separators=(",", ":")), opts.rounds),
        "watch_frame_pod": time_calls(lambda: _protobuf.watch_frame("MODIFIED", _pod(1)), opts.rounds),
        "list_500_pods_json_to_protobuf": time_calls(
            lambda: _protobuf.encode(json.loads(pods_json)), list_rounds
        ),
    }
    report = {
        "title": "Kubernetes protobuf in the embedded API server",
        "description": (
            "Loading the generated messages (first protobuf request; in a fresh process, 5 runs), "
            "decoding the Node and Lease bodies KubeEdge's cloudcore sent, encoding answers, a watch "
            "event and a 500-Pod list answer from the stored JSON."
        ),
        "command": "python -m bench.protobuf",
        "machine": {"cpus": os.cpu_count(), "loadavg_1m": round(os.getloadavg()[0], 2)},
        "first_load_ms_median": round(percentile([r["ms"] for r in loads], 0.5), 1),
        "first_load_rss_mb_median": round(percentile([r["rss_mb"] for r in loads], 0.5), 1),
        "node_wire_bytes": len(node_wire),
        "results": results,
    }
    for name, r in results.items():
        print(f"{name:34s} median {r['median_us']:10.1f} us   p99 {r['p99_us']:10.1f} us")
    print(
        f"first load: {report['first_load_ms_median']} ms, +{report['first_load_rss_mb_median']} MB RSS "
        f"(load {report['machine']['loadavg_1m']})"
    )
    write_results(ROOT / "bench" / "results" / "protobuf.json", report, show=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
