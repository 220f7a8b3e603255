"""Benchmark of the embedded API server (`kubeshore apiserver` as a separate process) and, in the same
run and the same way, of kube-apiserver + etcd from ../shared/kubernetes (run-control-plane.sh).

    python -m bench.apiserver [--objects 100000] [--duration 10] [--server both|embedded|kube-apiserver]
                              [--no-write]

Against a fresh data dir it measures:
  * creates/s with 8 concurrent clients (8 connections): KubeEdge Devices (every create is pruned,
    defaulted and validated against the Device CRD schema) and ConfigMaps of the same size (built-in);
  * listing 10,000 Devices (request + full JSON decode by the client), median/p99 of runs;
  * watch delivery latency (the writer's timestamp in the object -> event decoded by the watcher)
    while a writer creates 500 ConfigMaps/s: (a) 100 watchers, each watching its own namespace (as
    edge nodes watch their own objects), (b) 10 watchers that all see every event;
  * the server's RSS once it holds --objects objects (Devices and ConfigMaps).
For each phase it also reports the server's own CPU time per operation (from /proc), which, unlike
wall-clock rates, does not depend on what else runs on the machine, and the load average.
The load generators are aiohttp clients in separate processes and report the CPU they used.
Writes bench/results/apiserver.json.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script too
import aiohttp
import yaml

from bench._measure import cpu_seconds, percentile, rss_mb, write_results
from up.processes import Processes

Pids = tuple[int, ...]

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results" / "apiserver.json"
PATHS = {
    "devices": "/apis/devices.kubeedge.io/v1beta1/namespaces/{ns}/devices",
    "configmaps": "/api/v1/namespaces/{ns}/configmaps",
}
_TEMPLATE: dict[str, Any] = {}


def _body(kind: str, name: str, namespace: str, stamp: float | None = None) -> bytes:
    if not _TEMPLATE:
        _TEMPLATE.update(yaml.safe_load((REPO / "examples" / "device-virtual-thermometer.yaml").read_text()))
    meta: dict[str, Any] = {"name": name, "namespace": namespace, "labels": {"site": "a", "bench": "yes"}}
    if stamp is not None:
        meta["annotations"] = {"bench/sent": repr(stamp)}
    if kind == "devices":
        return json.dumps({**_TEMPLATE, "metadata": meta}).encode()
    # A ConfigMap carrying the same payload, so both kinds store objects of the same size.
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": meta,
            "data": {"spec": json.dumps(_TEMPLATE["spec"])},
        }
    ).encode()


class _Conn:
    """Server URL, TLS and credentials from a kubeconfig (token or client certificate, files or data)."""

    def __init__(self, kubeconfig: Path) -> None:
        config = yaml.safe_load(kubeconfig.read_text())
        cluster = config["clusters"][0]["cluster"]
        user = config["users"][0]["user"]
        self.url = cluster["server"]
        if "certificate-authority-data" in cluster:
            self.ssl = ssl.create_default_context(
                cadata=base64.b64decode(cluster["certificate-authority-data"]).decode()
            )
        else:
            self.ssl = ssl.create_default_context(cafile=cluster["certificate-authority"])
        self.headers = {"Content-Type": "application/json"}
        if user.get("token"):
            self.headers["Authorization"] = f"Bearer {user['token']}"
        elif "client-certificate-data" in user:
            pem = kubeconfig.parent / f".bench-client-{os.getpid()}.pem"
            pem.write_bytes(
                base64.b64decode(user["client-certificate-data"]) + base64.b64decode(user["client-key-data"])
            )
            pem.chmod(0o600)
            self.ssl.load_cert_chain(pem)
            pem.unlink()
        else:
            self.ssl.load_cert_chain(user["client-certificate"], user["client-key"])


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _proc_cpu(pids: Pids) -> float:
    """CPU seconds of the server's processes (kube-apiserver counts with its etcd)."""
    return sum(cpu_seconds(pid) for pid in pids)


