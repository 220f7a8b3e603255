"""The acceptance test of `kubeshore up`: the whole platform from a fresh data directory.

Within 90 seconds of `kubeshore up --detach`: both edge nodes Ready, DeviceStatus values changing as
kubectl shows them, a twin value on the node's MQTT broker and one from the mapper's REST API; then
`kubeshore down` leaves no process behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from _peers import free_port

from kubeshore.cli import SUBCOMMANDS
from up._plan import REPO_EXAMPLES, find_command, port_in_use
from up.processes import group_members, is_alive, read_state

pytestmark = pytest.mark.slow

BUDGET = 90.0


def _missing() -> list[str]:
    missing = [c for c in ("cloudcore", "edgecore") if find_command(c) is None]
    missing += [f"kubeshore {c}" for c in ("token", "join", "mapper") if c not in SUBCOMMANDS]
    missing += [b for b in ("mosquitto", "mosquitto_sub", "kubectl") if shutil.which(b) is None]
    kinds = set()
    for path in REPO_EXAMPLES.glob("*.y*ml"):
        kinds |= {d.get("kind") for d in yaml.safe_load_all(path.read_text()) if isinstance(d, dict)}
    if "Device" not in kinds:
        missing.append("examples/ with a Device")
    return missing


def _kubeshore(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kubeshore.cli", *args], capture_output=True, text=True, timeout=timeout
    )


def _kubectl_json(kubeconfig: Path, *args: str) -> dict[str, Any]:
    out = subprocess.run(
        ["kubectl", "--kubeconfig", str(kubeconfig), "get", *args, "-o", "json"],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert out.returncode == 0, out.stderr
    loaded: dict[str, Any] = json.loads(out.stdout)
    return loaded


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, float, float]]:
    """One `kubeshore up --detach` for the module: the acceptance test ends by resuming it, and the
    mapper guide then runs next to it."""
    missing = _missing()
    if missing:
        pytest.skip("waiting for: " + ", ".join(missing))
    data = tmp_path_factory.mktemp("up") / "ks"
    t0 = time.monotonic()
    try:
        up = _kubeshore("up", "--detach", "--random-ports", "--data-dir", str(data), "--timeout", str(BUDGET))
        assert up.returncode == 0, up.stdout + up.stderr
        assert f"export KUBECONFIG={data / 'cloud' / 'admin.kubeconfig'}" in up.stdout
        yield data, t0, time.monotonic()
    finally:
        _kubeshore("down", "--data-dir", str(data))


def test_edgeapplication_pods_run_on_each_groups_node(platform: tuple[Path, float, float]) -> None:
    """With containerd here, `make up` runs the example EdgeApplication: each group's Pods Running on
    its own node, answering with their group's content (docs/pods.md)."""
    from up import containerd

    if containerd.missing():
        pytest.skip(f"Pods are not run here: {containerd.missing()}")
    data, _, _ = platform
    kubeconfig = Path(read_state(data)["kubeconfig"])

    def running() -> dict[str, list[dict[str, Any]]] | None:
        pods = _kubectl_json(kubeconfig, "pods", "-l", "app=hello-edge")["items"]
        ready = [
            p for p in pods
            if any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions", []))
        ]  # fmt: skip
        if len(ready) != 3:
            return None
        by_node: dict[str, list[dict[str, Any]]] = {}
        for p in ready:
            by_node.setdefault(p["spec"]["nodeName"], []).append(p)
        return by_node

    by_node = _wait("the example EdgeApplication's 3 pods Ready", time.monotonic() + 90, running)
    assert len(by_node["edge-1"]) == 2 and len(by_node["edge-2"]) == 1
    for node, site in (("edge-1", "a"), ("edge-2", "b")):
        for p in by_node[node]:
            with urllib.request.urlopen(f"http://{p['status']['podIP']}:8080/", timeout=5) as r:
                assert r.read().decode().startswith(f"hello from {site}")


def _wait(what: str, deadline: float, probe: Any) -> Any:
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = probe()
        except (AssertionError, OSError, subprocess.SubprocessError, ValueError) as exc:
            last = exc
        if last and not isinstance(last, Exception):
            return last
        time.sleep(0.5)
    pytest.fail(f"{what} not seen within {BUDGET:.0f} s of `kubeshore up` (last: {last!r})")


