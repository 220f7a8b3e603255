"""Benchmark of the embedded API server (`kubeshore apiserver` as a separate process).

    python -m bench.apiserver [--objects 100000] [--quick]

Measures, against a fresh data dir:
  * creates/s of KubeEdge Devices with 8 concurrent clients (8 connections);
  * listing 10,000 Devices (request + full JSON decode on the client), median and p99 of runs;
  * watch delivery latency (write acknowledged -> event decoded by the watcher) with 100 watchers
    while a writer creates 500 objects/s: (a) each watcher watches its own namespace (as edge nodes
    watch their own objects), (b) 10 watchers all see every event;
  * the server's RSS once it holds --objects objects.
The load generators are aiohttp clients in separate processes; each reports the CPU time it used,
so the JSON shows they were not saturated (a generator using ~100% of a core would be the bottleneck).
Writes bench/results/apiserver.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import resource
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import yaml

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results" / "apiserver.json"
DEVICES = "/apis/devices.kubeedge.io/v1beta1"


def _device(name: str, namespace: str, stamp: float | None = None) -> bytes:
    obj = yaml.safe_load((REPO / "examples" / "device-virtual-thermometer.yaml").read_text())
    obj["metadata"] = {"name": name, "namespace": namespace, "labels": {"site": "a", "bench": "yes"}}
    if stamp is not None:
        obj["metadata"]["annotations"] = {"bench/sent": repr(stamp)}
    return json.dumps(obj).encode()


class _Conn:
    def __init__(self, data_dir: Path) -> None:
        config = yaml.safe_load((data_dir / "admin.kubeconfig").read_text())
        self.url = config["clusters"][0]["cluster"]["server"]
        self.token = (data_dir / "pki" / "admin.token").read_text().strip()
        self.ssl = ssl.create_default_context(cafile=str(data_dir / "pki" / "ca.crt"))
        self.headers = {"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"}


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))]


# -- creates ---------------------------------------------------------------------------------


async def _creates(data_dir: Path, start: int, count: int, clients: int, namespaces: int) -> dict[str, float]:
    conn = _Conn(data_dir)
    bodies = [
        (f"ns-{i % namespaces}", _device(f"dev-{i}", f"ns-{i % namespaces}"))
        for i in range(start, start + count)
    ]
    next_index = 0
    failures = 0

    async def client() -> None:
        nonlocal next_index, failures
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1, ssl=conn.ssl)) as session:
            while next_index < len(bodies):
                ns, body = bodies[next_index]
                next_index += 1
                async with session.post(
                    f"{conn.url}{DEVICES}/namespaces/{ns}/devices", data=body, headers=conn.headers
                ) as r:
                    await r.read()
                    if r.status != 201:
                        failures += 1

    cpu0, t0 = _cpu(), time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    elapsed = time.perf_counter() - t0
    return {
        "elapsed_s": elapsed,
        "creates_per_s": count / elapsed,
        "failures": failures,
        "client_cpu_fraction": (_cpu() - cpu0) / elapsed,
    }


def _run_creates(data_dir: Path, start: int, count: int, clients: int, namespaces: int, out: Any) -> None:
    out.put(asyncio.run(_creates(data_dir, start, count, clients, namespaces)))


# -- list ------------------------------------------------------------------------------------


async def _lists(data_dir: Path, namespace: str, runs: int) -> dict[str, Any]:
    conn = _Conn(data_dir)
    times = []
    count = 0
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=conn.ssl)) as session:
        for _ in range(runs):
            t0 = time.perf_counter()
            async with session.get(
                f"{conn.url}{DEVICES}/namespaces/{namespace}/devices", headers=conn.headers
            ) as r:
                doc = json.loads(await r.read())
            times.append(time.perf_counter() - t0)
            count = len(doc["items"])
    return {"items": count, "median_s": statistics.median(times), "p99_s": _pct(times, 0.99), "runs": runs}


def _run_lists(data_dir: Path, namespace: str, runs: int, out: Any) -> None:
    out.put(asyncio.run(_lists(data_dir, namespace, runs)))


# -- watch latency ---------------------------------------------------------------------------


async def _watchers(data_dir: Path, paths: list[str], duration: float, ready: Any) -> dict[str, Any]:
    conn = _Conn(data_dir)
    latencies: list[float] = []
    events = 0

    async def watcher(session: aiohttp.ClientSession, path: str) -> None:
        nonlocal events
        async with session.get(
            f"{conn.url}{path}", headers=conn.headers, timeout=aiohttp.ClientTimeout(total=None)
        ) as r:
            buf = b""
            async for chunk in r.content.iter_any():
                now = time.time()
                buf += chunk
                *lines, buf = buf.split(b"\n")
                for line in lines:
                    ev = json.loads(line)
                    sent = ((ev["object"].get("metadata") or {}).get("annotations") or {}).get("bench/sent")
                    if sent:
                        latencies.append(now - float(sent))
                        events += 1

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0, ssl=conn.ssl)) as session:
        tasks = [asyncio.create_task(watcher(session, p)) for p in paths]
        await asyncio.sleep(1.0)
        ready.set()
        cpu0 = _cpu()
        await asyncio.sleep(duration)
        cpu = _cpu() - cpu0
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return {"latencies": latencies, "events": events, "client_cpu_fraction": cpu / duration}


def _run_watchers(data_dir: Path, paths: list[str], duration: float, ready: Any, out: Any) -> None:
    out.put(asyncio.run(_watchers(data_dir, paths, duration, ready)))


async def _writer(data_dir: Path, rate: float, duration: float, namespaces: list[str]) -> dict[str, Any]:
    conn = _Conn(data_dir)
    sent = 0
    t0 = time.perf_counter()
    cpu0 = _cpu()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=16, ssl=conn.ssl)) as session:
        inflight: set[asyncio.Task[None]] = set()

        async def create(i: int) -> None:
            ns = namespaces[i % len(namespaces)]
            body = _device(f"lat-{os.getpid()}-{i}", ns, time.time())
            async with session.post(
                f"{conn.url}{DEVICES}/namespaces/{ns}/devices", data=body, headers=conn.headers
            ) as r:
                await r.read()

        while (elapsed := time.perf_counter() - t0) < duration:
            target = int(elapsed * rate)
            while sent < target:
                task = asyncio.create_task(create(sent))
                inflight.add(task)
                task.add_done_callback(inflight.discard)
                sent += 1
            await asyncio.sleep(0.002)
        await asyncio.gather(*inflight)
    return {
        "writes": sent,
        "writes_per_s": sent / (time.perf_counter() - t0),
        "client_cpu_fraction": (_cpu() - cpu0) / duration,
    }


def _run_writer(data_dir: Path, rate: float, duration: float, namespaces: list[str], out: Any) -> None:
    out.put(asyncio.run(_writer(data_dir, rate, duration, namespaces)))


# -- orchestration ---------------------------------------------------------------------------


def _in_process(target: Any, *args: Any) -> Any:
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    proc = ctx.Process(target=target, args=(*args, out))
    proc.start()
    result = out.get()
    proc.join()
    return result


def _watch_round(
    data_dir: Path, watcher_paths: list[list[str]], namespaces: list[str], rate: float, duration: float
) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    readies = [ctx.Event() for _ in watcher_paths]
    procs = [
        ctx.Process(target=_run_watchers, args=(data_dir, paths, duration + 2, ready, out))
        for paths, ready in zip(watcher_paths, readies, strict=True)
    ]
    for p in procs:
        p.start()
    for r in readies:
        r.wait(60)
    writer = _in_process(_run_writer, data_dir, rate, duration, namespaces)
    results = [out.get() for _ in procs]
    for p in procs:
        p.join()
    lat = [x for r in results for x in r["latencies"]]
    return {
        "watchers": sum(len(p) for p in watcher_paths),
        "events_delivered": sum(r["events"] for r in results),
        "writer": writer,
        "latency_ms": {
            "p50": _pct(lat, 0.5) * 1000,
            "p90": _pct(lat, 0.9) * 1000,
            "p99": _pct(lat, 0.99) * 1000,
            "max": max(lat) * 1000 if lat else float("nan"),
        },
        "watcher_client_cpu_fraction": [round(r["client_cpu_fraction"], 3) for r in results],
    }


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _kubectl(data_dir: Path, *args: str) -> None:
    subprocess.run(
        ["kubectl", *args],
        check=True,
        capture_output=True,
        env={**os.environ, "KUBECONFIG": str(data_dir / "admin.kubeconfig")},
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--objects", type=int, default=100_000, help="objects held when RSS is measured")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of each watch round")
    parser.add_argument("--no-write", action="store_true", help="do not write bench/results/apiserver.json")
    args = parser.parse_args(argv)
    results: dict[str, Any] = {"machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]}}
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "data"
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "kubeshore.cli",
                "apiserver",
                "--data-dir",
                str(data_dir),
                "--port",
                "0",
                "--log-level",
                "warning",
            ],
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert server.stderr is not None
            while "serving on" not in server.stderr.readline():
                if server.poll() is not None:
                    raise SystemExit("apiserver did not start")
            _kubectl(data_dir, "apply", "-f", str(REPO / "crds"))
            _kubectl(data_dir, "wait", "--for=condition=Established", "crd", "--all", "--timeout=30s")
            ns_names = ["bench"] + [f"ns-{i}" for i in range(101)]
            manifest = "\n---\n".join(
                f"apiVersion: v1\nkind: Namespace\nmetadata: {{name: {n}}}" for n in ns_names
            )
            subprocess.run(
                ["kubectl", "apply", "-f", "-"],
                input=manifest,
                text=True,
                check=True,
                capture_output=True,
                env={**os.environ, "KUBECONFIG": str(data_dir / "admin.kubeconfig")},
            )

            print("creates: 10,000 Devices, 8 concurrent clients ...", flush=True)
            creates = _in_process(_run_creates, data_dir, 0, 10_000, 8, 1)
            results["creates"] = {"objects": 10_000, "clients": 8, **creates}
            print(
                f"  {creates['creates_per_s']:.0f} creates/s "
                f"(client CPU {creates['client_cpu_fraction']:.0%})",
                flush=True,
            )

            print("list: 10,000 Devices ...", flush=True)
            results["list_10000"] = _in_process(_run_lists, data_dir, "ns-0", 7)
            print(f"  median {results['list_10000']['median_s'] * 1000:.0f} ms", flush=True)

            print("watch: 100 watchers, one namespace each, 500 writes/s ...", flush=True)
            own = [f"ns-{i}" for i in range(1, 101)]
            paths = [f"{DEVICES}/namespaces/{ns}/devices?watch=1" for ns in own]
            results["watch_100_own_namespace"] = _watch_round(
                data_dir, [paths[0::2], paths[1::2]], own, 500, args.duration
            )
            print(f"  {results['watch_100_own_namespace']['latency_ms']}", flush=True)

            print("watch: 10 watchers of everything, 500 writes/s ...", flush=True)
            rv_path = f"{DEVICES}/namespaces/bench/devices?watch=1"
            results["watch_10_all_events"] = _watch_round(
                data_dir,
                [[rv_path] * 5, [rv_path] * 5],
                ["bench"],
                500,
                args.duration,
            )
            print(f"  {results['watch_10_all_events']['latency_ms']}", flush=True)

            held = 10_000 + sum(r["writer"]["writes"] for k, r in results.items() if k.startswith("watch"))
            remaining = max(0, args.objects - held)
            print(f"filling to {args.objects} objects ...", flush=True)
            if remaining:
                fill = _in_process(_run_creates, data_dir, 10_000, remaining, 8, 100)
                results["fill"] = {"objects": remaining, **fill}
            results["rss_mb"] = {"objects": args.objects, "server_rss_mb": round(_rss_mb(server.pid), 1)}
            results["list_10000_at_full"] = _in_process(_run_lists, data_dir, "ns-0", 5)
            print(f"  RSS {results['rss_mb']['server_rss_mb']} MB", flush=True)
        finally:
            server.terminate()
            server.wait(30)
    results["targets"] = {
        "creates_per_s >= 1500": results["creates"]["creates_per_s"] >= 1500,
        "list_10000 < 1 s": results["list_10000"]["median_s"] < 1.0,
        "watch p99 < 50 ms": results["watch_100_own_namespace"]["latency_ms"]["p99"] < 50,
        "rss < 500 MB": results["rss_mb"]["server_rss_mb"] < 500,
    }
    print(json.dumps(results, indent=2))
    if not args.no_write:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