async def _creates(
    kubeconfig: Path, kind: str, start: int, count: int, clients: int, namespaces: list[str]
) -> dict[str, Any]:
    conn = _Conn(kubeconfig)
    bodies = [
        (ns := namespaces[i % len(namespaces)], _body(kind, f"{kind[:3]}-{i}", ns))
        for i in range(start, start + count)
    ]
    next_index = 0
    failures: dict[int, int] = {}

    async def client() -> None:
        nonlocal next_index
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1, ssl=conn.ssl)) as session:
            while next_index < len(bodies):
                ns, body = bodies[next_index]
                next_index += 1
                url = conn.url + PATHS[kind].format(ns=ns)
                async with session.post(url, data=body, headers=conn.headers) as r:
                    await r.read()
                    if r.status != 201:
                        failures[r.status] = failures.get(r.status, 0) + 1

    cpu0, t0 = _cpu(), time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    elapsed = time.perf_counter() - t0
    return {
        "kind": kind,
        "objects": count,
        "clients": clients,
        "elapsed_s": round(elapsed, 3),
        "creates_per_s": round(count / elapsed, 1),
        "failures": failures,
        "client_cpu_fraction": round((_cpu() - cpu0) / elapsed, 3),
    }


async def _lists(kubeconfig: Path, namespace: str, runs: int) -> dict[str, Any]:
    conn = _Conn(kubeconfig)
    times = []
    count = 0
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=conn.ssl)) as session:
        for _ in range(runs):
            t0 = time.perf_counter()
            async with session.get(
                conn.url + PATHS["devices"].format(ns=namespace), headers=conn.headers
            ) as r:
                doc = json.loads(await r.read())
            times.append(time.perf_counter() - t0)
            count = len(doc["items"])
    return {
        "items": count,
        "runs": runs,
        "median_s": round(statistics.median(times), 4),
        "p99_s": round(percentile(times, 0.99), 4),
    }


async def _watchers(kubeconfig: Path, paths: list[str], tag: str, ready: Any, stop: Any) -> dict[str, Any]:
    conn = _Conn(kubeconfig)
    latencies: list[float] = []

    async def watcher(session: aiohttp.ClientSession, path: str) -> None:
        async with session.get(
            conn.url + path, headers=conn.headers, timeout=aiohttp.ClientTimeout(total=None)
        ) as r:
            buf = b""
            async for chunk in r.content.iter_any():
                now = time.time()
                buf += chunk
                *lines, buf = buf.split(b"\n")
                for line in lines:
                    meta = json.loads(line)["object"].get("metadata") or {}
                    sent = (meta.get("annotations") or {}).get("bench/sent")
                    # Only this round's objects: a watch without resourceVersion starts with old ones.
                    if sent and meta.get("name", "").startswith(f"lat-{tag}-"):
                        latencies.append(now - float(sent))

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0, ssl=conn.ssl)) as session:
        tasks = [asyncio.create_task(watcher(session, p)) for p in paths]
        await asyncio.sleep(1.0)
        ready.set()
        cpu0, t0 = _cpu(), time.perf_counter()
        await asyncio.get_running_loop().run_in_executor(None, stop.wait)
        duration = time.perf_counter() - t0
        cpu = _cpu() - cpu0
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return {"latencies": latencies, "client_cpu_fraction": cpu / duration}


async def _writer(
    kubeconfig: Path, rate: float, duration: float, namespaces: list[str], tag: str
) -> dict[str, Any]:
    conn = _Conn(kubeconfig)
    sent = 0
    t0 = time.perf_counter()
    cpu0 = _cpu()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=16, ssl=conn.ssl)) as session:
        inflight: set[asyncio.Task[None]] = set()

        async def create(i: int) -> None:
            ns = namespaces[i % len(namespaces)]
            body = _body("configmaps", f"lat-{tag}-{i}", ns, time.time())
            async with session.post(
                conn.url + PATHS["configmaps"].format(ns=ns), data=body, headers=conn.headers
            ) as r:
                await r.read()

        while (elapsed := time.perf_counter() - t0) < duration:
            while sent < int(elapsed * rate):
                task = asyncio.create_task(create(sent))
                inflight.add(task)
                task.add_done_callback(inflight.discard)
                sent += 1
            await asyncio.sleep(0.002)
        await asyncio.gather(*inflight)
    elapsed = time.perf_counter() - t0
    return {
        "writes": sent,
        "writes_per_s": round(sent / elapsed, 1),
        "client_cpu_fraction": round((_cpu() - cpu0) / elapsed, 3),
    }


def _child(target: Any, args: tuple[Any, ...], out: Any) -> None:
    out.put(asyncio.run(target(*args)))