def test_up_runs_everything_and_down_stops_it(platform: tuple[Path, float, float]) -> None:
    data, t0, ready_at = platform
    deadline = t0 + BUDGET
    state = read_state(data)
    kubeconfig = Path(state["kubeconfig"])

    def nodes_ready() -> bool:
        items = _kubectl_json(kubeconfig, "nodes")["items"]
        ready = {
            n["metadata"]["name"]
            for n in items
            if any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"].get("conditions", []))
        }
        return {"edge-1", "edge-2"} <= ready

    _wait("both nodes Ready", deadline, nodes_ready)

    def reported() -> dict[tuple[str, str, str], str]:
        out = {}
        for s in _kubectl_json(kubeconfig, "devicestatuses.devices.kubeedge.io", "-A")["items"]:
            for t in (s.get("status") or {}).get("twins") or []:
                value = (t.get("reported") or {}).get("value")
                if value not in (None, ""):
                    out[(s["metadata"]["namespace"], s["metadata"]["name"], t["propertyName"])] = str(value)
        return out

    first = _wait("reported twin values in DeviceStatus", deadline, reported)

    # Every example device shows values within 15 s of ready, the Modbus thermostat included.
    devices = _kubectl_json(kubeconfig, "devices.devices.kubeedge.io", "-A")["items"]
    names = {(d["metadata"]["namespace"], d["metadata"]["name"]) for d in devices}
    assert ("default", "thermostat-1") in names

    def every_device_reports() -> bool:
        return names <= {k[:2] for k in reported()}

    _wait("values from every example device", min(deadline, ready_at + 15), every_device_reports)

    def changed() -> bool:
        now = reported()
        return any(now.get(k) not in (None, v) for k, v in first.items())

    _wait("a DeviceStatus value changing", deadline, changed)

    devices = _kubectl_json(kubeconfig, "devices.devices.kubeedge.io", "-A")["items"]
    on_node = [d for d in devices if d["spec"].get("nodeName") in state["nodes"]]
    assert on_node, "no example Device is bound to edge-1 or edge-2"
    dev = on_node[0]
    ns, name, node = dev["metadata"]["namespace"], dev["metadata"]["name"], dev["spec"]["nodeName"]
    endpoints = state["nodes"][node]

    host, port = endpoints["mqtt"].split(":")
    remaining = max(5, int(deadline - time.monotonic()))
    # edgecore publishes every twin change reported by the mapper on the device's twin topics; the
    # broker admits applications as user "app" (read-only).
    topic = f"$hw/events/device/{ns}/{name}/twin/#"
    app = ["-u", "app", "-P", Path(endpoints["mqtt_app_password_file"]).read_text().strip()]
    sub = subprocess.run(
        ["mosquitto_sub", "-h", host, "-p", port, *app, "-C", "1", "-W", str(remaining), "-v", "-t", topic],
        capture_output=True,
        text=True,
        timeout=remaining + 5,
    )
    assert sub.returncode == 0 and sub.stdout.startswith(f"$hw/events/device/{ns}/{name}/twin/"), sub.stderr
    assert "twin" in json.loads(sub.stdout.split(" ", 1)[1])

    prop = (
        next(iter(k[2] for k in first if k[:2] == (ns, name)), None) or dev["spec"]["properties"][0]["name"]
    )

    def rest_value() -> Any:
        url = f"{endpoints['mapper_rest']}/api/v1/device/{ns}/{name}/{prop}"
        with urllib.request.urlopen(url, timeout=5) as r:
            body = json.loads(r.read())
        return body["Data"]["Value"] not in (None, "") and body

    _wait("a value from the mapper REST API", deadline, rest_value)
    assert time.monotonic() - t0 < BUDGET

    # A change made by the user, to see that a resume keeps it (examples/ is not applied again).
    props = dev["spec"].get("properties") or []
    index = next(i for i, p in enumerate(props) if (p.get("desired") or {}).get("value") is not None)
    change = json.dumps([{"op": "replace", "path": f"/spec/properties/{index}/desired/value", "value": "7"}])
    patched = subprocess.run(
        [
            "kubectl",
            "--kubeconfig",
            str(kubeconfig),
            "patch",
            "device",
            "-n",
            ns,
            name,
            "--type=json",
            "-p",
            change,
        ],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert patched.returncode == 0, patched.stderr

    # Owner-only data (docs/security.md): nothing open to other users, and no join token in the logs.
    # Container images keep their own modes (755 directories in a rootfs), inside each node's
    # owner-only runtime directory that no other user can enter; so do Pod volumes (a mapper Pod's
    # ConfigMap, with the modes the Pod asks for) inside the owner-only node directory.
    runtime = data / "runtime"
    for node_runtime in runtime.iterdir() if runtime.is_dir() else []:
        assert node_runtime.lstat().st_mode & 0o077 == 0, node_runtime
    volumes = [data / "nodes" / node / "edged" / "pods" for node in state["nodes"]]
    wide = [
        f"{p} {p.lstat().st_mode & 0o777:o}"
        for p in [data, *data.rglob("*")]
        if not p.is_socket()
        and not p.is_symlink()
        and p.lstat().st_mode & 0o077
        and not (runtime in p.parents and p.parent != runtime)
        and not any(v in p.parents and "volumes" in p.relative_to(v).parts for v in volumes)
    ]
    assert not wide, wide
    assert "<stdout not logged" in (data / "logs" / "token.log").read_text()

    # `kubeshore down` stops everything it recorded, the supervisor and every service's process group.
    recorded = [(int(r["pid"]), r.get("ticks")) for r in state["processes"].values()]
    supervisor = (int(state["supervisor"]["pid"]), state["supervisor"].get("ticks"))
    # cloudcore + per node: mosquitto, edgecore, mapper (unless it runs as a Pod), containerd (where Pods
    # run); + edge-2's Modbus simulator and Modbus mapper (unless a Pod)
    from up import containerd

    as_pods = state["mappers"] == "pods"
    assert as_pods == (containerd.missing() is None), state["mappers_reason"]
    assert len(recorded) == 1 + 2 * 2 + 1 + (0 if as_pods else 3) + (0 if containerd.missing() else 2)
    # Each node's Pods (the mappers' too) run under a cgroup root of its own, which down removes whole.
    from kubeshore import cgroups

    roots = [containerd.cgroup_root(d) for d in sorted((data / "runtime").glob("*"))]
    if not containerd.missing():
        made = [r for r in roots if any((h / r[1:]).is_dir() for h in cgroups.hierarchies())]
        assert len(roots) == 2 and made == roots, (roots, made)
    down = _kubeshore("down", "--data-dir", str(data))
    assert down.returncode == 0, down.stderr
    for pid, ticks in [*recorded, supervisor]:
        assert not is_alive(pid, ticks), f"pid {pid} survived kubeshore down"
        assert group_members(pid) == [], f"process group {pid} has members after kubeshore down"
    assert [h / r[1:] for h in cgroups.hierarchies() for r in roots if (h / r[1:]).exists()] == []

    # Running it again resumes from the same data directory: no second join, the user's change kept,
    # and `up --detach` returns only once both edgecores have sent a fresh heartbeat. The mappers run
    # as host processes this time: the other mode, with every device reporting from them.
    again = _kubeshore(
        "up", "--detach", "--data-dir", str(data), "--timeout", str(BUDGET), "--mappers", "processes"
    )
    assert again.returncode == 0, again.stdout + again.stderr
    assert "mappers      as host processes: chosen with --mappers=processes" in again.stdout, again.stdout
    resumed_at = time.monotonic()
    assert read_state(data)["mappers"] == "processes"
    mapper_pods = _kubectl_json(kubeconfig, "pods", "-l", "app.kubernetes.io/component=mapper")["items"]
    assert mapper_pods == [], [p["metadata"]["name"] for p in mapper_pods]

    def served() -> bool:
        """Every example device has a value in the REST API of its mapper, now a host process."""
        for d in devices:
            node = read_state(data)["nodes"][d["spec"]["nodeName"]]
            rest = node[
                "modbus_mapper_rest" if d["spec"]["protocol"]["protocolName"] == "modbus" else "mapper_rest"
            ]
            prop = d["spec"]["properties"][0]["name"]
            url = f"{rest}/api/v1/device/{d['metadata']['namespace']}/{d['metadata']['name']}/{prop}"
            with urllib.request.urlopen(url, timeout=5) as r:
                if json.loads(r.read())["Data"]["Value"] in (None, ""):
                    return False
        return True

    _wait("values from every example device, from the mapper processes' REST APIs", resumed_at + 15, served)
    log = (data / "logs" / "up.log").read_text()
    second_run = log[log.rfind("[1/") :]
    assert "join" not in second_run and "examples from" not in second_run, second_run
    resumed = _kubectl_json(kubeconfig, "device", "-n", ns, name)
    assert resumed["metadata"]["uid"] == dev["metadata"]["uid"]
    assert resumed["spec"]["properties"][index]["desired"]["value"] == "7"
    _wait("both nodes Ready again", time.monotonic() + 30, nodes_ready)


GUIDE = Path(__file__).resolve().parents[1] / "docs" / "mapper-guide.md"


def _guide_block(marker: str) -> str:
    text = GUIDE.read_text()
    after = text.split(f"<!-- guide-test: {marker} -->", 1)[1]
    return after.split("```sh\n", 1)[1].split("```", 1)[0]


def test_mapper_guide_as_written(platform: tuple[Path, float, float], tmp_path: Path) -> None:
    """docs/mapper-guide.md section 0, as written, next to `kubeshore up`: scaffold, install, test,
    run the simulator and the mapper on edge-1, apply the Device; values in DeviceStatus and on MQTT.
    Only the ports differ: the simulator's and edge-1's broker are the free ones this run has."""
    data, _, _ = platform
    state = read_state(data)
    if not state.get("ready"):
        pytest.skip("kubeshore up is not running (the acceptance test above failed)")
    setup, look = _guide_block("setup"), _guide_block("look")
    look = look.replace("1884", state["nodes"]["edge-1"]["mqtt"].split(":")[1])
    if port_in_use(5020):  # another program has the simulator's port: this run uses a free one
        port = str(free_port())
        setup = setup.replace("5020", port).replace(
            "pip install", f"sed -i 's/5020/{port}/' deploy/device.yaml\npip install", 1
        )
    # The working directory looks like the repository: its .venv and a `make up` data dir in .kubeshore.
    (tmp_path / ".venv").symlink_to(Path(sys.executable).parents[1])
    (tmp_path / ".kubeshore").symlink_to(data)
    home = tmp_path / "home"
    home.mkdir()
    env = {
        k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "KUBESHORE_DATA_DIR", "VIRTUAL_ENV")
    }
    env["HOME"] = str(home)
    (tmp_path / "setup.sh").write_text("set -euo pipefail\n" + setup)
    run = subprocess.Popen(
        ["bash", str(tmp_path / "setup.sh")], cwd=tmp_path, env=env, start_new_session=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    project = home / "mappers" / "acme-sensor"
    try:
        out, _ = run.communicate(timeout=240)
        assert run.returncode == 0, out
        assert "1 passed" in out, out
        kubeconfig = data / "cloud" / "admin.kubeconfig"

        def values() -> dict[str, str]:
            twins = (_kubectl_json(kubeconfig, "devicestatus", "acme-sensor-1").get("status") or {}).get(
                "twins"
            )
            return {t["propertyName"]: (t.get("reported") or {}).get("value", "") for t in twins or []}

        deadline = time.monotonic() + 60
        while values() != {"temperature": "21.5", "setpoint": "25"}:
            if time.monotonic() > deadline:
                logs = "".join((project / f).read_text() for f in ("mapper.log", "simulator.log"))
                pytest.fail(f"acme-sensor-1 reports {values()}; logs:\n{logs[-4000:]}")
            time.sleep(0.5)
        looked = subprocess.run(
            # In the shell the guide's first block left: its venv and exports (the first two lines).
            ["bash", "-c", "set -euo pipefail\n" + "".join(setup.splitlines(True)[:2]) + look],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert looked.returncode == 0, looked.stdout + looked.stderr
        assert "online" in looked.stdout and "temperature=21.5" in looked.stdout, looked.stdout
        assert "$hw/events/device/default/acme-sensor-1/twin/update/document" in looked.stdout
        assert not Path("/etc/kubeedge/acme-sensor.sock").exists()
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(run.pid, signal.SIGTERM)
        subprocess.run([sys.executable, "-m", "pip", "uninstall", "-q", "-y", "acme-sensor"], timeout=120)
