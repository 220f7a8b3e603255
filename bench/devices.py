"""Device twin throughput and latency through the real processes.

Run: ``python bench/devices.py [--devices N] [--properties M] [--rate R] [--seconds S]``.

One edge node: standalone cloudcore (embedded API server), ``kubeshore join`` + edgecore, mosquitto,
and a load generator process that registers as a mapper over DMI and sends ``ReportDeviceStatus``
(through ``dmi.rpc``, as the mapper SDK does) for N devices x M properties at R reports/s (one report
= one device's M values). Each reported value is the send time, so receivers compute latencies:

* report -> MQTT: ``.../twin/update/document`` of a sample of devices, received by an application
  (a subscriber process of its own, as an app on the edge would be);
* report RPC: the ReportDeviceStatus round trip seen by the mapper;
* report -> DeviceStatus: a watch on ``devicestatuses`` (for values that land: reports of one device
  within a flush interval are coalesced into one write, by design);
* desired -> mapper: the desired value of sampled devices is patched through the API server every
  0.25 s; the mapper side of the load generator timestamps UpdateDevice.

Also CPU use of edgecore, cloudcore and mosquitto during the run and edgecore's RSS with all devices.
Prints a summary and writes ``bench/results/devices.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "tests" / "devices"))
from bench._measure import cpu_seconds, percentile, rss_mb, write_results  # noqa: E402

BIN = Path(sys.executable).parent
SAMPLED = 20  # devices whose MQTT documents, statuses and desired values are timed


def pct(samples: list[float], p: float) -> float | None:
    return round(percentile(samples, p), 2) if samples else None


def summary(samples: list[float]) -> dict[str, Any]:
    return {
        "n": len(samples),
        "p50_ms": pct(samples, 0.5),
        "p99_ms": pct(samples, 0.99),
        "max_ms": pct(samples, 1.0),
    }


# ---- load generator (a separate process: a mapper reporting over DMI) ----------------------------


async def loadgen(args: argparse.Namespace) -> dict[str, Any]:
    import grpc
    from testmapper import ProtoMapper

    from dmi.rpc import Channel, RpcError
    from dmi.v1beta1 import api_pb2

    desired_lat: list[float] = []

    class TimingMapper(ProtoMapper):
        async def UpdateDevice(self, request: Any, context: Any) -> Any:
            now = time.time_ns()
            for p in request.device.spec.properties:
                if p.name == "p0" and p.desired.value.isdigit():
                    desired_lat.append((now - int(p.desired.value)) / 1e6)
            return await super().UpdateDevice(request, context)

    mapper = TimingMapper(args.mapper_sock, "bench-mapper", "bench")
    await mapper.start()
    registered = 0
    give_up = time.monotonic() + 180
    while time.monotonic() < give_up:
        try:
            resp = await mapper.register(args.dmi_sock, with_data=True)
            registered = len(resp.deviceList)
            if registered >= args.devices:
                break
        except grpc.aio.AioRpcError:
            pass
        await asyncio.sleep(0.5)
    # Reports go through dmi.rpc, as a kubeshore mapper sends them (the SDK's DMI client).
    channel = Channel(args.dmi_sock)
    report = "/v1beta1.DeviceManagerService/ReportDeviceStatus"
    names = [f"p{j}" for j in range(args.properties)]
    sent = errors = 0
    late = 0
    rpc_lat: list[float] = []
    start = time.monotonic()
    deadline = start + args.seconds
    print("loadgen: running", flush=True)

    async def worker(k: int, workers: int) -> None:
        nonlocal sent, errors, late
        i = k
        while True:
            due = start + i / args.rate
            now = time.monotonic()
            if due >= deadline:
                return
            if due > now:
                await asyncio.sleep(due - now)
            elif now - due > 1.0:
                late += 1
            value = str(time.time_ns())
            twins = [
                api_pb2.Twin(
                    propertyName=n,
                    reported=api_pb2.TwinProperty(value=value, metadata={"timestamp": value[:13]}),
                )
                for n in names
            ]
            req = api_pb2.ReportDeviceStatusRequest(
                deviceName=f"d{i % args.devices}",
                deviceNamespace="default",
                reportedDevice=api_pb2.DeviceStatus(twins=twins),
            )
            try:
                t0 = time.monotonic_ns()
                await channel.unary(report, req, api_pb2.ReportDeviceStatusResponse, timeout=10)
                rpc_lat.append((time.monotonic_ns() - t0) / 1e6)
                sent += 1
            except RpcError:
                errors += 1
            i += workers

    cpu0 = time.process_time()
    await asyncio.gather(*(worker(k, args.concurrency) for k in range(args.concurrency)))
    elapsed = time.monotonic() - start
    await channel.close()
    await mapper.stop()
    return {
        "devices_given_to_mapper": registered,
        "sent": sent,
        "errors": errors,
        "elapsed_s": round(elapsed, 2),
        "reports_per_s": round(sent / elapsed, 1),
        "loadgen_cpu_s": round(time.process_time() - cpu0, 2),
        "report_rpc": summary(rpc_lat),
        "late_reports": late,
        "desired_to_mapper": summary(desired_lat),
    }


async def subscriber(args: argparse.Namespace) -> dict[str, Any]:
    """An application on the edge: subscribes to the sampled devices' documents and times them."""
    from edgecore.eventbus import MqttClient

    mqtt_lat: list[float] = []

    def on_doc(_topic: str, payload: bytes) -> None:
        now = time.time_ns()
        doc = json.loads(payload)
        for twin in doc["twin"].values():
            value = ((twin.get("current") or {}).get("actual") or {}).get("value", "")
            if value.isdigit():
                mqtt_lat.append((now - int(value)) / 1e6)
            break

    sub = MqttClient(args.broker, "bench-sub")
    for i in range(SAMPLED):
        sub.subscribe(f"$hw/events/device/default/d{i}/twin/update/document", on_doc)
    await sub.start()
    await sub.wait_connected()
    print("subscriber: ready", flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await sub.stop()
    return {"report_to_mqtt": summary(mqtt_lat)}


# ---- driver ---------------------------------------------------------------------------------------


def objects(devices: int, properties: int) -> list[dict[str, Any]]:
    from twinfixtures import numbered_device, numbered_model

    out = [numbered_model(properties, name="bench-model", protocol="bench")]
    out += [
        numbered_device(
            i, properties, model="bench-model", node="bench-edge", protocol="bench", report_to_cloud=True
        )
        for i in range(devices)
    ]
    return out


class StatusWatch(threading.Thread):
    """kubectl get devicestatuses --watch: time from a value's send time to its DeviceStatus event."""

    def __init__(self, kubeconfig: str) -> None:
        super().__init__(daemon=True)
        self.samples: list[float] = []
        self.proc = subprocess.Popen(
            ["kubectl", "--kubeconfig", kubeconfig, "get", "devicestatuses", "-n", "default", "--watch",
             "--output-watch-events", "-o", "json"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )  # fmt: skip
        self.sampled = {f"d{i}" for i in range(SAMPLED)}
        self.seen: dict[tuple[str, str], str] = {}

    def run(self) -> None:
        # An event ends on an unindented "}" (pretty-printed) or is one line: parse only there
        # (re-trying a partial buffer on every line cost most of a core at 200 events/s).
        lines: list[str] = []
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            lines.append(line)
            if not line.startswith("}") and not (line.startswith("{") and line.rstrip().endswith("}")):
                continue
            try:
                event = json.loads("".join(lines))
            except ValueError:
                continue
            now = time.time_ns()
            lines.clear()
            obj = event.get("object") or {}
            name = (obj.get("metadata") or {}).get("name")
            if name not in self.sampled:
                continue
            for twin in (obj.get("status") or {}).get("twins") or []:
                value = (twin.get("reported") or {}).get("value", "")
                key = (name, twin.get("propertyName", ""))
                if value.isdigit() and self.seen.get(key) != value:
                    self.seen[key] = value
                    if twin.get("propertyName") == "p0":
                        self.samples.append((now - int(value)) / 1e6)

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()


def cpu_sets(pin: bool) -> tuple[set[int], set[int]]:
    """(cloud CPUs, edge CPUs). Pinned, the edge side (edgecore, mosquitto, the mapper and the app)
    gets one core of its own and the cloud side (cloudcore, kubectl, this driver) the others, as on
    real machines where the cloud is elsewhere; otherwise everything shares every core."""
    cpus = sorted(os.sched_getaffinity(0))
    if not pin or len(cpus) < 2:
        return set(cpus), set(cpus)
    return set(cpus[:-1]), {cpus[-1]}


def run(args: argparse.Namespace) -> dict[str, Any]:
    from _peers import mosquitto
    from _stack import Processes

    cloud_cpus, edge_cpus = cpu_sets(args.pin)
    os.sched_setaffinity(0, cloud_cpus)  # this driver, its threads and kubectl
    with tempfile.TemporaryDirectory(prefix="bench-devices-") as tmp_name, mosquitto() as broker:
        tmp = Path(tmp_name)
        procs = Processes(tmp)
        if broker.pid:
            os.sched_setaffinity(broker.pid, edge_cpus)

        def on_edge() -> None:
            os.sched_setaffinity(0, edge_cpus)

        def start(name: str, *argv: str, edge: bool = False) -> subprocess.Popen[bytes]:
            p = procs.start(name, *argv)
            if edge:  # before it has started anything of its own, which would inherit the CPUs
                os.sched_setaffinity(p.pid, edge_cpus)
            return p

        try:
            cloud = start(
                "cloudcore", str(BIN / "cloudcore"), "--standalone", "--data-dir", str(tmp / "cloud"),
                "--bind", "127.0.0.1", "--websocket-port", "0", "--https-port", "0",
                "--apiserver-port", "0", "--metrics-port", "0", "--log-level", "WARNING",
            )  # fmt: skip
            state = tmp / "cloud" / "cloudcore.json"
            deadline = time.monotonic() + 60
            while not state.exists():
                if time.monotonic() > deadline:
                    raise RuntimeError("cloudcore did not start")
                time.sleep(0.2)
            ports = json.loads(state.read_text())
            kubeconfig = str(tmp / "cloud" / "admin.kubeconfig")
            token = subprocess.run(
                [str(BIN / "kubeshore"), "token", "create", "--data-dir", str(tmp / "cloud")],
                capture_output=True, text=True, check=True,
            ).stdout.strip()  # fmt: skip
            edge_dir = tmp / "bench-edge"
            subprocess.run(
                [str(BIN / "kubeshore"), "join", "--cloudcore", f"127.0.0.1:{ports['websocketPort']}",
                 "--https-port", str(ports["httpsPort"]), "--token", token, "--node-name", "bench-edge",
                 "--data-dir", str(edge_dir), "--metaserver-port", "0", "--metrics-port", "0",
                 "--mqtt-url", broker],
                capture_output=True, text=True, check=True,
            )  # fmt: skip
            edge = start("edgecore", str(BIN / "edgecore"), "--config", str(edge_dir / "edgecore.yaml"),
                         "--log-level", os.environ.get("BENCH_EDGE_LOG", "WARNING"), edge=True)  # fmt: skip
            rss_idle = None
            time.sleep(2)
            rss_idle = rss_mb(edge.pid)
            t0 = time.monotonic()
            applied = subprocess.run(
                ["kubectl", "--kubeconfig", kubeconfig, "apply", "-f", "-"],
                input="\n".join(json.dumps(o) for o in objects(args.devices, args.properties)),
                capture_output=True, text=True, timeout=600,
            )  # fmt: skip
            if applied.returncode != 0:
                raise RuntimeError(f"kubectl apply failed: {applied.stderr[-2000:]}")
            apply_s = time.monotonic() - t0
            sub = subprocess.Popen(
                [sys.executable, __file__, "--subscriber", "--broker", broker],
                stdout=subprocess.PIPE, text=True, preexec_fn=on_edge,
            )  # fmt: skip
            assert sub.stdout is not None
            if "ready" not in sub.stdout.readline():
                raise RuntimeError("MQTT subscriber did not start")
            gen = subprocess.Popen(
                [sys.executable, __file__, "--loadgen", "--devices", str(args.devices), "--properties",
                 str(args.properties), "--rate", str(args.rate), "--seconds", str(args.seconds),
                 "--concurrency", str(args.concurrency), "--dmi-sock", str(edge_dir / "dmi.sock"),
                 "--mapper-sock", str(tmp / "bench-mapper.sock"), "--broker", broker],
                stdout=subprocess.PIPE, text=True, preexec_fn=on_edge,
            )  # fmt: skip
            assert gen.stdout is not None
            line = gen.stdout.readline()
            assert sub.stdout is not None  # the load generator has every device (or failed)
            if "running" not in line:
                raise RuntimeError(f"load generator did not start: {line!r}")
            ready_s = time.monotonic() - t0
            rss_devices = rss_mb(edge.pid)
            watch = StatusWatch(kubeconfig)
            watch.start()
            cpu0 = {n: cpu_seconds(p.pid) for n, p in (("edgecore", edge), ("cloudcore", cloud))}
            mq_pid = broker.pid  # this run's broker, not whichever mosquitto started last
            mq0 = cpu_seconds(mq_pid) if mq_pid else 0.0
            wall0 = time.monotonic()
            patches = threading.Thread(target=patch_desired, args=(kubeconfig, args.seconds), daemon=True)
            patches.start()
            out, _ = gen.communicate(timeout=args.seconds + 120)
            wall = time.monotonic() - wall0
            cpu = {
                n: round(cpu_seconds(p.pid) - cpu0[n], 2)
                for n, p in (("edgecore", edge), ("cloudcore", cloud))
            }
            if mq_pid:
                cpu["mosquitto"] = round(cpu_seconds(mq_pid) - mq0, 2)
            time.sleep(3)
            watch.stop()
            sub.send_signal(signal.SIGTERM)
            sub_out, _ = sub.communicate(timeout=30)
            rss_after_run = rss_mb(edge.pid)
            rss_many = None
            if args.rss_devices > args.devices:
                # Memory with many devices: add the rest and wait until edgecore holds them all.
                extra = objects(args.rss_devices, args.properties)[args.devices + 1 :]
                stream = "\n".join(json.dumps(o) for o in extra)
                subprocess.run(
                    ["kubectl", "--kubeconfig", kubeconfig, "apply", "-f", "-"],
                    input=stream, capture_output=True, text=True, timeout=600,
                )  # fmt: skip
                deadline = time.monotonic() + 300
                while edge_devices(edge_dir) < args.rss_devices and time.monotonic() < deadline:
                    time.sleep(1)
                time.sleep(2)
                rss_many = {"devices": edge_devices(edge_dir), "rss_mb": rss_mb(edge.pid)}
            result = json.loads(out.strip().splitlines()[-1])
            result.update(json.loads(sub_out.strip().splitlines()[-1]))
            result.update(
                {
                    "title": "devices: one edge node reporting through DMI",
                    "description": "edgecore, mosquitto, the mapper (load generator) and the app (MQTT "
                    "subscriber) on one core; cloudcore (standalone, embedded API server), kubectl and "
                    "the driver on the other (--no-pin shares both).",
                    "command": "python bench/devices.py",
                    "targets": {
                        "reports_per_s": ">= 2,000",
                        "report_to_mqtt.p99_ms": "< 20",
                        "report_to_devicestatus.p99_ms": "< 2,000",
                        "desired_to_mapper.p99_ms": "< 500",
                    },
                }
            )
            result.update(
                {
                    "devices": args.devices,
                    "properties": args.properties,
                    "target_rate": args.rate,
                    "values_per_s": round(result["reports_per_s"] * args.properties, 1),
                    "report_to_devicestatus": summary(watch.samples),
                    "cpu_cores": {n: round(v / wall, 2) for n, v in cpu.items()},
                    "edgecore_rss_mb": {
                        "idle": rss_idle,
                        "with_devices": rss_devices,
                        "after_run": rss_after_run,
                        "many_devices": rss_many,
                    },
                    "setup_s": {"kubectl_apply": round(apply_s, 1), "devices_on_mapper": round(ready_s, 1)},
                    "machine": {
                        "cpus": os.cpu_count(),
                        "loadavg_1m": round(os.getloadavg()[0], 2),
                        "edge_cpus": sorted(edge_cpus),
                        "cloud_cpus": sorted(cloud_cpus),
                    },
                }
            )
            return result
        finally:
            procs.stop_all()


def edge_devices(edge_dir: Path) -> int:
    import sqlite3

    db = sqlite3.connect(f"file:{edge_dir / 'edgecore.db'}?mode=ro", uri=True, timeout=5)
    try:
        return int(db.execute("select count(*) from device").fetchone()[0])
    except sqlite3.Error:
        return 0
    finally:
        db.close()


def patch_desired(kubeconfig: str, seconds: float) -> None:
    from kubeclient import Kube, Resource

    devices = Resource("devices.kubeedge.io", "v1beta1", "devices", "Device", True)
    kube = Kube.from_kubeconfig(kubeconfig, workers=1)
    end = time.monotonic() + seconds - 1
    i = 0
    try:
        while time.monotonic() < end:
            name = f"d{i % SAMPLED}"
            # A merge patch replaces the whole list: keep the other properties of the device.
            dev = kube.get(devices, name, "default")
            assert dev is not None, name
            props = dev["spec"]["properties"]
            props[0]["desired"] = {"value": str(time.time_ns())}
            kube.patch(devices, name, {"spec": {"properties": props}}, "default")
            i += 1
            time.sleep(0.25)
    finally:
        kube.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--devices", type=int, default=200, help="devices reporting during the run")
    p.add_argument("--rss-devices", type=int, default=1000, help="devices on the node for the memory figure")
    p.add_argument("--properties", type=int, default=5)
    p.add_argument("--rate", type=float, default=2000, help="device reports per second")
    p.add_argument("--seconds", type=float, default=20)
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument(
        "--no-pin", dest="pin", action="store_false", help="let cloud and edge processes share every core"
    )
    p.add_argument("--loadgen", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--subscriber", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--dmi-sock", help=argparse.SUPPRESS)
    p.add_argument("--mapper-sock", help=argparse.SUPPRESS)
    p.add_argument("--broker", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.loadgen:
        print(json.dumps(asyncio.run(loadgen(args))), flush=True)
        return 0
    if args.subscriber:
        print(json.dumps(asyncio.run(subscriber(args))), flush=True)
        return 0
    result = run(args)
    write_results(ROOT / "bench" / "results" / "devices.json", result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
