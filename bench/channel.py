"""Cloud-edge channel benchmark: simulated edge nodes speaking the real protocol against one cloudcore.

    python bench/channel.py --nodes 1000 --nodes 10000 [--workers 2] [--idle-window 45]

Starts ``kubeshore apiserver`` and ``cloudcore --kubeconfig`` as separate processes, then worker
processes that each hold many edge connections: TLS websockets with a real per-node certificate
signed by cloudcore's CA (read from the cluster's ``kubeedge/casecret``, as ``/edge.crt`` would
issue it), websocket pings every ``--heartbeat`` seconds like edgecore, and an ACK for every object
received. Measures, per node count:

* connect: time until every node holds a session (cloudhub_connected_nodes);
* cloudcore RSS after connecting and its peak (VmHWM);
* fan-out: one Service update -> the time each node receives it (p50/p99/max);
* reconnect: every node disconnects, the Service changes, every node reconnects; the time until every
  node again holds the cluster's latest version of every object it should have;
* idle uplink per node: TCP payload bytes the nodes send (kernel ``TCP_INFO``: bytes_acked) plus
  52 bytes of TCP/IP header per segment sent, over an idle window, in kbit/s.

Results go to bench/results/channel.json.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import multiprocessing as mp
import os
import platform
import shutil
import socket
import ssl
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script too
from bench._measure import peak_rss_mb, rss_mb, write_results  # noqa: E402

PROJECT_ID = "e632aba927ea4ac2b575ec1603d56f10"
TCP_HEADER_BYTES = 52  # IPv4 20 + TCP 20 + timestamp option 12


# Simulated nodes (worker processes) ----------------------------------------------------


class SimNode:
    __slots__ = ("acked", "connected", "name", "seen", "ws")

    def __init__(self, name: str) -> None:
        self.name = name
        self.ws: Any = None
        self.seen: dict[str, tuple[int, float]] = {}  # uid -> (resourceVersion, time received)
        self.connected = False
        self.acked = 0


async def _node_loop(
    node: SimNode, uri: str, ctx: ssl.SSLContext, heartbeat: float, ready: asyncio.Event
) -> None:
    from websockets.asyncio.client import connect

    async with connect(
        uri,
        ssl=ctx,
        additional_headers={"node_id": node.name, "project_id": PROJECT_ID},
        ping_interval=heartbeat,
        ping_timeout=heartbeat * 2,
        compression=None,
        open_timeout=120,
        max_queue=64,
    ) as ws:
        node.ws = ws
        node.connected = True
        ready.set()
        async for frame in ws:
            now = time.time()
            msg = json.loads(frame)
            route = msg.get("route", {})
            op = route.get("operation")
            if op not in ("insert", "update", "delete"):
                continue
            content = msg.get("content") or {}
            uid = (content.get("metadata") or {}).get("uid", "")
            rv = int(msg["header"].get("resourceversion") or 0) if op != "delete" else -1
            node.seen[uid] = (rv, now)
            header = {"msg_id": str(uuid.uuid4()), "parent_msg_id": msg["header"]["msg_id"], "timestamp": 0}
            ack_route = {"source": "metamanager", "group": "resource", "operation": "response"}
            ack_route["resource"] = route.get("resource", "")
            ack = {"header": header, "route": ack_route, "content": "OK"}
            await ws.send(json.dumps(ack, separators=(",", ":")))
            node.acked += 1
    node.connected = False


async def _poll(done: Any, deadline: float) -> None:
    """Poll the simulated nodes' state (cheap, and there is no single event to wait on)."""
    for _ in itertools.count():
        if done() or time.time() > deadline:
            return
        await asyncio.sleep(0.05)


def _tcp_counters(ws: Any) -> tuple[int, int, int]:
    """(bytes_acked, bytes_received, segs_out) from the kernel's tcp_info."""
    sock = ws.transport.get_extra_info("socket")
    info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 256)
    bytes_acked, bytes_received = struct.unpack_from("QQ", info, 120)
    (segs_out,) = struct.unpack_from("I", info, 136)
    return bytes_acked, bytes_received, segs_out


