"""Memory of both ends of the DMI across 200,000 calls: a mapper's ``dmi.rpc`` client and edgecore's server.

Run: ``python bench/dmi_memory.py [--calls 200000] [--rate 2000]``.

Two pairings, each side's RSS sampled every 10,000 calls:

* **edgecore**: the real edgecore (joined to a standalone cloudcore, with mosquitto) and 200 devices of
  one 5-property model bound to the load generator, which registers as their mapper (serving
  ``DeviceMapperService`` with ``dmi.rpc``, as the mapper SDK does) and sends ``ReportDeviceStatus`` for
  them through one ``dmi.rpc`` Channel at a fixed rate, 64 calls in flight at most;
* **dmi.rpc**: a bare ``dmi.rpc`` Server answering ``ReportDeviceStatus`` at once (the transport alone,
  ``bench/dmi_rpc.py --serve``), with the same client.

"Growth" is from the sample after the first 20,000 calls (warm-up: the twin table, caches, allocator
arenas) to the last. Writes ``bench/results/dmi_memory.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "tests" / "devices"))
from bench._measure import rss_mb, write_results  # noqa: E402

DEVICES = 200
PROPERTIES = 5
SAMPLE_EVERY = 10_000
WARM_UP = 20_000
REPORT = "/v1beta1.DeviceManagerService/ReportDeviceStatus"


# ---- the mapper (load generator) process ----------------------------------------------------------


async def mapper(args: argparse.Namespace) -> None:
    from google.protobuf.message_factory import GetMessageClass

    from dmi.rpc import Channel, RpcError, Server
    from dmi.v1beta1 import api_pb2

    service = api_pb2.DESCRIPTOR.services_by_name["DeviceMapperService"]
    answers = {m.name: GetMessageClass(m.output_type) for m in service.methods}
    impl = type(
        "Mapper", (), {name: staticmethod(lambda _req, cls=cls: cls()) for name, cls in answers.items()}
    )
    channel = Channel(args.dmi_sock)
    server: Server | None = None
    if args.register:
        server = Server()
        server.add_service(service, impl())
        await server.start(args.mapper_sock)
        request = api_pb2.MapperRegisterRequest(
            withData=True,
            mapper=api_pb2.MapperInfo(
                name="bench-mapper", version="v1", api_version="v1beta1", protocol="bench",
                address=args.mapper_sock.encode(), state="ok",
            ),
        )  # fmt: skip
        give_up = time.monotonic() + 180
        while True:
            try:
                reply = await channel.unary(
                    "/v1beta1.DeviceManagerService/MapperRegister", request,
                    api_pb2.MapperRegisterResponse, timeout=10,
                )  # fmt: skip
                if len(reply.deviceList) >= DEVICES:
                    break
            except RpcError:
                pass
            if time.monotonic() > give_up:
                raise RuntimeError("edgecore never gave the mapper its devices")
            await asyncio.sleep(0.5)
    twins = [
        api_pb2.Twin(
            propertyName=f"p{j}",
            reported=api_pb2.TwinProperty(value="21.5", metadata={"timestamp": "1700000000000"}),
        )
        for j in range(PROPERTIES)
    ]
    calls = errors = 0
    concurrency = 64
    start = time.monotonic()
    print(json.dumps({"calls": 0, "rss_mb": rss_mb()}), flush=True)

    async def worker(k: int) -> None:
        nonlocal calls, errors
        i = k
        while i < args.calls:
            delay = start + i / args.rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            request = api_pb2.ReportDeviceStatusRequest(
                deviceName=f"d{i % DEVICES}",
                deviceNamespace="default",
                reportedDevice=api_pb2.DeviceStatus(twins=twins),
            )
            try:
                await channel.unary(REPORT, request, api_pb2.ReportDeviceStatusResponse, timeout=10)
            except RpcError:
                errors += 1
            calls += 1
            if calls % SAMPLE_EVERY == 0:
                print(json.dumps({"calls": calls, "errors": errors, "rss_mb": rss_mb()}), flush=True)
            i += concurrency

    await asyncio.gather(*(worker(k) for k in range(concurrency)))
    elapsed = time.monotonic() - start
    print(json.dumps({"done": calls, "errors": errors, "calls_per_s": round(calls / elapsed, 1)}), flush=True)
    await channel.close()
    if server is not None:
        await server.stop(0.1)


# ---- the driver ------------------------------------------------------------------------------------


def drive(mapper_argv: list[str], server_pid: int) -> dict[str, Any]:
    """Run the mapper process; sample both RSS at each of its progress lines."""
    proc = subprocess.Popen(
        [sys.executable, __file__, "--mapper", *mapper_argv], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    samples: list[dict[str, Any]] = []
    summary: dict[str, Any] = {}
    for line in proc.stdout:
        record = json.loads(line)
        if "done" in record:
            summary = record
            continue
        sample = {
            "calls": record["calls"],
            "mapper_rss_mb": record["rss_mb"],
            "server_rss_mb": rss_mb(server_pid),
        }
        samples.append(sample)
        print(f"  {sample}", flush=True)
    if proc.wait() != 0:
        raise RuntimeError("the mapper process failed")
    warm = next(s for s in samples if s["calls"] >= WARM_UP)
    last = samples[-1]

    def side(key: str) -> dict[str, float]:
        return {
            "start": samples[0][key],
            "after_warm_up": warm[key],
            "end": last[key],
            "growth": round(last[key] - warm[key], 1),
        }

    return {
        "calls": summary.get("done"),
        "errors": summary.get("errors"),
        "calls_per_s": summary.get("calls_per_s"),
        "mapper_rss_mb": side("mapper_rss_mb"),
        "server_rss_mb": side("server_rss_mb"),
        "samples": samples,
    }


def with_edgecore(args: argparse.Namespace) -> dict[str, Any]:
    from _peers import mosquitto
    from _stack import Stack, wait_for
    from twinfixtures import numbered_device, numbered_model

    with tempfile.TemporaryDirectory(prefix="bench-dmi-memory-") as tmp_name, mosquitto() as broker:
        stack = Stack(Path(tmp_name), broker)
        try:
            stack.start_cloudcore()
            stack.join_edge()
            stack.start_edgecore()
            objects = [numbered_model(PROPERTIES, name="bench-model", protocol="bench")]
            objects += [
                numbered_device(
                    i, PROPERTIES, model="bench-model", node="edge-1", protocol="bench", report_to_cloud=True
                )
                for i in range(DEVICES)
            ]
            stack.apply("\n".join(json.dumps(o) for o in objects))
            dmi_sock = stack.edge_dir / "dmi.sock"
            wait_for(dmi_sock.exists, 60, "edgecore's DMI socket")
            edgecore = stack.procs["edgecore"].pid
            return drive(
                ["--dmi-sock", str(dmi_sock), "--register", "--mapper-sock", str(Path(tmp_name) / "m.sock"),
                 "--calls", str(args.calls), "--rate", str(args.rate)],
                edgecore,
            )  # fmt: skip
        finally:
            stack.stop_all()


def with_bare_server(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-dmi-memory-") as tmp:
        sock = str(Path(tmp) / "dmi.sock")
        srv = subprocess.Popen(
            [sys.executable, str(ROOT / "bench" / "dmi_rpc.py"), "--serve", "dmi.rpc", "--socket", sock],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert srv.stdout is not None
        try:
            if "ready" not in srv.stdout.readline():
                raise RuntimeError("server did not start")
            return drive(["--dmi-sock", sock, "--calls", str(args.calls), "--rate", str(args.rate)], srv.pid)
        finally:
            srv.kill()
            srv.wait()


def shape(runs: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """The results file: one row per pairing, and every sample as a compact list per process."""
    return {
        "title": "DMI memory over 200,000 calls: mapper (dmi.rpc client) and server",
        "description": "RSS of the mapper process (dmi.rpc Channel) and of the server (the real edgecore, "
        "or a bare dmi.rpc Server) every 10,000 ReportDeviceStatus calls at a fixed rate; growth from "
        f"the sample after {WARM_UP:,} calls to the last. Target: growth within 5 MB on each side.",
        "command": "python bench/dmi_memory.py",
        "calls": args.calls,
        "rate": args.rate,
        "runs": [
            {"server": name, **{k: v for k, v in r.items() if k != "samples"}} for name, r in runs.items()
        ],
        "rss_mb_every_10000_calls": {
            f"{name}.{side}": [s[f"{side}_rss_mb"] for s in r["samples"]]
            for name, r in runs.items()
            for side in ("mapper", "server")
        },
        "machine": {"cpus": os.cpu_count(), "loadavg_1m": round(os.getloadavg()[0], 2)},
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--calls", type=int, default=200_000)
    p.add_argument("--rate", type=float, default=2000)
    p.add_argument("--only", choices=["edgecore", "dmi.rpc"])
    p.add_argument("--mapper", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--register", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--dmi-sock", help=argparse.SUPPRESS)
    p.add_argument("--mapper-sock", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.mapper:
        asyncio.run(mapper(args))
        return 0
    runs: dict[str, Any] = {}
    for name, run in (("edgecore", with_edgecore), ("dmi.rpc", with_bare_server)):
        if args.only in (None, name):
            print(f"{name}:", flush=True)
            runs[name] = run(args)
    result = shape(runs, args)
    for r in result["runs"]:
        print(
            f"{r['server']}: {r['calls']} calls ({r['errors']} errors, {r['calls_per_s']}/s); "
            f"mapper {r['mapper_rss_mb']}, server {r['server_rss_mb']}"
        )
    write_results(ROOT / "bench" / "results" / "dmi_memory.json", result, show=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
