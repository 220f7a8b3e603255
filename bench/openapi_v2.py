"""What serving ``/openapi/v2`` as protobuf costs `kubeshore apiserver` (a separate process, the project's
CRDs installed): its RSS and CPU once started (nothing is built then), after the ``/openapi/v3``
documents kubectl reads first, and after the first protobuf ``/openapi/v2`` request (which loads the
generated messages and encodes the document); the latency of that
first request and of later ones (served from the per-hash cache).

Run: ``python -m bench.openapi_v2 [--runs 3] [--requests 50]``; medians over the runs. Writes
``bench/results/openapi_v2.json``.
"""

from __future__ import annotations

import argparse
import os
import platform
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from _stack import start_apiserver  # noqa: E402

from bench._measure import cpu_seconds, percentile, rss_mb, write_results  # noqa: E402
from up.processes import Processes  # noqa: E402

CLIENT_GO = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"


class _Server:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        # The log beside the data directory, which the server creates with its own modes.
        self.processes = Processes(data_dir.parent, cwd=ROOT)
        self.url = start_apiserver(self.processes, data_dir, "--log-level", "warning")
        self.pid = self.processes.pid("apiserver")
        pki = data_dir / "pki"
        self.token = (pki / "admin.token").read_text().strip()
        self.context = ssl.create_default_context(cafile=str(pki / "ca.crt"))

    def get(self, path: str, accept: str = "application/json") -> tuple[float, int]:
        headers = {"Authorization": f"Bearer {self.token}", "Accept": accept}
        began = time.perf_counter()
        request = urllib.request.Request(self.url + path, headers=headers)
        with urllib.request.urlopen(request, context=self.context, timeout=60) as response:
            size = len(response.read())
        return (time.perf_counter() - began) * 1000, size

    def stop(self) -> None:
        self.processes.stop_all(grace=30)


def _run(requests: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-openapi-") as scratch:
        server = _Server(Path(scratch) / "data")
        try:
            pid = server.pid
            env = {**os.environ, "KUBECONFIG": str(Path(scratch) / "data" / "admin.kubeconfig")}
            subprocess.run(
                ["kubectl", "apply", "-f", str(ROOT / "crds")], env=env, check=True, capture_output=True
            )
            time.sleep(2)
            out: dict[str, Any] = {"started_rss_mb": rss_mb(pid), "started_cpu_s": cpu_seconds(pid)}
            server.get("/openapi/v3")
            server.get("/openapi/v3/api/v1")
            out["after_v3_rss_mb"] = rss_mb(pid)
            cpu = cpu_seconds(pid)
            out["first_v2_ms"], out["v2_bytes"] = server.get("/openapi/v2", CLIENT_GO)
            out["first_v2_server_cpu_s"] = cpu_seconds(pid) - cpu
            cached = sorted(server.get("/openapi/v2", CLIENT_GO)[0] for _ in range(requests))
            out["cached_v2_median_ms"] = statistics.median(cached)
            out["cached_v2_p99_ms"] = percentile(cached, 0.99)
            out["after_v2_rss_mb"] = rss_mb(pid)
            return out
        finally:
            server.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--requests", type=int, default=50)
    opts = parser.parse_args(argv)
    load = os.getloadavg()[0]
    runs = [_run(opts.requests) for _ in range(opts.runs)]
    medians = {key: round(statistics.median(run[key] for run in runs), 2) for key in runs[0]}
    for name, value in medians.items():
        print(f"{name:28} {value}")
    results = {
        "title": "OpenAPI v2 in protobuf (kubeapi)",
        "description": (
            "`kubeshore apiserver` with the project's CRDs: RSS and CPU at start, after the /openapi/v3 "
            "documents, and after the first protobuf /openapi/v2 request (built lazily: nothing is loaded "
            "at start); latency of the first request and of cached ones. Medians over the runs."
        ),
        "command": "python -m bench.openapi_v2",
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, load {load:.1f}, "
        f"Python {platform.python_version()}",
        "runs": opts.runs,
        **medians,
    }
    write_results(ROOT / "bench" / "results" / "openapi_v2.json", results, show=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
