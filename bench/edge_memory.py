"""edgecore's memory: RSS idle, with many devices, with a mapper, and what each import costs.

Run: ``python bench/edge_memory.py [--devices N] [--properties M]``.

One edge node of real processes: standalone cloudcore (embedded API server), ``kubeshore join`` +
edgecore, mosquitto. edgecore's RSS is read from ``/proc``:

* ``idle``: connected to cloudcore, no devices;
* ``with_devices``: N devices x M properties applied with kubectl and held by edgecore;
* ``with_mapper``: a mapper process (tests/devices/testmapper.py) registered for all of them and
  reporting every property once.

Then edgecore is restarted under ``bench/_importcost.py`` (same node, same database) and the mapper
registers again, which gives the import breakdown: what every module that edgecore loaded added to its
RSS while it was imported, minus its own imports, summed per top-level package (``import_mb``), plus the
largest single modules. Prints a summary and writes ``bench/results/edge_memory.json``.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import os
import signal
import sqlite3
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

BIN = Path(sys.executable).parent
TESTMAPPER = ROOT / "tests" / "devices" / "testmapper.py"
TARGET_MB = 50


def rss_parts_mb(pid: int) -> dict[str, float]:
    """RSS split into private memory (RssAnon) and mapped files (RssFile: the interpreter's and
    extension modules' code, shared with every other Python process using the same files)."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("RssAnon", "RssFile"):
            out[key[3:].lower()] = round(int(value.split()[0]) / 1024, 1)
    return out


def settled_rss(pid: int, quiet: float = 11.0, within: float = 90.0) -> float:
    """RSS once it has not grown for ``quiet`` seconds: edgecore finished what it was doing and
    returned freed memory (it does every 10 s)."""
    deadline = time.monotonic() + within
    last, since = rss_mb(pid), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = rss_mb(pid)
        if now > last + 0.1:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            break
    return rss_mb(pid)


def edge_count(edge_dir: Path, table: str) -> int:
    db = sqlite3.connect(f"file:{edge_dir / 'edgecore.db'}?mode=ro", uri=True, timeout=5)
    try:
        return int(db.execute(f"select count(*) from {table}").fetchone()[0])
    except sqlite3.Error:
        return 0
    finally:
        db.close()


def objects(devices: int, properties: int) -> list[dict[str, Any]]:
    """Devices as a real fleet has them: an address, visitors, cycles and desired values."""
    from twinfixtures import numbered_device, numbered_model

    out = [numbered_model(properties, name="mem-model", protocol="mem", value_type="INT")]
    for i in range(devices):
        dev = numbered_device(i, properties, model="mem-model", node="mem-edge", protocol="mem")
        dev["metadata"]["labels"] = {"bench": "edge-memory"}
        dev["spec"]["protocol"]["configData"] = {"address": f"10.0.{i // 250}.{i % 250}"}
        for j, prop in enumerate(dev["spec"]["properties"]):
            prop.update(
                reportToCloud=True,
                collectCycle=10000,
                reportCycle=10000,
                desired={"value": str(j)},
                visitors={"protocolName": "mem", "configData": {"register": j}},
            )
        out.append(dev)
    return out


def breakdown(report: dict[str, Any], top: int) -> dict[str, Any]:
    """Per top-level package and per module: RSS added while imported (self cost), in MB."""
    packages: collections.Counter[str] = collections.Counter()
    ms: collections.Counter[str] = collections.Counter()
    modules = report["modules"]
    for name, cost in modules.items():
        packages[name.split(".")[0]] += cost["rss_kb"]
        ms[name.split(".")[0]] += cost["ms"]
    total = sum(packages.values())
    rows = [
        {"package": name, "rss_mb": round(kb / 1024, 1), "import_ms": round(ms[name])}
        for name, kb in packages.most_common(top)
    ]
    largest = sorted(modules.items(), key=lambda kv: -kv[1]["rss_kb"])[:top]
    return {
        "modules_loaded": len(modules),
        "all_imports_mb": round(total / 1024, 1),
        "packages": rows,
        "modules": [{"module": n, "rss_mb": round(c["rss_kb"] / 1024, 2)} for n, c in largest],
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    from _peers import Kubectl, mosquitto
    from _stack import Processes, wait_for

    load_start = round(os.getloadavg()[0], 2)
    with tempfile.TemporaryDirectory(prefix="bench-edgemem-") as tmp_name, mosquitto() as broker:
        tmp = Path(tmp_name)
        procs = Processes(tmp)
        start, stop = procs.start, procs.kill9
        kube = Kubectl(str(tmp / "cloud" / "admin.kubeconfig"), timeout=600)

        edge_dir = tmp / "mem-edge"
        state = edge_dir / "edgecore.json"
        edgecore_argv = ["--config", str(edge_dir / "edgecore.yaml"), "--log-level", "WARNING"]

        def start_edgecore(*prefix: str) -> subprocess.Popen[bytes]:
            with contextlib.suppress(FileNotFoundError):
                state.unlink()
            p = start("edgecore", *prefix, *edgecore_argv)
            wait_for(state.exists, 60, "edgecore.json")
            return p

        def start_mapper() -> None:
            p = start(
                "mapper", sys.executable, str(TESTMAPPER), "--edgecore-sock", str(edge_dir / "dmi.sock"),
                "--socket", str(tmp / "mapper.sock"), "--protocol", "mem", "--name", "mem-mapper",
                "--period", "3600",
            )  # fmt: skip
            # Registered with every device and one report of every property sent.
            wait_for(lambda: "registered" in (tmp / "mapper.log").read_text(), 120, "mapper registered")
            _ = p

        def reported() -> int:
            db = sqlite3.connect(f"file:{edge_dir / 'edgecore.db'}?mode=ro", uri=True, timeout=5)
            try:
                return int(
                    db.execute("select count(*) from device_twin where actual is not null").fetchone()[0]
                )
            finally:
                db.close()

        try:
            start(
                "cloudcore", str(BIN / "cloudcore"), "--standalone", "--data-dir", str(tmp / "cloud"),
                "--bind", "127.0.0.1", "--websocket-port", "0", "--https-port", "0",
                "--apiserver-port", "0", "--metrics-port", "0", "--log-level", "WARNING",
            )  # fmt: skip
            cloud_state = tmp / "cloud" / "cloudcore.json"
            wait_for(cloud_state.exists, 60, "cloudcore.json")
            ports = json.loads(cloud_state.read_text())
            token = subprocess.run(
                [str(BIN / "kubeshore"), "token", "create", "--data-dir", str(tmp / "cloud")],
                capture_output=True, text=True, check=True,
            ).stdout.strip()  # fmt: skip
            subprocess.run(
                [str(BIN / "kubeshore"), "join", "--cloudcore", f"127.0.0.1:{ports['websocketPort']}",
                 "--https-port", str(ports["httpsPort"]), "--token", token, "--node-name", "mem-edge",
                 "--data-dir", str(edge_dir), "--metaserver-port", "0", "--metrics-port", "0",
                 "--mqtt-url", broker, "--dmi-socket", str(edge_dir / "dmi.sock")],
                capture_output=True, text=True, check=True,
            )  # fmt: skip

            edge = start_edgecore(str(BIN / "edgecore"))
            wait_for(lambda: "True" in kube.kubectl("get", "node", "mem-edge", "-o",
                                                "jsonpath={.status.conditions[?(@.type=='Ready')].status}"),
                     60, "node Ready")  # fmt: skip
            rss = {"idle": settled_rss(edge.pid)}

            t0 = time.monotonic()
            stream = "\n".join(json.dumps(o) for o in objects(args.devices, args.properties))
            kube.apply(stream)
            wait_for(lambda: edge_count(edge_dir, "device") >= args.devices, 600, "devices on the edge")
            apply_s = round(time.monotonic() - t0, 1)
            rss["with_devices"] = settled_rss(edge.pid)

            start_mapper()
            wanted = args.devices * args.properties
            wait_for(lambda: reported() >= wanted, 300, "every property reported")
            rss["with_mapper"] = settled_rss(edge.pid)
            stop("mapper")
            metaserver = f"http://127.0.0.1:{json.loads(state.read_text())['metaServerPort']}"
            listed = subprocess.run(
                ["kubectl", "--kubeconfig", "/dev/null", "--server", metaserver, "get", "devices", "-A",
                 "-o", "name"],
                capture_output=True, text=True, timeout=120,
            )  # fmt: skip
            if listed.stdout.count("device") < args.devices:
                raise RuntimeError(
                    f"MetaServer listed {listed.stdout.count('device')} devices: {listed.stderr}"
                )
            rss["metaserver_used"] = settled_rss(edge.pid)
            parts = rss_parts_mb(edge.pid)

            # The same node again, its imports measured; devices come from its database.
            stop("edgecore")
            report = tmp / "imports.json"
            edge = start_edgecore(sys.executable, str(ROOT / "bench" / "_importcost.py"), str(report), "--",
                                  "edgecore.main")  # fmt: skip
            rss["restarted_with_devices"] = settled_rss(edge.pid)
            os.kill(edge.pid, signal.SIGUSR1)
            wait_for(report.exists, 10, "import report (idle)")
            at_start = json.loads(report.read_text())
            report.unlink()
            start_mapper()
            time.sleep(2)
            settled_rss(edge.pid)
            os.kill(edge.pid, signal.SIGUSR1)
            wait_for(report.exists, 10, "import report (mapper)")
            with_mapper = json.loads(report.read_text())
            if args.save_imports is not None:
                args.save_imports.write_text(json.dumps({"at_start": at_start, "with_mapper": with_mapper}))
            after_mapper = sorted(set(with_mapper["modules"]) - set(at_start["modules"]))

            # edged off (the default) and on, each a plain restart of the same node with its devices:
            # what enabling Pods costs a node before any Pod arrives (the runtime is not reachable,
            # so edged waits for it with its CRI client loaded).
            stop("edgecore")
            edge = start_edgecore(str(BIN / "edgecore"))
            rss["restarted_edged_disabled"] = settled_rss(edge.pid)
            stop("edgecore")
            import yaml

            cfg_path = edge_dir / "edgecore.yaml"
            cfg = yaml.safe_load(cfg_path.read_text())
            cfg["edged"] = {
                "enable": True,
                "tailoredKubeletConfig": {"containerRuntimeEndpoint": f"unix://{tmp / 'no-runtime.sock'}"},
            }
            cfg_path.write_text(yaml.safe_dump(cfg))
            edge = start_edgecore(str(BIN / "edgecore"))
            rss["restarted_edged_enabled"] = settled_rss(edge.pid)
            imports = breakdown(with_mapper, args.top)
            imports["loaded_only_for_a_mapper"] = sorted({m.split(".")[0] for m in after_mapper})
            return {
                "title": "edgecore memory",
                "description": (
                    "RSS of a real edgecore (connected to a standalone cloudcore; MetaServer and metrics "
                    f"on) idle, holding {args.devices} devices x {args.properties} properties, with a mapper "
                    "registered for all of them, and once a client listed devices through the MetaServer; "
                    "then what each imported package added to RSS."
                ),
                "command": "python bench/edge_memory.py",
                "targets": {"rss_mb.with_devices": f"< {TARGET_MB}", "rss_mb.with_mapper": f"< {TARGET_MB}"},
                "devices": args.devices,
                "properties": args.properties,
                "rss_mb": rss,
                "rss_split_mb_metaserver_used": parts,
                "per_device_kb": round((rss["with_devices"] - rss["idle"]) * 1024 / args.devices, 1),
                "setup_s": {"apply_and_receive": apply_s},
                "imports": imports,
                "machine": {
                    "cpus": os.cpu_count(),
                    "loadavg_1m_start": load_start,
                    "loadavg_1m": round(os.getloadavg()[0], 2),
                },
            }
        finally:
            procs.stop_all()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--devices", type=int, default=1000)
    p.add_argument("--properties", type=int, default=5)
    p.add_argument("--top", type=int, default=15, help="packages and modules listed in the breakdown")
    p.add_argument("--save-imports", type=Path, help="also write every module's import cost here (JSON)")
    p.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "edge_memory.json")
    args = p.parse_args(argv)
    result = run(args)
    write_results(args.output, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