def _watch_child(args: tuple[Any, ...], out: Any) -> None:
    out.put(asyncio.run(_watchers(*args)))


def _in_process(target: Any, *args: Any) -> Any:
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    proc = ctx.Process(target=_child, args=(target, args, out))
    proc.start()
    result = out.get()
    proc.join()
    return result


def _measured(pids: Pids, ops_key: str, target: Any, *args: Any) -> dict[str, Any]:
    cpu0 = _proc_cpu(pids)
    result: dict[str, Any] = _in_process(target, *args)
    ops = result[ops_key] if isinstance(result[ops_key], int) else 1
    result["server_cpu_s"] = round(_proc_cpu(pids) - cpu0, 2)
    result["server_cpu_us_per_op"] = round(result["server_cpu_s"] / max(ops, 1) * 1e6, 1)
    # What one dedicated core could do at this CPU cost: rates measured on a shared, loaded machine
    # say more about the neighbours than about the server.
    result["server_capacity_per_core_per_s"] = round(1e6 / max(result["server_cpu_us_per_op"], 1.0), 1)
    result["load_average"] = round(os.getloadavg()[0], 2)
    return result


def _watch_round(
    pids: Pids,
    kubeconfig: Path,
    groups: list[list[str]],
    namespaces: list[str],
    rate: float,
    duration: float,
    tag: str,
) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    readies = [ctx.Event() for _ in groups]
    stop = ctx.Event()
    procs = [
        ctx.Process(target=_watch_child, args=((kubeconfig, paths, tag, ready, stop), out))
        for paths, ready in zip(groups, readies, strict=True)
    ]
    for p in procs:
        p.start()
    for r in readies:
        r.wait(60)
    cpu0 = _proc_cpu(pids)
    writer = _in_process(_writer, kubeconfig, rate, duration, namespaces, tag)
    time.sleep(3.0)  # let the last events arrive
    stop.set()
    results = [out.get() for _ in procs]
    server_cpu = _proc_cpu(pids) - cpu0
    for p in procs:
        p.join()
    lat = [x for r in results for x in r["latencies"]]
    return {
        "watchers": sum(len(g) for g in groups),
        "events_delivered": len(lat),
        "writer": writer,
        "latency_ms": {
            "p50": round(percentile(lat, 0.5) * 1000, 2),
            "p90": round(percentile(lat, 0.9) * 1000, 2),
            "p99": round(percentile(lat, 0.99) * 1000, 2),
            "max": round(max(lat) * 1000, 2) if lat else None,
        },
        "server_cpu_s": round(server_cpu, 2),
        "watcher_client_cpu_fraction": [round(r["client_cpu_fraction"], 3) for r in results],
        "load_average": round(os.getloadavg()[0], 2),
    }


def _phases(results: dict[str, Any], pids: Pids, kubeconfig: Path, args: argparse.Namespace) -> None:
    """Every measurement against one server, given its admin kubeconfig and its processes."""
    env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
    subprocess.run(["kubectl", "apply", "-f", str(REPO / "crds")], env=env, check=True, capture_output=True)
    subprocess.run(
        ["kubectl", "wait", "--for=condition=Established", "crd", "--all"],
        env=env,
        check=True,
        capture_output=True,
    )
    spread = [f"ns-{i}" for i in range(1, 101)]
    manifest = "\n---\n".join(
        f"apiVersion: v1\nkind: Namespace\nmetadata: {{name: {n}}}" for n in ["list", "cm", "all", *spread]
    )
    subprocess.run(
        ["kubectl", "apply", "-f", "-"], input=manifest, text=True, env=env, check=True, capture_output=True
    )
    if args.watch_only:
        _watch_rounds(results, pids, kubeconfig, spread, args.duration)
        return
    print("creates: 10,000 Devices, 8 concurrent clients ...", flush=True)
    results["creates_devices"] = _measured(
        pids, "objects", _creates, kubeconfig, "devices", 0, 10_000, 8, ["list"]
    )
    print(f"  {results['creates_devices']}", flush=True)
    print("creates: 10,000 ConfigMaps, 8 concurrent clients ...", flush=True)
    results["creates_configmaps"] = _measured(
        pids, "objects", _creates, kubeconfig, "configmaps", 0, 10_000, 8, ["cm"]
    )
    print(f"  {results['creates_configmaps']}", flush=True)
    print("list: 10,000 Devices ...", flush=True)
    results["list_10000"] = _measured(pids, "runs", _lists, kubeconfig, "list", 7)
    results["list_10000"]["server_cpu_us_per_op"] = round(results["list_10000"]["server_cpu_s"] / 7 * 1e6, 1)
    print(f"  {results['list_10000']}", flush=True)
    _watch_rounds(results, pids, kubeconfig, spread, args.duration)
    held = 20_000 + sum(r["writer"]["writes"] for k, r in results.items() if k.startswith("watch"))
    remaining = max(0, args.objects - held)
    print(f"filling to {args.objects} objects (Devices and ConfigMaps, half each) ...", flush=True)
    if remaining:
        results["fill_devices"] = _measured(
            pids, "objects", _creates, kubeconfig, "devices", 10_000, remaining // 2, 8, spread
        )
        results["fill_configmaps"] = _measured(
            pids, "objects", _creates, kubeconfig, "configmaps", 10_000, remaining - remaining // 2, 8, spread
        )
    results["rss"] = {
        "objects": max(args.objects, held),
        "server_rss_mb": round(sum(rss_mb(pid) for pid in pids), 1),
    }
    results["list_10000_at_full"] = _in_process(_lists, kubeconfig, "list", 5)
    print(f"  {results['rss']}", flush=True)


