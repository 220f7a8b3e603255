"""MQTT client cost: edgecore's own client (``edgecore.eventbus``) against paho-mqtt, through mosquitto.

Run: ``python bench/mqtt_client.py [--messages N] [--rate R] [--seconds S] [--repeat K]``.

Every measurement runs in a fresh worker process (so its CPU time and RSS are the client's alone)
against one real mosquitto on loopback. paho-mqtt is used the way its users use it: ``loop_start()``
(its own network thread), ``publish`` from the application thread, ``on_message`` for receiving.

* publish: N QoS 0 messages of 100 bytes to 200 topics as fast as the client takes them, then one
  QoS 1 message whose PUBACK proves the broker has them all; messages/s and CPU us per message
  (process CPU time, all threads). Our client yields to the loop every 100 messages, as edgecore does
  between batches of reports.
* receive: ``mosquitto_pub -l`` sends N messages; the client counts them; messages/s and CPU us each.
* latency: one process, one publisher and one subscriber client of the same kind, R messages/s for
  S seconds; publish -> receive p50/p99/max in ms and the process's CPU cores (which includes the
  pacing: at this rate each message is its own wake-up on both sides).
* import RSS: VmRSS after importing the client minus that of a bare interpreter.

Prints a summary and writes ``bench/results/mqtt_client.json``: each figure is the median of
``--repeat`` runs (each of the latency figures separately).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
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
from bench._measure import percentile, write_results  # noqa: E402

IMPLS = ("ours", "paho")
PAYLOAD = b"x" * 100
TOPICS = 200


def host_port(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("tcp://").rsplit(":", 1)
    return host, int(port)


def rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


# ---- paho-mqtt, as its users run it -----------------------------------------------------------


class Paho:
    def __init__(self, url: str, client_id: str) -> None:
        import paho.mqtt.client as paho
        from paho.mqtt.enums import CallbackAPIVersion

        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv311)
        self._ready = threading.Event()
        self._subacked = threading.Event()
        self.client.on_connect = lambda *_a: self._ready.set()
        self.client.on_subscribe = lambda *_a: self._subacked.set()
        self.client.connect(*host_port(url))
        self.client.loop_start()
        assert self._ready.wait(10)

    def subscribe(self, topic: str, on_message: Any) -> None:
        self.client.on_message = lambda _c, _u, msg: on_message(msg.topic, msg.payload)
        self.client.subscribe(topic, qos=0)
        assert self._subacked.wait(10)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


# ---- workers (each its own process) ----------------------------------------------------------


async def ours_client(url: str, client_id: str) -> Any:
    from edgecore.eventbus import MqttClient

    c = MqttClient(url, client_id)
    await c.start()
    await asyncio.wait_for(c.wait_connected(), 10)
    return c


async def fence(c: Any) -> None:
    """A QoS 1 message after the others: once the broker acknowledges it, it has them all."""
    c.publish("bench/fence", b"", qos=1)
    for _ in range(120_000):
        if not c._unacked:  # the acknowledgement is internal state; a benchmark may look
            return
        await asyncio.sleep(0.0005)
    raise TimeoutError("no PUBACK for the fence")


def worker_publish(impl: str, url: str, n: int) -> dict[str, Any]:
    topics = [f"bench/pub/{i}" for i in range(TOPICS)]
    if impl == "paho":
        p = Paho(url, "bench-pub")
        cpu0, t0 = time.process_time(), time.perf_counter()
        for i in range(n):
            p.client.publish(topics[i % TOPICS], PAYLOAD)
        p.client.publish("bench/fence", b"", qos=1).wait_for_publish(60)
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - t0
        p.close()
    else:

        async def run() -> tuple[float, float]:
            c = await ours_client(url, "bench-pub")
            cpu0, t0 = time.process_time(), time.perf_counter()
            for i in range(n):
                c.publish(topics[i % TOPICS], PAYLOAD)
                if i % 100 == 99:
                    await asyncio.sleep(0)
            await fence(c)
            result = time.process_time() - cpu0, time.perf_counter() - t0
            await c.stop()
            return result

        cpu, wall = asyncio.run(run())
    return {"msgs_per_s": round(n / wall), "cpu_us_per_msg": round(cpu / n * 1e6, 2)}


def worker_receive(impl: str, url: str, n: int) -> dict[str, Any]:
    host, port = host_port(url)
    lines = tempfile.NamedTemporaryFile(suffix=".txt")  # noqa: SIM115 (closed below)
    lines.write((PAYLOAD.decode() + "\n").encode() * n)
    lines.flush()
    count = 0
    done = threading.Event()
    finished = done.set  # our client replaces it with an asyncio.Event's
    first = last = 0.0

    def on_message(_t: str, _p: bytes) -> None:
        nonlocal count, first, last
        if not count:
            first = time.perf_counter()
        count += 1
        if count == n:
            last = time.perf_counter()
            finished()

    def send() -> None:
        with open(lines.name, "rb") as stdin:
            subprocess.run(
                ["mosquitto_pub", "-h", host, "-p", str(port), "-t", "bench/recv", "-l"], stdin=stdin
            )

    if impl == "paho":
        p = Paho(url, "bench-recv")
        p.subscribe("bench/recv", on_message)
        cpu0 = time.process_time()
        send()
        done.wait(120)
        cpu = time.process_time() - cpu0
        p.close()
    else:

        async def run() -> float:
            nonlocal finished
            received = asyncio.Event()
            finished = received.set
            c = await ours_client(url, "bench-recv")
            c.subscribe("bench/recv", on_message)
            await asyncio.sleep(0.3)  # SUBACK
            cpu0 = time.process_time()
            sender = asyncio.create_task(asyncio.to_thread(send))
            await asyncio.wait_for(received.wait(), 120)
            cpu = time.process_time() - cpu0
            await sender
            await c.stop()
            return cpu

        cpu = asyncio.run(run())
    lines.close()
    wall = (last or time.perf_counter()) - first
    return {
        "received": count,
        "msgs_per_s": round(count / wall),
        "cpu_us_per_msg": round(cpu / count * 1e6, 2),
    }


def worker_latency(impl: str, url: str, rate: int, seconds: float) -> dict[str, Any]:
    n = int(rate * seconds)
    lat: list[float] = []

    def on_message(_t: str, payload: bytes) -> None:
        lat.append((time.perf_counter_ns() - int(payload[:20])) / 1e6)

    def message() -> bytes:
        return b"%020d" % time.perf_counter_ns() + PAYLOAD

    if impl == "paho":
        sub = Paho(url, "bench-lat-sub")
        sub.subscribe("bench/lat/#", on_message)
        pub = Paho(url, "bench-lat-pub")
        cpu0, start = time.process_time(), time.perf_counter()
        for i in range(n):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            pub.client.publish(f"bench/lat/{i % TOPICS}", message())
        time.sleep(0.5)
        cpu = time.process_time() - cpu0
        wall = time.perf_counter() - start
        pub.close()
        sub.close()
    else:

        async def run() -> tuple[float, float]:
            sub = await ours_client(url, "bench-lat-sub")
            sub.subscribe("bench/lat/#", on_message)
            pub = await ours_client(url, "bench-lat-pub")
            await asyncio.sleep(0.3)
            cpu0, start = time.process_time(), time.perf_counter()
            i = 0
            while i < n:
                while i < n and start + i / rate <= time.perf_counter():
                    pub.publish(f"bench/lat/{i % TOPICS}", message())
                    i += 1
                await asyncio.sleep(max(0.0, start + i / rate - time.perf_counter()))
            await asyncio.sleep(0.5)
            result = time.process_time() - cpu0, time.perf_counter() - start
            await pub.stop()
            await sub.stop()
            return result

        cpu, wall = asyncio.run(run())
    return {
        "sent": n,
        "received": len(lat),
        "p50_ms": round(percentile(lat, 0.5), 3),
        "p99_ms": round(percentile(lat, 0.99), 3),
        "max_ms": round(percentile(lat, 1.0), 3),
        "cpu_cores": round(cpu / wall, 3),
    }


IMPORT_RSS = """
import sys
from pathlib import Path
def rss():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
if sys.argv[2] == "asyncio-loaded":
    import asyncio
