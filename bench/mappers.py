"""Mapper SDK costs: the virtual mapper at scale, and Modbus read throughput against plain pymodbus.

Run: ``python -m bench.mappers [--devices 1000] [--properties 10] [--seconds 30]``.

1. ``kubeshore mapper run virtual`` as its own process, registered with an edgecore stand-in (a real
   DeviceManagerService on a Unix socket, in this process) that hands it N devices x P properties at a
   1 s collectCycle through MapperRegister. After a warm-up, the mapper's CPU (cores, from /proc) and
   RSS are sampled, and the twins edgecore receives per second are counted.
2. A pymodbus TCP server in its own process; first a plain pymodbus loop reads a holding register
   back to back, then the SDK (device runtime + ModbusDriver, the same read) does, both for the same
   time on one connection. Overhead = 1 - sdk_rate / plain_rate.

Writes ``bench/results/mappers.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import shutil
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import grpc  # noqa: E402
from _peers import free_port  # noqa: E402

import crds  # noqa: E402
from bench._measure import cpu_seconds, rss_mb, write_results  # noqa: E402
from dmi import convert  # noqa: E402
from dmi.v1beta1 import api_pb2, api_pb2_grpc  # noqa: E402
from up.processes import Processes  # noqa: E402


def _fleet(devices: int, properties: int) -> tuple[api_pb2.DeviceModel, list[api_pb2.Device]]:
    kinds = ["sine", "random-walk", "counter", "writable"]
    model = crds.DeviceModel.model_validate(
        {
            "apiVersion": "devices.kubeedge.io/v1beta1",
            "kind": "DeviceModel",
            "metadata": {"name": "bench", "namespace": "default"},
            "spec": {
                "protocol": "virtual",
                "properties": [{"name": f"p{i}", "type": "DOUBLE"} for i in range(properties)],
            },
        }
    )
    out = []
    for d in range(devices):
        device = crds.Device.model_validate(
            {
                "apiVersion": "devices.kubeedge.io/v1beta1",
                "kind": "Device",
                "metadata": {"name": f"dev-{d}", "namespace": "default"},
                "spec": {
                    "deviceModelRef": {"name": "bench"},
                    "protocol": {"protocolName": "virtual", "configData": {"seed": d}},
                    "properties": [
                        {
                            "name": f"p{i}",
                            "collectCycle": 1000,
                            "reportToCloud": True,
                            "visitors": {"configData": {"generator": kinds[i % 4], "min": 0, "max": 100}},
                        }
                        for i in range(properties)
                    ],
                    "stateReport": {"reportToCloud": True, "reportCycle": 10000},
                },
            }
        )
        out.append(convert.device_to_dmi(device))
    return convert.device_model_to_dmi(model), out


class Edgecore(api_pb2_grpc.DeviceManagerServiceServicer):
    def __init__(self, model: api_pb2.DeviceModel, devices: list[api_pb2.Device]) -> None:
        self.model, self.devices = model, devices
        self.reports = 0
        self.twins = 0
        self.states = 0
        self.registered = asyncio.Event()

    async def MapperRegister(self, request: Any, context: Any) -> api_pb2.MapperRegisterResponse:
        self.registered.set()
        return api_pb2.MapperRegisterResponse(modelList=[self.model], deviceList=self.devices)

    async def ReportDeviceStatus(self, request: Any, context: Any) -> api_pb2.ReportDeviceStatusResponse:
        self.reports += 1
        self.twins += len(request.reportedDevice.twins)
        return api_pb2.ReportDeviceStatusResponse()

    async def ReportDeviceStates(self, request: Any, context: Any) -> api_pb2.ReportDeviceStatesResponse:
        self.states += 1
        return api_pb2.ReportDeviceStatesResponse()


async def bench_virtual(devices: int, properties: int, seconds: float) -> dict[str, Any]:
    model, fleet = _fleet(devices, properties)
    with tempfile.TemporaryDirectory(prefix="ksb-") as tmp:
        edgecore = Edgecore(model, fleet)
        server = grpc.aio.server(options=[("grpc.max_send_message_length", 64 << 20)])
        api_pb2_grpc.add_DeviceManagerServiceServicer_to_server(edgecore, server)
        server.add_insecure_port(f"unix:{tmp}/dmi.sock")
        await server.start()
        procs = Processes(Path(tmp), cwd=ROOT)
        proc = procs.start(
            "mapper", sys.executable, "-m", "kubeshore.cli", "mapper", "run", "virtual",
            "--edgecore-sock", f"{tmp}/dmi.sock", "--socket", f"{tmp}/virtual.sock",
            "--rest-port", str(free_port()), "--log-level", "warning",
        )  # fmt: skip
        try:
            started = time.monotonic()
            await asyncio.wait_for(edgecore.registered.wait(), 60)
            print(f"registered after {time.monotonic() - started:.1f}s", file=sys.stderr)
            # Warm up until every device reports each cycle.
            want = devices * properties
            warm_until = time.monotonic() + 120
            while time.monotonic() < warm_until:
                before = edgecore.twins
                await asyncio.sleep(2)
                rate = (edgecore.twins - before) / 2
                print(f"warming up: {rate:.0f} twins/s of {want}", file=sys.stderr)
                if rate >= 0.9 * want:
                    break
            warmup_s = time.monotonic() - started
            cpu0, twins0, reports0, t0 = (
                cpu_seconds(proc.pid),
                edgecore.twins,
                edgecore.reports,
                time.monotonic(),
            )
            rss = []
            while time.monotonic() - t0 < seconds:
                await asyncio.sleep(1)
                rss.append(rss_mb(proc.pid))
            wall = time.monotonic() - t0
            cpu = (cpu_seconds(proc.pid) - cpu0) / wall
            print(f"measured {wall:.0f}s: {cpu:.3f} cores", file=sys.stderr)
            return {
                "devices": devices,
                "properties_per_device": properties,
                "collect_cycle_ms": 1000,
                "measured_s": round(wall, 1),
                "startup_to_full_rate_s": round(warmup_s, 1),
                "cpu_cores": round(cpu, 3),
                "rss_mb_median": statistics.median(rss),
                "rss_mb_max": max(rss),
                "twins_reported_per_s": round((edgecore.twins - twins0) / wall),
                "expected_twins_per_s": want,
                "report_rpcs_per_s": round((edgecore.reports - reports0) / wall),
            }
        finally:
            stopping = time.monotonic()
            await asyncio.to_thread(procs.stop_all, 20)  # SIGTERM, SIGKILL after 20 s
            print(f"mapper stopped in {time.monotonic() - stopping:.1f}s", file=sys.stderr)
            await server.stop(0)


MODBUS_SERVER = """
import asyncio, sys
from pymodbus.datastore import ModbusDeviceContext, ModbusSequentialDataBlock, ModbusServerContext
from pymodbus.server import StartAsyncTcpServer
block = ModbusSequentialDataBlock(1, list(range(100)))
ctx = ModbusServerContext(devices=ModbusDeviceContext(hr=block), single=True)
asyncio.run(StartAsyncTcpServer(context=ctx, address=("127.0.0.1", int(sys.argv[1]))))
"""


async def bench_modbus(seconds: float) -> dict[str, Any]:
    from pymodbus.client import AsyncModbusTcpClient

    from mappers.modbus import ModbusDriver
    from mappers.sdk import DeviceConfig, DeviceModel, ModelProperty, PropertyConfig, PropertyType, Reading
    from mappers.sdk._device import DeviceRuntime, RuntimeSettings

    port = free_port()
    procs = Processes(Path(tempfile.mkdtemp(prefix="ksb-modbus-")))
    procs.start("modbus-server", sys.executable, "-c", MODBUS_SERVER, str(port))
    try:
        for _ in range(200):
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
            await asyncio.sleep(0.05)

        async def plain_round(secs: float) -> tuple[float, float]:
            client = AsyncModbusTcpClient("127.0.0.1", port=port)
            await client.connect()
            n, end, cpu0 = 0, time.monotonic() + secs, time.process_time()
            while time.monotonic() < end:
                rr = await client.read_holding_registers(2, count=1, device_id=1)
                assert not rr.isError()
                n += 1
            cpu = time.process_time() - cpu0
            client.close()
            return n / secs, 1e6 * cpu / n

        class Count:
            n = 0

            def twin_updated(self, device: DeviceRuntime, reading: Reading) -> None:
                self.n += 1

            def state_changed(self, device: DeviceRuntime) -> None:
                pass

            def push(self, device: DeviceRuntime, prop: Any, reading: Reading) -> None:
                pass

        # Ten properties polled every millisecond keep the device's single connection saturated:
        # reads run back to back, as in the plain loop.
        props = tuple(
            PropertyConfig(f"r{i}", {"register": "HoldingRegister", "offset": 2 + i}, collect_cycle_ms=1)
            for i in range(10)
        )
        model = DeviceModel("default", "m", {p.name: ModelProperty(p.name, PropertyType.INT) for p in props})
        config = DeviceConfig("default", "plc", "m", "modbus", {"ip": "127.0.0.1", "port": port}, props)

        async def sdk_round(secs: float) -> tuple[float, float]:
            events = Count()
            rt = DeviceRuntime(config, model, ModbusDriver, events, RuntimeSettings())
            rt.start()
            for _ in range(1000):
                if rt.connected:
                    break
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.2)
            start_n, start_t, cpu0 = events.n, time.monotonic(), time.process_time()
            await asyncio.sleep(secs)
            n = events.n - start_n
            rate, cpu = n / (time.monotonic() - start_t), time.process_time() - cpu0
            await rt.stop()
            return rate, 1e6 * cpu / n

        # Alternate short rounds: the machine is shared, so load changes between rounds hit both.
        rounds = 5
        plain, sdk = [], []
        for _ in range(rounds):
            plain.append(await plain_round(seconds / rounds))
            sdk.append(await sdk_round(seconds / rounds))
        print(f"modbus (reads/s, cpu us/read) plain {plain} sdk {sdk}", file=sys.stderr)
        ratios = [s[0] / p[0] for s, p in zip(sdk, plain, strict=True)]
        plain_cpu = statistics.median(c for _, c in plain)
        sdk_cpu = statistics.median(c for _, c in sdk)
        return {
            "plain_pymodbus_reads_per_s": round(statistics.median(r for r, _ in plain)),
            "sdk_reads_per_s": round(statistics.median(r for r, _ in sdk)),
            "sdk_overhead_pct": round(100 * (1 - statistics.median(ratios)), 1),
            "plain_cpu_us_per_read": round(plain_cpu),
            "sdk_cpu_us_per_read": round(sdk_cpu),
            "sdk_cpu_overhead_pct": round(100 * (sdk_cpu / plain_cpu - 1), 1),
            "rounds": rounds,
            "measured_s_each": seconds,
        }
    finally:
        procs.stop_all()
        shutil.rmtree(procs.log_dir, ignore_errors=True)


async def amain(opts: argparse.Namespace) -> dict[str, Any]:
    load_before = os.getloadavg()[0]
    virtual = await bench_virtual(opts.devices, opts.properties, opts.seconds)
    modbus = await bench_modbus(opts.modbus_seconds)
    return {
        "title": "Mapper SDK: virtual mapper at scale, Modbus read throughput",
        "description": (
            "`kubeshore mapper run virtual` as its own process serving devices x properties at a 1 s "
            "collectCycle, reporting every twin to an edgecore stand-in over DMI (CPU and RSS of the mapper "
            "process); Modbus: back-to-back holding-register reads over one connection, plain pymodbus loop "
            "vs. the SDK's device runtime with the Modbus driver, against a pymodbus server process."
        ),
        "command": f"python -m bench.mappers --devices {opts.devices} --properties {opts.properties}",
        "machine": f"{platform.machine()}, {os.cpu_count()} shared cores, Python {platform.python_version()}",
        "load_average_1m": {"before": round(load_before, 1), "after": round(os.getloadavg()[0], 1)},
        "virtual": virtual,
        "modbus": modbus,
        "targets": {"virtual.cpu_cores": "< 0.5", "modbus.sdk_overhead_pct": "< 30"},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--properties", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--modbus-seconds", type=float, default=10)
    parser.add_argument("--output", default=str(ROOT / "bench" / "results" / "mappers.json"))
    opts = parser.parse_args(argv)
    result = asyncio.run(amain(opts))
    write_results(Path(opts.output), result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