def _embedded(results: dict[str, Any], args: argparse.Namespace) -> None:
    sys.path.insert(0, str(REPO / "tests"))
    from _stack import start_apiserver  # the tests' one way to run it

    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "data"
        procs = Processes(Path(tmp))
        try:
            start_apiserver(procs, data_dir, "--log-level", "warning")
            _phases(results, (procs.pid("apiserver"),), data_dir / "admin.kubeconfig", args)
        finally:
            procs.stop_all(grace=60)


def _kube_apiserver(results: dict[str, Any], args: argparse.Namespace) -> None:
    """The same against kube-apiserver + etcd from ../shared/kubernetes (run-control-plane.sh)."""
    sys.path.insert(0, str(REPO / "tests"))
    from _peers import control_plane  # the tests' one way to run it

    with control_plane() as cp:
        pids = (cp.pid("kube-apiserver"), cp.pid("etcd"))
        _phases(results, pids, Path(cp.kubeconfig), args)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--objects", type=int, default=100_000, help="objects held when RSS is measured")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of each watch round")
    parser.add_argument("--no-write", action="store_true", help="do not write bench/results/apiserver.json")
    parser.add_argument(
        "--watch-only",
        action="store_true",
        help="run only the watch rounds and update them in the existing results file",
    )
    parser.add_argument(
        "--server",
        choices=("both", "embedded", "kube-apiserver"),
        default="both",
        help="servers to measure (both: the embedded one, then kube-apiserver from ../shared/kubernetes)",
    )
    args = parser.parse_args(argv)
    results: dict[str, Any] = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": sys.version.split()[0],
            "load_average_at_start": round(os.getloadavg()[0], 2),
        }
    }
    if args.server in ("both", "embedded"):
        print("== embedded API server (kubeshore apiserver)", flush=True)
        _embedded(results, args)
    kube: dict[str, Any] = {}
    if args.server in ("both", "kube-apiserver"):
        print("== kube-apiserver + etcd", flush=True)
        _kube_apiserver(kube, args)
    return _finish(results, kube, args, partial=args.watch_only or args.server != "both")


def _watch_rounds(
    results: dict[str, Any], pids: Pids, kubeconfig: Path, spread: list[str], duration: float
) -> None:
    print("watch: 100 watchers, one namespace each, 500 writes/s ...", flush=True)
    paths = [PATHS["configmaps"].format(ns=ns) + "?watch=1" for ns in spread]
    results["watch_100_own_namespace"] = _watch_round(
        pids, kubeconfig, [paths[0::2], paths[1::2]], spread, 500, duration, "own"
    )
    print(f"  {results['watch_100_own_namespace']}", flush=True)
    # The same at a rate a starved server still sustains: delivery latency without write queueing.
    print("watch: 100 watchers, one namespace each, 100 writes/s ...", flush=True)
    results["watch_100_own_namespace_100_writes_per_s"] = _watch_round(
        pids, kubeconfig, [paths[0::2], paths[1::2]], spread, 100, duration, "own100"
    )
    print(f"  {results['watch_100_own_namespace_100_writes_per_s']}", flush=True)
    print("watch: 10 watchers of everything, 500 writes/s ...", flush=True)
    every = PATHS["configmaps"].format(ns="all") + "?watch=1"
    results["watch_10_all_events"] = _watch_round(
        pids, kubeconfig, [[every] * 5, [every] * 5], ["all"], 500, duration, "all"
    )
    print(f"  {results['watch_10_all_events']}", flush=True)


