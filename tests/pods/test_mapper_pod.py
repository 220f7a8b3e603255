"""A mapper deployed as a Pod, the KubeEdge way: the image ``localhost/kubeshore-mapper:latest`` built
offline from this machine's Python, imported into a real containerd, and deploy/04-mapper-virtual.yaml
(pinned to the node, its DMI directory and REST port set by ``up._mapperpods``, as `kubeshore up` does)
applied with kubectl. edged runs it; it registers over the mounted DMI socket, the Device's values reach
``kubectl get devicestatus``, a desired value reaches the device; kill -9 of the mapper's process in its
container -> edged restarts it and values resume."""

from __future__ import annotations

import json
import os
import signal
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from _peers import free_port, mosquitto
from _stack import REPO, Stack, wait_for

from pods._containerd import Containerd
from up import _mapperpods, _pythonroot
from up.containerd import MAPPER, build_mapper_image

NODE = "edge-1"
DEVICE = "thermometer-1"


@pytest.fixture(scope="module")
def stack(containerd: Containerd, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    t0 = time.monotonic()
    containerd.node.import_images([build_mapper_image()])
    print(f"mapper image built (or cached) and imported in {time.monotonic() - t0:.1f} s")
    tmp = Path(tmp_path_factory.mktemp("mapperpod"))
    with mosquitto() as broker:
        s = Stack(tmp, broker)
        try:
            s.start_cloudcore()
            # The DMI socket in a directory of its own: that directory is what the Pod mounts.
            s.join_edge(
                extra=(*containerd.join_flags, "--dmi-socket", str(s.edge_dir / "dmi" / "dmi.sock")),
            )  # fmt: skip
            s.start_edgecore()
            ready = "jsonpath={.status.conditions[?(@.type=='Ready')].status}"
            wait_for(lambda: "True" in s.kubectl("get", "node", NODE, "-o", ready), 60, "node Ready")
            s.kubectl(
                "apply",
                "-f", str(REPO / "examples" / "devicemodel-virtual-thermometer.yaml"),
                "-f", str(REPO / "examples" / "device-virtual-thermometer.yaml"),
            )  # fmt: skip
            yield s
        finally:
            s.stop_all()


def test_mapper_image_holds_python_and_the_mapper_extra_only() -> None:
    """The image's layer: an interpreter, kubeshore's mapper packages and the [mapper] extra's
    dependencies; nothing of the cloud side (the kubernetes client) nor kubeshore's cloud and edge
    packages."""
    archive = build_mapper_image()
    with tarfile.open(archive) as outer:
        blobs = [m for m in outer.getmembers() if m.name.startswith("blobs/") and m.isfile()]
        layer = max(blobs, key=lambda m: m.size)  # one layer, far larger than config and manifest
        stream = outer.extractfile(layer)
        assert stream is not None
        with tarfile.open(fileobj=stream, mode="r|gz") as inner:
            names = {m.name.removeprefix("./") for m in inner}
    site = _pythonroot.SITE.lstrip("/")
    top = {n.split("/")[3] for n in names if n.startswith(site + "/") and n.count("/") >= 4}
    assert {"kubeshore", "mappers", "dmi", "crds", "pymodbus", "asyncua", "pydantic", "aiohttp"} <= top
    assert not top & {"kubernetes", "cloudcore", "edgecore", "kubeclient", "k8sproto", "grpc", "rich"}, top
    assert "usr/local/bin/kubeshore" in names and "usr/bin/python3" in names
    assert not any("python3.11/test/" in n for n in names), "the standard library's tests are in"
    print(f"mapper image: {archive.stat().st_size / 1e6:.0f} MB archive, {len(names)} files")


def _pod(stack: Stack) -> dict[str, Any] | None:
    items = stack.get("pods", "-l", f"app.kubernetes.io/name=mapper-virtual-{NODE}")["items"]
    live = [p for p in items if not p["metadata"].get("deletionTimestamp")]
    return live[0] if len(live) == 1 else None


def _ready(pod: dict[str, Any] | None) -> bool:
    conds = ((pod or {}).get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conds)


def _restarts(pod: dict[str, Any] | None) -> int:
    statuses = ((pod or {}).get("status") or {}).get("containerStatuses") or [{}]
    return int(statuses[0].get("restartCount", 0))


def _desired(stack: Stack, value: str) -> None:
    device = stack.get("device", DEVICE)
    index = next(i for i, p in enumerate(device["spec"]["properties"]) if p["name"] == "target-temperature")
    patch = [{"op": "replace", "path": f"/spec/properties/{index}/desired/value", "value": value}]
    stack.kubectl("patch", "device", DEVICE, "--type=json", "-p", json.dumps(patch))


def _reported(stack: Stack, value: str, within: float, what: str) -> None:
    """Until target-temperature's reported value is ``value`` (a DOUBLE: 19 shows as 19.0); a failure
    shows what was reported."""
    seen: list[dict[str, str]] = []

    def check() -> bool:
        seen[:] = [stack.reported(DEVICE)]
        return float(seen[0].get("target-temperature") or "nan") == float(value)

    try:
        wait_for(check, within, what)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\nreported: {seen}\n{_diagnose(stack)}") from None


def _diagnose(stack: Stack) -> str:
    """What a failing wait shows: the Pod's status and the end of edgecore's log."""
    pod = _pod(stack)
    status = json.dumps((pod or {}).get("status"), indent=None)[-1500:]
    # The container's own log, where edged has CRI write it (no `kubectl logs` here).
    logs = sorted((stack.edge_dir / "edged").rglob("mapper/*.log"), key=lambda p: p.stat().st_mtime)
    mapper = logs[-1].read_text(errors="replace")[-1500:] if logs else "(none)"
    edgecore = stack.log("edgecore")[-1500:]
    return f"mapper Pod status: {status}\nmapper log: ...{mapper}\nedgecore log: ...{edgecore}"


def test_mapper_pod_registers_reports_takes_desired_values_and_survives_kill(
    stack: Stack, containerd: Containerd
) -> None:
    dmi_dir = stack.edge_dir / "dmi"
    rest = free_port()
    docs = _mapperpods.manifests(
        _mapperpods.TEMPLATE, node=NODE, driver="virtual", dmi_dir=dmi_dir, rest_port=rest
    )
    deployment = docs[1]["spec"]["template"]["spec"]
    assert deployment["containers"][0]["image"] == MAPPER and deployment["hostNetwork"] is True
    t0 = time.monotonic()
    stack.apply(yaml.safe_dump_all(docs))

    try:
        pod = wait_for(lambda: _ready(p := _pod(stack)) and p, 90, "mapper Pod Ready (readiness probe)")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{_diagnose(stack)}") from None
    print(f"mapper Deployment applied -> Pod Ready in {time.monotonic() - t0:.1f} s")
    assert pod["spec"]["nodeName"] == NODE
    # Registered over the mounted socket: edgecore gave it the Device, whose values reach the cloud.
    _reported(stack, "21.5", 60, f"{DEVICE}'s desired 21.5 reported in its DeviceStatus (mapper registered)")
    print(f"first value in DeviceStatus {time.monotonic() - t0:.1f} s after apply")
    assert stack.reported(DEVICE).get("temperature") not in (None, "")
    assert (dmi_dir / "virtual-mapper.sock").is_socket(), "the mapper's socket is not in the DMI directory"

    _desired(stack, "19")
    _reported(stack, "19", 30, "desired 19 reported")

    # kill -9 of the mapper's process inside its container: edged restarts the container.
    uid = pod["metadata"]["uid"]
    mapper_pids = [
        pid for pid in containerd.pod_pids(uid) if b"mapper" in Path(f"/proc/{pid}/cmdline").read_bytes()
    ]
    assert mapper_pids, f"no mapper process in the Pod's cgroup ({containerd.pod_pids(uid)})"
    rss = sum(int(Path(f"/proc/{pid}/statm").read_text().split()[1]) for pid in mapper_pids)
    print(f"mapper RSS in its container: {rss * os.sysconf('SC_PAGE_SIZE') / 2**20:.1f} MiB")
    for pid in mapper_pids:
        os.kill(pid, signal.SIGKILL)
    killed = time.monotonic()
    wait_for(
        lambda: _restarts(p := _pod(stack)) >= 1 and _ready(p), 90, "mapper restarted by edged and Ready"
    )
    _desired(stack, "23")
    _reported(stack, "23", 60, "desired 23 reported by the restarted mapper")
    print(f"kill -9 -> restarted, new desired value reported in {time.monotonic() - killed:.1f} s")
