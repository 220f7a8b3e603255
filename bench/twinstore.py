"""edgecore's twin store on its own: CPU per reported value, flush time, and how long a Device write
waits while a backlog of reported values is being flushed.

Run: ``python bench/twinstore.py [--devices N] [--properties M] [--rounds R]``.

The store shares edgecore's database setup (metamanager's engine, ``synchronous=FULL``, one database
thread). Each round reports every property of every device ten times (2,000 reports/s for 200
devices with the default one-second flush) and flushes; CPU is the process CPU of reporting (apply and
mark dirty) and of flushing, per reported value and per row written. Then, with a backlog of one
report per property, a Device update with a new desired value is timed from arrival to committed,
with the event loop idle and with it busy (4 ms of Python work per 5 ms, as under load).
Prints a summary and writes ``bench/results/twinstore.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "devices"))
from bench._measure import percentile, write_results  # noqa: E402


async def busy(stop: asyncio.Event) -> None:
    while not stop.is_set():
        t = time.perf_counter()
        while time.perf_counter() - t < 0.004:
            sum(range(200))
        await asyncio.sleep(0.001)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    from twinfixtures import numbered_device, numbered_model

    from edgecore.devicetwin import DeviceTwin, TwinStore
    from edgecore.metamanager import EdgeStore

    n, m = args.devices, args.properties

    def report(twin: DeviceTwin, times: int, value: str | None = None) -> None:
        for i in range(n):
            for _ in range(times):
                v = value or str(time.time_ns())
                twin.report_status(
                    "default", f"d{i}", [(f"p{j}", v, {"timestamp": v[:13]}, None) for j in range(m)]
                )

    out: dict[str, Any] = {"devices": n, "properties": m}
    with tempfile.TemporaryDirectory(prefix="bench-twinstore-") as tmp:
        edge = EdgeStore(Path(tmp) / "edgecore.db")
        store = TwinStore(
            edge.engine.url.database or "", engine=edge.engine, executor=edge.executor, flush_interval=3600
        )
        await store.open()
        twin = DeviceTwin(store, "n", sync_interval=3600)
        await twin.start()
        await twin.upsert_model(numbered_model(m, rv="1"))
        for i in range(n):
            await twin.upsert_device(numbered_device(i, m, rv="2"))
        report_cpu = flush_cpu = 0.0
        rows0 = store.rows_written
        for _ in range(args.rounds):
            c0 = time.process_time()
            report(twin, 10)
            c1 = time.process_time()
            await store.sync()
            report_cpu += c1 - c0
            flush_cpu += time.process_time() - c1
        values = args.rounds * n * 10 * m
        rows = store.rows_written - rows0
        out["cpu_us"] = {
            "report_and_mark_per_value": round(report_cpu / values * 1e6, 2),
            "flush_per_value": round(flush_cpu / values * 1e6, 2),
            "flush_per_row": round(flush_cpu / rows * 1e6, 2),
        }
        await twin.stop()
        await store.close()

        # A flusher that writes the backlog as fast as it can, and Device updates arriving meanwhile.
        store = TwinStore(
            edge.engine.url.database or "", engine=edge.engine, executor=edge.executor, flush_interval=0.0
        )
        await store.open()
        twin = DeviceTwin(store, "n", sync_interval=3600)
        await twin.start()
        for load in ("idle", "busy"):
            stop = asyncio.Event()
            spinner = asyncio.create_task(busy(stop)) if load == "busy" else None
            flush_ms: list[float] = []
            upsert_ms: list[float] = []
            for r in range(args.rounds):
                report(twin, 1)
                t0 = time.perf_counter()
                await store.sync()
                flush_ms.append((time.perf_counter() - t0) * 1e3)
                report(twin, 1)
                await asyncio.sleep(0)  # the flusher starts on the backlog
                t0 = time.perf_counter()
                await twin.upsert_device(numbered_device(r % n, m, rv=str(100 + r), desired=str(r)))
                upsert_ms.append((time.perf_counter() - t0) * 1e3)
                await store.sync()
            stop.set()
            if spinner is not None:
                await spinner
            out[f"{load}_loop"] = {
                f"flush_{n * m}_rows_ms": {
                    "p50": round(statistics.median(flush_ms), 2),
                    "p99": round(percentile(flush_ms, 0.99), 2),
                },
                "device_upsert_during_backlog_ms": {
                    "p50": round(statistics.median(upsert_ms), 2),
                    "p99": round(percentile(upsert_ms, 0.99), 2),
                },
            }
        await twin.stop()
        await store.close()
        edge.close()
    out["machine"] = {"cpus": os.cpu_count(), "loadavg_1m": round(os.getloadavg()[0], 2)}
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--devices", type=int, default=200)
    p.add_argument("--properties", type=int, default=5)
    p.add_argument("--rounds", type=int, default=20)
    args = p.parse_args(argv)
    result = {"title": "Twin store (edgecore devicetwin)", "command": "python bench/twinstore.py"}
    result.update(asyncio.run(run(args)))
    write_results(ROOT / "bench" / "results" / "twinstore.json", result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
