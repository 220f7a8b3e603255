"""gRPC cost per DMI call: ``dmi.rpc`` against grpcio, as server and as client, over a Unix socket.

Run: ``python bench/dmi_rpc.py [--rate 2000] [--seconds 10]``.

For each pairing a server process serves ``ReportDeviceStatus`` (an empty answer) and a client
process sends a 5-property report at a fixed rate with 64 calls in flight at most, as a busy mapper
does. Each process measures its own CPU (getrusage, after start-up) so the figures are CPU per call,
which does not depend on what else runs on the machine; latency p50/p99 is the client's round trip.
Also the RSS of a process after importing each stack. Writes ``bench/results/dmi_rpc.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench._measure import percentile, rss_mb, write_results  # noqa: E402

METHOD = "/v1beta1.DeviceManagerService/ReportDeviceStatus"


def cpu_now() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


# ---- server process ------------------------------------------------------------------------------


async def serve(kind: str, path: str) -> None:
    from dmi.v1beta1 import api_pb2

    calls = 0
    if kind == "grpcio":
        import grpc

        from dmi.v1beta1 import api_pb2_grpc

        class Servicer(api_pb2_grpc.DeviceManagerServiceServicer):
            async def ReportDeviceStatus(self, request: Any, context: Any) -> Any:
                nonlocal calls
                calls += 1
                return api_pb2.ReportDeviceStatusResponse()

        gserver = grpc.aio.server()
        api_pb2_grpc.add_DeviceManagerServiceServicer_to_server(Servicer(), gserver)
        gserver.add_insecure_port(f"unix:{path}")
        await gserver.start()
    else:
        from dmi.rpc import Server

        class Plain:
            def ReportDeviceStatus(self, request: Any) -> Any:
                nonlocal calls
                calls += 1
                return api_pb2.ReportDeviceStatusResponse()

        server = Server()
        server.add_service(api_pb2.DESCRIPTOR.services_by_name["DeviceManagerService"], Plain())
        await server.start(path)
    rss = rss_mb()
    cpu0 = cpu_now()
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    used = cpu_now() - cpu0
    print(
        json.dumps({"calls": calls, "cpu_us_per_call": round(used / max(calls, 1) * 1e6, 1), "rss_mb": rss})
    )


# ---- client process ------------------------------------------------------------------------------


async def drive(kind: str, path: str, rate: float, seconds: float) -> None:
    from dmi.v1beta1 import api_pb2

    twins = [
        api_pb2.Twin(
            propertyName=f"p{j}",
            reported=api_pb2.TwinProperty(value="21.5", metadata={"timestamp": "1700000000000"}),
        )
        for j in range(5)
    ]
    if kind == "grpcio":
        import grpc

        from dmi.v1beta1 import api_pb2_grpc

        gchannel = grpc.aio.insecure_channel(f"unix:{path}")
        stub = api_pb2_grpc.DeviceManagerServiceStub(gchannel)

        async def call(req: Any) -> None:
            await stub.ReportDeviceStatus(req, timeout=10)

    else:
        from dmi.rpc import Channel

        channel = Channel(path)

        async def call(req: Any) -> None:
            await channel.unary(METHOD, req, api_pb2.ReportDeviceStatusResponse, timeout=10)

    await call(api_pb2.ReportDeviceStatusRequest(deviceName="warm-up"))
    latencies: list[float] = []
    concurrency = 64
    cpu0 = cpu_now()
    start = time.monotonic()
    deadline = start + seconds

    async def worker(k: int) -> None:
        i = k
        while (due := start + i / rate) < deadline:
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            req = api_pb2.ReportDeviceStatusRequest(
                deviceName=f"d{i % 200}",
                deviceNamespace="default",
                reportedDevice=api_pb2.DeviceStatus(twins=twins),
            )
            t0 = time.monotonic()
            await call(req)
            latencies.append((time.monotonic() - t0) * 1000)
            i += concurrency

    await asyncio.gather(*(worker(k) for k in range(concurrency)))
    elapsed = time.monotonic() - start
    used = cpu_now() - cpu0
    print(
        json.dumps(
            {
                "calls": len(latencies),
                "calls_per_s": round(len(latencies) / elapsed, 1),
                "cpu_us_per_call": round(used / len(latencies) * 1e6, 1),
                "p50_ms": round(percentile(latencies, 0.5), 3),
                "p99_ms": round(percentile(latencies, 0.99), 3),
            }
        )
    )


# ---- driver --------------------------------------------------------------------------------------


def import_rss(kind: str) -> float:
    code = (
        "import grpc, dmi.v1beta1.api_pb2_grpc" if kind == "grpcio" else "import dmi.rpc, dmi.v1beta1.api_pb2"
    )
    out = subprocess.run(
        [sys.executable, "-c", f"{code}\nfrom bench._measure import rss_mb\nprint(rss_mb())"],
        capture_output=True, text=True, check=True, cwd=ROOT,
    )  # fmt: skip
    return float(out.stdout.strip())


def pairing(server: str, client: str, rate: float, seconds: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-dmi-rpc-") as tmp:
        sock = str(Path(tmp) / "dmi.sock")
        srv = subprocess.Popen(
            [sys.executable, __file__, "--serve", server, "--socket", sock],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert srv.stdin is not None and srv.stdout is not None
        try:
            if "ready" not in srv.stdout.readline():
                raise RuntimeError("server did not start")
            cli = subprocess.run(
                [sys.executable, __file__, "--drive", client, "--socket", sock, "--rate", str(rate),
                 "--seconds", str(seconds)],
                capture_output=True, text=True, check=True, timeout=seconds + 120,
            )  # fmt: skip
            srv.stdin.write("\n")
            srv.stdin.flush()
            server_result = json.loads(srv.stdout.readline())
        finally:
            srv.kill()
            srv.wait()
    client_result = json.loads(cli.stdout.strip().splitlines()[-1])
    return {"server": server, "client": client, "server_side": server_result, "client_side": client_result}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rate", type=float, default=2000)
    p.add_argument("--seconds", type=float, default=10)
    p.add_argument("--serve", choices=["grpcio", "dmi.rpc"], help=argparse.SUPPRESS)
    p.add_argument("--drive", choices=["grpcio", "dmi.rpc"], help=argparse.SUPPRESS)
    p.add_argument("--socket", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.serve:
        asyncio.run(serve(args.serve, args.socket))
        return 0
    if args.drive:
        asyncio.run(drive(args.drive, args.socket, args.rate, args.seconds))
        return 0
    runs = [
        pairing(server, client, args.rate, args.seconds)
        for server, client in (
            ("grpcio", "grpcio"),
            ("dmi.rpc", "grpcio"),
            ("grpcio", "dmi.rpc"),
            ("dmi.rpc", "dmi.rpc"),
        )
    ]
    result = {
        "title": "DMI gRPC transport: dmi.rpc vs grpcio",
        "description": "CPU per ReportDeviceStatus call on each side (each process's own CPU after start-up) "
        "and the client's round trip, at a fixed rate over a Unix socket; RSS after importing each stack.",
        "command": "python bench/dmi_rpc.py",
        "rate": args.rate,
        "seconds": args.seconds,
        "runs": runs,
        "import_rss_mb": {"grpcio": import_rss("grpcio"), "dmi.rpc": import_rss("dmi.rpc")},
        "machine": {"cpus": os.cpu_count(), "loadavg_1m": round(os.getloadavg()[0], 2)},
    }
    for r in runs:
        s, c = r["server_side"], r["client_side"]
        print(
            f"server {r['server']:8} client {r['client']:8}: server {s['cpu_us_per_call']:6.1f} µs/call, "
            f"client {c['cpu_us_per_call']:6.1f} µs/call, {c['calls_per_s']:.0f} calls/s, "
            f"p50 {c['p50_ms']} ms, p99 {c['p99_ms']} ms"
        )
    print("RSS after import (MB):", result["import_rss_mb"])
    write_results(ROOT / "bench" / "results" / "dmi_rpc.json", result, show=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
