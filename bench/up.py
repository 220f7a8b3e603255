"""The whole platform on one machine: `python -m bench.up`.

Starts `kubeshore up --detach` in a fresh data directory and measures the time until everything is
ready (both nodes Ready, mappers serving), the resident memory and CPU of every process while the
example devices report for a while, the time until DeviceStatus shows changing values, and how
long `kubeshore down` takes. Repeats the start from the same directory (a resume). Writes
bench/results/up.json.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script too
from bench._measure import cpu_seconds, rss_mb, write_results
from up.processes import group_members, read_state

RESULTS = Path(__file__).resolve().parent / "results" / "up.json"


def _kubeshore(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kubeshore.cli", *args], capture_output=True, text=True, check=True
    )


def _groups(state: dict[str, Any]) -> dict[str, list[int]]:
    return {name: group_members(int(rec["pid"])) for name, rec in state["processes"].items()}


def _reported(kubeconfig: str) -> dict[str, str]:
    out = subprocess.run(
        ["kubectl", "--kubeconfig", kubeconfig, "get", "devicestatuses", "-A", "-o", "json"],
        capture_output=True,
        text=True,
        check=True,
    )
    values = {}
    for s in json.loads(out.stdout)["items"]:
        for t in (s.get("status") or {}).get("twins") or []:
            values[f"{s['metadata']['name']}/{t['propertyName']}"] = str(
                (t.get("reported") or {}).get("value")
            )
    return values


def main() -> int:
    result: dict[str, Any] = {
        "title": "kubeshore up: the whole platform on one machine",
        "description": (
            "One cloudcore with its embedded API server and the node-group controllers, two edge nodes, "
            "each with mosquitto and the virtual mapper, and the examples applied. Memory and CPU are per "
            "service (its whole process group), measured over 20 s of the example devices reporting."
        ),
    }
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "ks"
        try:
            t0 = time.monotonic()
            _kubeshore("up", "--detach", "--random-ports", "--data-dir", str(data))
            result["first_start_s"] = round(time.monotonic() - t0, 2)
            state = read_state(data)
            deadline = time.monotonic() + 120
            first: dict[str, str] = {}
            while time.monotonic() < deadline:
                now = _reported(state["kubeconfig"])
                if not first:
                    first = {k: v for k, v in now.items() if v not in ("None", "")}
                elif any(now.get(k) not in (None, "None", v) for k, v in first.items()):
                    break
                time.sleep(0.2)
            else:
                raise SystemExit("no DeviceStatus value changed within 120 s")
            result["start_to_changing_devicestatus_s"] = round(time.monotonic() - t0, 2)
            groups = _groups(state)
            cpu0 = {n: sum(cpu_seconds(p) for p in pids) for n, pids in groups.items()}
            window = 20.0
            time.sleep(window)
            rss = {n: round(sum(rss_mb(p) for p in pids), 1) for n, pids in groups.items()}
            cpu = {
                n: round((sum(cpu_seconds(p) for p in pids) - cpu0[n]) / window, 3)
                for n, pids in groups.items()
            }
            result["rss_mb"] = rss
            result["rss_mb_total"] = round(sum(rss.values()), 1)
            result["cpu_cores"] = cpu
            result["cpu_cores_total"] = round(sum(cpu.values()), 3)
            t1 = time.monotonic()
            _kubeshore("down", "--data-dir", str(data))
            result["down_s"] = round(time.monotonic() - t1, 2)
            t2 = time.monotonic()
            _kubeshore("up", "--detach", "--data-dir", str(data))
            result["resume_start_s"] = round(time.monotonic() - t2, 2)
        finally:
            subprocess.run(
                [sys.executable, "-m", "kubeshore.cli", "down", "--data-dir", str(data)], check=False
            )
    result["machine"] = f"{os.uname().machine}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}"
    write_results(RESULTS, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