async def _worker_main(
    conn: Connection, names: list[str], certdir: str, uri_base: str, heartbeat: float
) -> None:
    loop = asyncio.get_running_loop()
    nodes = {n: SimNode(n) for n in names}
    tasks: dict[str, asyncio.Task[None]] = {}
    ca = Path(certdir) / "ca.crt"

    def ctx_for(name: str) -> ssl.SSLContext:
        c = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        c.check_hostname = False
        c.load_verify_locations(ca)
        c.load_cert_chain(Path(certdir) / f"{name}.crt", Path(certdir) / f"{name}.key")
        return c

    contexts = {n: ctx_for(n) for n in names}

    async def run_node(node: SimNode, ready: asyncio.Event) -> None:
        uri = f"{uri_base}/{PROJECT_ID}/{node.name}/events"
        while True:
            try:
                await _node_loop(node, uri, contexts[node.name], heartbeat, ready)
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                node.connected = False
                await asyncio.sleep(0.5)

    async def connect_all() -> dict[str, Any]:
        t0 = time.time()
        sem = asyncio.Semaphore(64)

        async def one(node: SimNode) -> None:
            async with sem:
                ready = asyncio.Event()
                tasks[node.name] = asyncio.create_task(run_node(node, ready))
                await ready.wait()

        await asyncio.gather(*(one(n) for n in nodes.values()))
        return {"elapsed": time.time() - t0}

    while True:
        cmd, *args = await loop.run_in_executor(None, conn.recv)
        if cmd == "connect":
            conn.send(await connect_all())
        elif cmd == "disconnect":
            for t in tasks.values():
                t.cancel()
            await asyncio.gather(*tasks.values(), return_exceptions=True)
            for n in nodes.values():
                if n.ws is not None:
                    await n.ws.close()
                n.connected = False
            tasks.clear()
            conn.send({"ok": True})
        elif cmd == "await_rv":
            uid, rv, timeout = args
            deadline = time.time() + timeout
            await _poll(
                lambda u=uid, r=rv: all(n.seen.get(u, (0, 0.0))[0] >= r for n in nodes.values()), deadline
            )
            conn.send([n.seen.get(uid, (0, 0.0)) for n in nodes.values()])
        elif cmd == "await_state":
            want, timeout = args  # {uid: rv}
            deadline = time.time() + timeout
            await _poll(
                lambda want=want: all(
                    n.connected and all(n.seen.get(u, (0, 0.0))[0] >= r for u, r in want.items())
                    for n in nodes.values()
                ),
                deadline,
            )
            ok = sum(
                1
                for n in nodes.values()
                if n.connected and all(n.seen.get(u, (0, 0.0))[0] >= r for u, r in want.items())
            )
            conn.send({"consistent": ok, "time": time.time()})
        elif cmd == "tcp":
            totals = [0, 0, 0]
            for n in nodes.values():
                if n.ws is not None and n.connected:
                    for i, v in enumerate(_tcp_counters(n.ws)):
                        totals[i] += v
            conn.send(totals)
        elif cmd == "stop":
            for t in tasks.values():
                t.cancel()
            conn.send({"ok": True})
            return


def worker_entry(conn: Connection, names: list[str], certdir: str, uri_base: str, heartbeat: float) -> None:
    asyncio.run(_worker_main(conn, names, certdir, uri_base, heartbeat))


# Orchestration --------------------------------------------------------------------------


def _wait_file(path: Path, proc: subprocess.Popen[bytes], timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while not path.exists():
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args} exited with {proc.returncode}")
        if time.time() > deadline:
            raise TimeoutError(f"{path} did not appear")
        time.sleep(0.1)


def _metric(port: int, name: str) -> float:
    # With 10,000 nodes /metrics is large and cloudcore may be busy: be patient, retry once.
    for attempt in range(2):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=180) as r:
                for line in r.read().decode().splitlines():
                    if line.startswith(name + " ") or line.startswith(name + "{"):
                        return float(line.rsplit(" ", 1)[1])
            return 0.0
        except TimeoutError:
            if attempt:
                raise
    return 0.0


def _percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    v = sorted(values)
    return {
        "median": round(statistics.median(v), 4),
        "p99": round(v[min(len(v) - 1, int(len(v) * 0.99))], 4),
        "max": round(v[-1], 4),
    }


