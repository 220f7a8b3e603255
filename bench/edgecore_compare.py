"""kubeshore's edgecore and KubeEdge's edgecore side by side, in the same run, on the same cloud.

Run: ``python bench/edgecore_compare.py [--duration S] [--rates 500,2000]`` (needs KubeEdge's binaries,
``KUBEEDGE_BIN`` or ``../shared/kubeedge/bin``, as the interop tests do).

One standalone kubeshore cloudcore (its defaults) and mosquitto; two
edge nodes joined to it with one ``kubeshore token create`` token each: kubeshore's edgecore
(``kubeshore join``) and KubeEdge's edgecore (its ``--defaultconfig`` through KubeEdge's recipe), each
with default log levels and heartbeats. For each:

* RSS (``/proc``, once it has stopped growing) idle, holding 100 devices and holding 1,000 devices
  (5 properties each, applied with kubectl, counted in each edge's own SQLite ``device`` table; an
  edge whose count stops growing short of it is measured as it is, with what it held in
  ``devices_held``);
* load: KubeEdge's ``dmiload`` against each edgecore's DMI socket in turn, one ``ReportDeviceStatus``
  per twin at a fixed offered rate, for the 1,000 devices of that node; the edgecore's own CPU time
  over the run (as a share of one core) and the calls it accepted (``ok``) of those offered.

Prints the results and writes ``bench/results/edgecore_compare.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
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
from bench._measure import cpu_seconds, write_results  # noqa: E402
from bench.edge_memory import edge_count, settled_rss  # noqa: E402

PROPERTIES = 5
PROTOCOL = "bench-lab"


def _kubeedge_bin() -> Path:
    from tests.interop.conftest import unpack_kubeedge

    out = unpack_kubeedge()
    if out is None:
        raise SystemExit("no KubeEdge binaries: set KUBEEDGE_BIN or put them in ../shared/kubeedge/bin")
    return out


def _devices(node: str, prefix: str, start: int, stop: int) -> list[dict[str, Any]]:
    from twinfixtures import numbered_device, numbered_model

    out = [numbered_model(PROPERTIES, name="bench-lab-model", protocol=PROTOCOL, value_type="INT")]
    for i in range(start, stop):
        dev = numbered_device(i, PROPERTIES, model="bench-lab-model", node=node, protocol=PROTOCOL)
        dev["metadata"]["name"] = f"{prefix}{i}"
        for j, prop in enumerate(dev["spec"]["properties"]):
            prop.update(reportToCloud=True, desired={"value": str(j)})
        out.append(dev)
    return out


def _held(edge_dir: Path, count: int, stall: float = 60.0, within: float = 600.0) -> int:
    """Devices in the edge's own ``device`` table once it holds ``count``, or once the number has not
    grown for ``stall`` seconds (an edge that lost some: the result says how many it held)."""
    deadline = time.monotonic() + within
    last, since = -1, time.monotonic()
    while time.monotonic() < deadline:
        n = edge_count(edge_dir, "device")
        if n >= count:
            return n
        if n != last:
            last, since = n, time.monotonic()
        elif time.monotonic() - since > stall:
            break
        time.sleep(1.0)
    return edge_count(edge_dir, "device")


def _machine(load_start: float) -> dict[str, Any]:
    model = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "loadavg_1m_start": load_start,
        "loadavg_1m": round(os.getloadavg()[0], 2),
    }


def _load(
    kubeedge_bin: Path, name: str, pid: int, sock: Path, rate: int, duration: int, devices: int
) -> dict[str, Any]:
    """dmiload at ``rate`` against one edgecore: what it accepted and the CPU it took."""
    props = ",".join(f"p{j}" for j in range(PROPERTIES))
    cpu0, t0 = cpu_seconds(pid), time.monotonic()
    out = subprocess.run(
        [str(kubeedge_bin / "dmiload"), "-sock", str(sock), "-rate", str(rate), "-duration", f"{duration}s",
         "-devices", str(devices), "-device-prefix", f"{name}-dev-", "-props", props],
        capture_output=True, text=True, check=True, timeout=duration + 120,
    )  # fmt: skip
    wall = time.monotonic() - t0
    cpu = cpu_seconds(pid) - cpu0
    summary = json.loads(out.stdout)
    ok = summary.get("ok") or 0
    row: dict[str, Any] = {
        "edgecore": name,
        "rate_per_s": rate,
        "offered": summary.get("offered"),
        "accepted": ok,
        "failed": summary.get("failed"),
        "accepted_per_s": round(summary.get("ok_per_s") or 0.0, 1),
        "not_sent": summary.get("not_sent_backlog"),
        "cpu_core_share": round(cpu / wall, 3),
        "cpu_us_per_accepted": round(cpu * 1e6 / ok, 1) if ok else None,
    }
    errors = summary.get("errors") or {}
    if errors:
        # dmiload groups errors by their text, cut short; the gRPC status prefix says nothing here.
        row["errors"] = "; ".join(
            f"{n} x {m.split(' desc = ', 1)[-1][:100]}" for m, n in list(errors.items())[:2]
        )
    row["rss_mb_after"] = settled_rss(pid, quiet=3.0, within=20.0)
    print(json.dumps(row), flush=True)
    return row


def run(args: argparse.Namespace) -> dict[str, Any]:
    from _peers import free_port, mosquitto
    from _stack import BIN, Stack, wait_for

    kubeedge_bin = _kubeedge_bin()
    load_start = round(os.getloadavg()[0], 2)
    recipes = ROOT.parent / "shared" / "kubeedge" / "recipes"
    with tempfile.TemporaryDirectory(prefix="bench-edgecompare-") as tmp_name, mosquitto() as broker:
        tmp = Path(tmp_name)
        s = Stack(tmp, broker)
        try:
            # KubeEdge's edgehub sends at most messageQPS 30 (burst 60) messages a second, its ACKs
            # included: cloudcore's defaults pace what it sends to that (cloudhub's ack window).
            s.start_cloudcore()
            # kubeshore's edge, with join's defaults (Stack shortens the heartbeat for tests).
            s.join_edge()
            cfg_path = s.edge_dir / "edgecore.yaml"
            import yaml

            cfg = yaml.safe_load(cfg_path.read_text())
            for key in ("heartbeat", "reconnectInitial", "reconnectMax"):
                cfg["edgeHub"].pop(key, None)
            cfg_path.write_text(yaml.safe_dump(cfg))
            s.start("ks-edgecore", str(BIN / "edgecore"), "--config", str(cfg_path), "--log-level", "WARNING")

            # KubeEdge's edge: its default configuration through KubeEdge's recipe, the same cloud.
            ke_dir = tmp / "ke-edge"
            ke_dir.mkdir()
            default = ke_dir / "default.yaml"
            default.write_text(
                subprocess.run(
                    [str(kubeedge_bin / "edgecore"), "--defaultconfig"], capture_output=True, text=True,
                    check=True,
                ).stdout
            )  # fmt: skip
            token = subprocess.run(
                [str(BIN / "kubeshore"), "token", "create", "--data-dir", str(tmp / "cloud")],
                capture_output=True, text=True, check=True,
            ).stdout.strip()  # fmt: skip
            subprocess.run(
                [sys.executable, str(recipes / "edgecore-config.py"), str(default),
                 str(ke_dir / "edgecore.yaml"), str(ke_dir), "ke-edge",
                 f"127.0.0.1:{s.ports['websocketPort']}", f"127.0.0.1:{s.ports['httpsPort']}",
                 token, broker, str(free_port())],
                check=True,
            )  # fmt: skip
            s.start("ke-edgecore", str(kubeedge_bin / "edgecore"), "--config", str(ke_dir / "edgecore.yaml"))

            edges = {
                "kubeshore": {"proc": s.procs["ks-edgecore"], "dir": s.edge_dir, "node": "edge-1"},
                "kubeedge": {"proc": s.procs["ke-edgecore"], "dir": ke_dir, "node": "ke-edge"},
            }
            for name, e in edges.items():
                wait_for((e["dir"] / "dmi.sock").exists, 120, f"{name} edgecore's DMI socket")
            rss: dict[str, dict[str, float]] = {name: {} for name in edges}
            held: dict[str, dict[str, int]] = {name: {} for name in edges}

            def settle(label: str) -> None:
                for name, e in edges.items():
                    rss[name][label] = settled_rss(e["proc"].pid)

            settle("idle")
            done = 0
            for label, count in (("devices_100", 100), (f"devices_{args.devices}", args.devices)):
                objs = []
                for name, e in edges.items():
                    objs += _devices(e["node"], f"{name}-dev-", done, count)
                s.kubectl("apply", "-f", "-", stdin="\n".join(json.dumps(o) for o in objs))
                for name, e in edges.items():
                    held[name][label] = _held(e["dir"], count)
                done = count
                settle(label)

            n = args.devices
            load = [
                _load(kubeedge_bin, name, e["proc"].pid, e["dir"] / "dmi.sock", rate, args.duration, n)
                for rate in args.rates
                for name, e in edges.items()
            ]
            return {
                "title": "edgecore side by side: kubeshore and KubeEdge",
                "description": (
                    "Both edgecores in the same run, joined to one standalone kubeshore cloudcore: RSS "
                    f"idle and holding 100 / {args.devices:,} devices ({PROPERTIES} properties each); then "
                    f"KubeEdge's dmiload against each DMI socket in turn ({args.devices:,} devices, one "
                    "ReportDeviceStatus per "
                    f"twin at the offered rate for {args.duration} s): the edgecore's CPU as a share of one "
                    "core and the calls it accepted (dmiload reports no latencies; not_sent counts calls it "
                    "could not start in time). KubeEdge's edgecore: v1.23.0-beta.0-150 built from source. "
                    "cloudcore with its defaults (ackTimeout 5 s, maxInflight 100): KubeEdge's edgehub "
                    "sends at most 30 messages/s (messageQPS), ACKs included, and cloudhub paces what it "
                    "sends to the ACKs it gets."
                ),
                "command": "python bench/edgecore_compare.py",
                "rss_mb": rss,
                "devices_held": held,
                "load": load,
                "machine": _machine(load_start),
            }
        finally:
            s.stop_all()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--duration", type=int, default=20, help="seconds of load per rate and edgecore")
    p.add_argument("--rates", type=lambda v: [int(x) for x in v.split(",")], default=[500, 2000])
    p.add_argument("--devices", type=int, default=1000, help="devices per edgecore, last step and load")
    p.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "edgecore_compare.json")
    args = p.parse_args(argv)
    result = run(args)
    write_results(args.output, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