# For bench.report (docs/performance.md): targets from the issue; the second column is kube-apiserver + etcd
# (v1.36.2, ../shared/kubernetes) measured in the same run, the same way, on the same machine.
_LABELS: dict[str, Any] = {
    "title": "Embedded API server (kubeshore apiserver) and kube-apiserver side by side",
    "description": "Device and ConfigMap creates with 8 clients, list of 10,000 Devices, watch delivery "
    "latency with 100 watchers at 500 writes/s, RSS at N objects. server_cpu_us_per_op is the "
    "server's own CPU time per operation; server_capacity_per_core_per_s what one dedicated core does at "
    "that cost. The kube-apiserver column is kube-apiserver + etcd (CPU and RSS of both) from "
    "../shared/kubernetes, driven by the same clients in the same run. Watch latency runs from the "
    "writer's timestamp (taken before the create is sent) to the event at the watcher, so it "
    "includes the create itself: kube-apiserver's creates (etcd, fsync on a disk shared with other "
    "test suites) queue at the client, which is most of its seconds.",
    "command": "python -m bench.apiserver",
    "targets": {
        "creates_devices.creates_per_s": ">= 1500",
        "creates_devices.server_capacity_per_core_per_s": ">= 1500",
        "list_10000.median_s": "< 1",
        "watch_100_own_namespace.latency_ms.p99": "< 50",
        "rss.server_rss_mb": "< 500",
    },
}
# Per-run details of the kube-apiserver side not worth a column.
_NOT_COMPARED = ("failures", "load_average", "client_cpu_fraction", "watcher_client_cpu_fraction")


def _column(kube: dict[str, Any]) -> dict[str, Any]:
    """kube-apiserver's results as flat metric -> value, the form of the report's second column."""
    out: dict[str, Any] = {}

    def walk(obj: dict[str, Any], prefix: str) -> None:
        for key, value in obj.items():
            if isinstance(value, dict) and key not in _NOT_COMPARED:
                walk(value, f"{prefix}{key}.")
            elif key not in _NOT_COMPARED:
                out[f"{prefix}{key}"] = value

    walk(kube, "")
    return out


def _finish(results: dict[str, Any], kube: dict[str, Any], args: argparse.Namespace, *, partial: bool) -> int:
    if partial and RESULTS.exists():
        previous = json.loads(RESULTS.read_text())
        previous.update({k: v for k, v in results.items() if k != "machine"})
        if kube:
            previous["kubeedge"] = {**previous.get("kubeedge", {}), **_column(kube)}
        previous.setdefault("machine", {})["partial_run_load_average"] = round(os.getloadavg()[0], 2)
        results = previous
    else:
        results["kubeedge"] = _column(kube)
    results.update({k: v for k, v in _LABELS.items()})
    if results.get("kubeedge"):
        results["peer"] = "kube-apiserver + etcd"
    if "creates_devices" in results:
        results["meets_targets"] = {
            "creates_per_s >= 1500 (devices)": results["creates_devices"]["creates_per_s"] >= 1500,
            "creates_per_s >= 1500 (configmaps)": results["creates_configmaps"]["creates_per_s"] >= 1500,
            "server capacity >= 1500 creates/s per core (devices)": results["creates_devices"][
                "server_capacity_per_core_per_s"
            ]
            >= 1500,
            "list_10000 < 1 s": results["list_10000"]["median_s"] < 1.0,
            "watch p99 < 50 ms (100 watchers)": results["watch_100_own_namespace"]["latency_ms"]["p99"] < 50,
            "rss < 500 MB": results["rss"]["server_rss_mb"] < 500,
        }
    if not partial:
        results["machine"]["load_average_at_end"] = round(os.getloadavg()[0], 2)
    if args.no_write:
        print(json.dumps(results, indent=2))
    else:
        write_results(RESULTS, results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