def run_once(
    n_nodes: int, workers: int, heartbeat: float, idle_window: float, flush_wait: float
) -> dict[str, Any]:
    from cloudcore._identity import load_ca
    from kubeclient import SERVICES, Kube
    from kubeshore import pki
    from up.processes import Processes

    sys.path.insert(0, str(ROOT / "tests"))
    from _stack import start_apiserver

    bin_dir = Path(sys.executable).parent
    work = Path(tempfile.mkdtemp(prefix="bench-channel-"))
    procs = Processes(work)
    result: dict[str, Any] = {"nodes": n_nodes}
    try:
        start_apiserver(procs, work / "api")
        kubeconfig = work / "api" / "admin.kubeconfig"
        cc = procs.start(
            "cloudcore",
            *(str(bin_dir / "cloudcore"), "--kubeconfig", str(kubeconfig), "--data-dir", str(work / "cc")),
            *("--bind", "127.0.0.1", "--websocket-port", "0", "--https-port", "0", "--metrics-port", "0"),
            *("--node-limit", str(n_nodes + 100), "--keepalive-timeout", str(heartbeat * 4)),
            *("--node-grace-period", str(heartbeat * 6), "--log-level", "WARNING"),
            *("--node-status-update-period", "300"),
        )
        result["cloudcore_args"] = [str(a) for a in cc.args[1:]]
        _wait_file(work / "cc" / "cloudcore.json", cc)
        state = json.loads((work / "cc" / "cloudcore.json").read_text())
        ws_port, metrics_port = state["websocketPort"], state["metricsPort"]
        kube = Kube.from_kubeconfig(str(kubeconfig), workers=2)
        ca = load_ca(kube)
        assert ca is not None
        svc = kube.create(
            SERVICES,
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": "bench-fanout", "namespace": "default"},
                "spec": {"ports": [{"port": 80}], "selector": {"app": "bench"}},
            },
            "default",
        )
        uid = svc["metadata"]["uid"]

        # Real node certificates, as /edge.crt issues them (CN system:node:<name>, O system:nodes).
        certdir = work / "certs"
        certdir.mkdir()
        (certdir / "ca.crt").write_bytes(pki.cert_to_pem(ca.cert))
        names = [f"sim-{i:05d}" for i in range(n_nodes)]
        t0 = time.time()
        for name in names:
            cert, key = ca.issue(f"system:node:{name}", organization="system:nodes", client=True)
            (certdir / f"{name}.crt").write_bytes(pki.cert_to_pem(cert))
            (certdir / f"{name}.key").write_bytes(pki.key_to_pem(key))
        result["cert_issue_seconds"] = round(time.time() - t0, 2)

        ctx = mp.get_context("spawn")
        pipes: list[Connection] = []
        for w in range(workers):
            parent, child = ctx.Pipe()
            p = ctx.Process(
                target=worker_entry,
                args=(child, names[w::workers], str(certdir), f"wss://127.0.0.1:{ws_port}", heartbeat),
                daemon=True,
            )
            p.start()
            pipes.append(parent)

        def all_send(*cmd: Any) -> list[Any]:
            for p in pipes:
                p.send(cmd)
            return [p.recv() for p in pipes]

        # 1. connect
        t0 = time.time()
        all_send("connect")  # returns when every simulated node holds an open session
        result["connect_seconds"] = round(time.time() - t0, 2)
        assert _metric(metrics_port, "cloudhub_connected_nodes") == n_nodes
        svc_rv = int(svc["metadata"]["resourceVersion"])
        all_send("await_rv", uid, svc_rv, 600)
        result["initial_sync_seconds"] = round(time.time() - t0, 2)
        result["cloudcore_rss_mib_connected"] = rss_mb(cc.pid)
        # Let the background ObjectSync writes of the initial sync finish before measuring.
        t1 = time.time()
        pending = _metric(metrics_port, "cloudcore_objectsync_pending_writes")
        while pending > 0 and time.time() - t1 < flush_wait:
            time.sleep(10)
            pending = _metric(metrics_port, "cloudcore_objectsync_pending_writes")
        result["objectsync_initial_flush_seconds"] = round(time.time() - t1, 1)
        result["objectsync_pending_writes_when_measuring"] = int(pending)

        # 2. idle uplink per node
        before = [sum(x) for x in zip(*all_send("tcp"), strict=True)]
        time.sleep(idle_window)
        after = [sum(x) for x in zip(*all_send("tcp"), strict=True)]
        payload = after[0] - before[0]
        segs = after[2] - before[2]
        per_node_bps = (payload + segs * TCP_HEADER_BYTES) / idle_window / n_nodes
        result["idle_uplink_bytes_per_s_per_node"] = round(per_node_bps, 2)
        result["idle_uplink_kbit_per_s_per_node"] = round(per_node_bps * 8 / 1000, 4)
        result["idle_uplink_tls_payload_bytes_per_s_per_node"] = round(payload / idle_window / n_nodes, 2)

        # 3. fan-out of one update to every node
        t_update = time.time()
        svc = kube.patch(SERVICES, "bench-fanout", {"metadata": {"labels": {"round": "1"}}}, "default")
        rv = int(svc["metadata"]["resourceVersion"])
        seen = [s for part in all_send("await_rv", uid, rv, 120) for s in part]
        lat = [t - t_update for r, t in seen if r >= rv]
        result["fanout_received"] = len(lat)
        result["fanout_latency_seconds"] = _percentiles(lat)

        # 4. reconnect of all nodes to a consistent state
        all_send("disconnect")
        while _metric(metrics_port, "cloudhub_connected_nodes") > 0:
            time.sleep(1.0)
        svc = kube.patch(SERVICES, "bench-fanout", {"metadata": {"labels": {"round": "2"}}}, "default")
        rv = int(svc["metadata"]["resourceVersion"])
        t0 = time.time()
        all_send("connect")
        states = all_send("await_state", {uid: rv}, 900)
        result["reconnect_consistent_nodes"] = sum(s["consistent"] for s in states)
        result["reconnect_seconds"] = round(max(s["time"] for s in states) - t0, 2)
        result["cloudcore_rss_mib"] = rss_mb(cc.pid)
        result["cloudcore_peak_rss_mib"] = peak_rss_mb(cc.pid)
        all_send("stop")
        kube.close()
    finally:
        procs.stop_all(grace=10)
        shutil.rmtree(work, ignore_errors=True)  # 2 files per simulated node
    return result


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--nodes", type=int, action="append", help="node counts (default 1000 and 10000)")
    p.add_argument("--workers", type=int, default=2, help="simulator processes")
    p.add_argument("--heartbeat", type=float, default=15.0, help="edge ping interval (edgecore default 15)")
    p.add_argument("--idle-window", type=float, default=45.0)
    p.add_argument(
        "--flush-wait", type=float, default=600.0, help="longest wait for the initial ObjectSync writes"
    )
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "channel.json")
    ns = p.parse_args()
    counts = ns.nodes or [1000, 10000]
    out: dict[str, Any] = {
        "title": "Cloud-edge channel (cloudhub)",
        "description": (
            "Simulated edge nodes speaking the real protocol (TLS websockets, per-node certificates from "
            "the cloud CA, pings every 15 s, an ACK per object) against one cloudcore backed by "
            "`kubeshore apiserver`, all on one machine."
        ),
        "command": "python bench/channel.py " + " ".join(sys.argv[1:]),
        "machine": {
            "cpus": os.cpu_count(),
            "loadavg_at_start": os.getloadavg(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "targets": {
            "at_10000_nodes.cloudcore_rss_mib": "< 2048",
            "at_10000_nodes.cloudcore_peak_rss_mib": "< 2048",
            "at_10000_nodes.fanout_p99_seconds": "< 2",
            "at_10000_nodes.idle_uplink_kbit_per_s_per_node": "<= 0.1",
        },
        "kubeedge": {"at_10000_nodes.idle_uplink_kbit_per_s_per_node": 0.25},
        "runs": [],
    }
    ns.out.parent.mkdir(parents=True, exist_ok=True)
    for n in counts:
        print(f"--- {n} nodes", flush=True)
        r = run_once(n, ns.workers, ns.heartbeat, ns.idle_window, ns.flush_wait)
        r["loadavg_after"] = os.getloadavg()
        print(json.dumps(r, indent=2), flush=True)
        out["cloudcore_args"] = " ".join(r.pop("cloudcore_args"))
        out["runs"].append(r)
        if n == 10000:
            out["at_10000_nodes"] = {
                "cloudcore_rss_mib": r["cloudcore_rss_mib"],
                "cloudcore_peak_rss_mib": r["cloudcore_peak_rss_mib"],
                "fanout_p99_seconds": r["fanout_latency_seconds"]["p99"],
                "idle_uplink_kbit_per_s_per_node": r["idle_uplink_kbit_per_s_per_node"],
                "connect_seconds": r["connect_seconds"],
                "reconnect_to_consistent_seconds": r["reconnect_seconds"],
            }
        # Written after every run, so a long 10,000-node run never loses the smaller one.
        write_results(ns.out, out, show=False)
    print(f"wrote {ns.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
