"""What the API server spends per request in kubeapi's pure modules: admission of a custom resource
(prune, default, validate), patches of each type, and building the OpenAPI documents.

Run: ``python -m bench.apiserver_semantics [--batches N]``. Each operation runs in batches of 100 calls;
the median and p99 of the per-call time over the batches are printed (microseconds) with the process
RSS, and written to ``bench/results/apiserver_semantics.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._measure import write_results  # noqa: E402
from kubeapi import openapi, patch, schema  # noqa: E402

BATCH = 100


def per_call_us(fn: Callable[[], object], batches: int) -> dict[str, float]:
    fn()
    per_call = []
    for _ in range(batches):
        began = time.perf_counter()
        for _ in range(BATCH):
            fn()
        per_call.append((time.perf_counter() - began) / BATCH * 1e6)
    per_call.sort()
    return {
        "median_us": round(statistics.median(per_call), 2),
        "p99_us": round(per_call[min(len(per_call) - 1, math.ceil(len(per_call) * 0.99) - 1)], 2),
        "calls": batches * BATCH,
    }


def crd_schema(name: str) -> dict[str, Any]:
    crd = yaml.safe_load((ROOT / "crds" / f"{name}.yaml").read_text())
    return dict(crd["spec"]["versions"][-1]["schema"]["openAPIV3Schema"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=100)
    opts = parser.parse_args(argv)

    device_schema = crd_schema("devices.devices.kubeedge.io")
    device = yaml.safe_load((ROOT / "tests" / "fixtures" / "device_full.yaml").read_text())
    bad_device = json.loads(json.dumps(device))
    bad_device["spec"]["properties"][0]["collectCycle"] = "often"
    lists = patch.strategic_merge_lists("apps", "v1", "Deployment")
    assert lists is not None
    containers = [
        {"name": f"c{i}", "image": "nginx:1", "env": [{"name": f"E{j}", "value": "v"} for j in range(10)]}
        for i in range(4)
    ]
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "spec": {"template": {"spec": {"containers": containers}}},
    }
    apply_patch = {
        "spec": {
            "template": {
                "spec": {
                    "$setElementOrder/containers": [{"name": c["name"]} for c in containers],
                    "containers": [{"name": "c2", "image": "nginx:2"}],
                }
            }
        }
    }
    resources = list(openapi.BUILTIN_RESOURCES)
    for path in sorted((ROOT / "crds").glob("*.yaml")):
        resources.extend(openapi.resources_from_crd(yaml.safe_load(path.read_text())))
    assert not schema.admit(device_schema, device).errors

    results: dict[str, Any] = {
        "admit_device": per_call_us(lambda: schema.admit(device_schema, device), opts.batches),
        "admit_invalid_device_and_status": per_call_us(
            lambda: schema.invalid_status(
                "Device", "devices.kubeedge.io", "d", schema.admit(device_schema, bad_device).errors
            ),
            opts.batches,
        ),
        "strategic_merge_patch_deployment": per_call_us(
            lambda: patch.apply_strategic_merge_patch(deployment, apply_patch, lists), opts.batches
        ),
        "merge_patch_device_status": per_call_us(
            lambda: patch.apply_merge_patch(device, {"status": {"reportToCloud": True}}), opts.batches
        ),
        "json_patch_device": per_call_us(
            lambda: patch.apply_json_patch(
                device, [{"op": "replace", "path": "/spec/nodeName", "value": "n2"}]
            ),
            opts.batches,
        ),
        "check_structural_device_crd": per_call_us(
            lambda: schema.check_structural(device_schema), max(10, opts.batches // 10)
        ),
        "build_openapi_all_kinds": per_call_us(
            lambda: openapi.build_openapi(resources), max(2, opts.batches // 50)
        ),
    }
    results["rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    for name, value in results.items():
        print(f"{name:40} {value}")
    results = {
        "title": "API semantics: admission, patches, OpenAPI (kubeapi)",
        "description": (
            "Per-call cost of the pure modules behind each API request: prune+default+validate of a fully "
            "populated Device (and of an invalid one, with its 422 body), a kubectl-apply strategic merge "
            "patch of a 4-container Deployment, merge and JSON patches, the structural check of the Device "
            "CRD, and building every OpenAPI document for the built-in kinds and the project's CRDs."
        ),
        "command": "python -m bench.apiserver_semantics",
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}, "
        f"Python {platform.python_version()}",
        **results,
    }
    write_results(ROOT / "bench" / "results" / "apiserver_semantics.json", results, show=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