before = rss()
if sys.argv[1] == "paho":
    import paho.mqtt.client
else:
    import edgecore.eventbus
print(round((rss() - before) / 1024, 2))
"""


def import_rss(impl: str) -> dict[str, float]:
    """MB of RSS an import adds to a bare interpreter, and to one that already runs asyncio."""
    result = {}
    for label, arg in (("import_rss_mb", "bare"), ("import_rss_mb_asyncio_loaded", "asyncio-loaded")):
        out = subprocess.run(
            [sys.executable, "-c", IMPORT_RSS, impl, arg], check=True, capture_output=True, text=True
        )
        result[label] = float(out.stdout.strip())
    return result


# ---- driver --------------------------------------------------------------------------------


def run_worker(*argv: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, "--worker", *argv], check=True, capture_output=True, text=True, timeout=300
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def median_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    return {k: statistics.median([r[k] for r in runs]) for k in runs[0]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=50_000)
    ap.add_argument("--rate", type=int, default=4000)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        kind, impl, *rest = args.worker
        if kind == "publish":
            result = worker_publish(impl, rest[0], int(rest[1]))
        elif kind == "receive":
            result = worker_receive(impl, rest[0], int(rest[1]))
        else:
            result = worker_latency(impl, rest[0], int(rest[1]), float(rest[2]))
        print(json.dumps(result))
        return

    from _peers import mosquitto

    results: dict[str, Any] = {
        "title": "MQTT client: edgecore's own vs paho-mqtt",
        "messages": args.messages,
        "payload_bytes": len(PAYLOAD),
    }
    with mosquitto() as url:
        for impl in IMPLS:
            res: dict[str, Any] = {}
            res["publish"] = median_of(
                [run_worker("publish", impl, url, str(args.messages)) for _ in range(args.repeat)]
            )
            res["receive"] = median_of(
                [run_worker("receive", impl, url, str(args.messages)) for _ in range(args.repeat)]
            )
            res[f"latency_at_{args.rate}_per_s"] = median_of(
                [
                    run_worker("latency", impl, url, str(args.rate), str(args.seconds))
                    for _ in range(args.repeat)
                ]
            )
            res.update(median_of([import_rss(impl) for _ in range(args.repeat)]))
            results[impl] = res
            print(impl, json.dumps(res, indent=1), flush=True)
    results["machine"] = {
        "cpus": len(os.sched_getaffinity(0)),
        "python": platform.python_version(),
        "loadavg_1m": round(os.getloadavg()[0], 2),
    }
    out = ROOT / "bench" / "results" / "mqtt_client.json"
    write_results(out, results, show=False)
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
