"""``kubeshore mapper run`` and ``kubeshore mapper new`` as a user runs them: real subprocesses."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import aiohttp

import crds
from up.processes import Processes

Until = Callable[..., Coroutine[Any, Any, None]]
KUBESHORE = [sys.executable, "-m", "kubeshore.cli"]


def test_scaffolded_mapper_passes_its_own_tests(tmp_path: Path) -> None:
    out = subprocess.run(
        [*KUBESHORE, "mapper", "new", "acme-sensor", "--protocol", "acme", "--dir", str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
    )
    root = tmp_path / "acme-sensor"
    assert str(root) in out.stdout
    for rel in ("acme_sensor/driver.py", "tests/test_driver.py", "config.yaml", "deploy/deployment.yaml"):
        assert (root / rel).is_file(), rel
    deploy = (root / "deploy/deployment.yaml").read_text()
    assert "hostPath" in deploy and "/etc/kubeedge" in deploy
    tests = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert "1 passed" in tests.stdout

    again = subprocess.run(
        [*KUBESHORE, "mapper", "new", "acme-sensor", "--protocol", "acme", "--dir", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert again.returncode == 2 and "already exists" in again.stderr


def test_bad_config_names_the_key(tmp_path: Path) -> None:
    cfg = tmp_path / "mapper.yaml"
    cfg.write_text("common:\n  edgecore_sok: /tmp/x\nruntime:\n  read_timeout_ms: -1\n")
    out = subprocess.run(
        [*KUBESHORE, "mapper", "run", "virtual", "--config", str(cfg)], capture_output=True, text=True
    )
    assert out.returncode == 2
    assert "common.edgecore_sok: unknown key" in out.stderr
    assert "runtime.read_timeout_ms" in out.stderr


def test_mapper_imports_stay_on_the_edge() -> None:
    code = (
        "import sys, mappers.cli, mappers.sdk.app, mappers.virtual, mappers.modbus, mappers.opcua;"
        "print(sorted({m.split('.')[0] for m in sys.modules}))"
    )
    loaded = json.loads(
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.replace("'", '"')
    )
    for banned in ("kubernetes", "cloudcore", "edgecore"):
        assert banned not in loaded


async def test_mapper_run_against_edgecore_peer(
    sock_dir: Path, dmi_peer: Any, port: Callable[[], int], until: Until, tmp_path: Path
) -> None:
    rest_port = port()
    procs = Processes(tmp_path)
    proc = procs.start(
        "mapper", *KUBESHORE, "mapper", "run", "virtual", "--edgecore-sock", str(sock_dir / "dmi.sock"),
        "--socket", str(sock_dir / "virtual.sock"), "--rest-port", str(rest_port),
    )  # fmt: skip
    try:
        await until(lambda: dmi_peer.registrations, what="registration", within=20)
        await dmi_peer.create_model(
            crds.DeviceModel.model_validate(
                {
                    "apiVersion": "devices.kubeedge.io/v1beta1",
                    "kind": "DeviceModel",
                    "metadata": {"name": "m", "namespace": "default"},
                    "spec": {"properties": [{"name": "count", "type": "INT"}]},
                }
            )
        )
        await dmi_peer.register_device(
            crds.Device.model_validate(
                {
                    "apiVersion": "devices.kubeedge.io/v1beta1",
                    "kind": "Device",
                    "metadata": {"name": "c1", "namespace": "default"},
                    "spec": {
                        "deviceModelRef": {"name": "m"},
                        "protocol": {"protocolName": "virtual"},
                        "properties": [
                            {
                                "name": "count",
                                "collectCycle": 100,
                                "reportToCloud": True,
                                "visitors": {"configData": {"kind": "counter"}},
                            }
                        ],
                    },
                }
            )
        )
        await until(lambda: int(dmi_peer.reported("c1", "count") or 0) > 2, what="reports")
        url = f"http://127.0.0.1:{rest_port}/api/v1/device/default/c1/count"
        async with aiohttp.ClientSession() as http, http.get(url) as r:
            assert r.status == 200 and int((await r.json())["Data"]["Value"]) > 2
    finally:
        proc.send_signal(signal.SIGTERM)
        rc = await asyncio.to_thread(proc.wait, 20)
        procs.stop_all()
    assert rc == 0, procs.log("mapper")
    assert not (sock_dir / "virtual.sock").exists()


def test_wrong_paths_fail_clearly_and_create_nothing(tmp_path: Path) -> None:
    """A mapper run with paths that do not exist says what to pass and leaves no directory behind."""
    missing = tmp_path / "etc" / "kubeedge"
    run = subprocess.run(
        [*KUBESHORE, "mapper", "run", "virtual", "--edgecore-sock", str(missing / "dmi.sock")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert run.returncode != 0
    assert f"directory {missing} does not exist" in run.stderr and "--node" in run.stderr, run.stderr
    assert not (tmp_path / "etc").exists()
    nowhere = subprocess.run(
        [*KUBESHORE, "mapper", "run", "virtual", "--node", "edge-9", "--data-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert nowhere.returncode != 0
    assert f"no edgecore.yaml at {tmp_path / 'nodes' / 'edge-9' / 'edgecore.yaml'}" in nowhere.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_node_finds_the_dmi_socket_in_its_edgecore_yaml(tmp_path: Path) -> None:
    from mappers.cli import node_socket

    node = tmp_path / "ks" / "nodes" / "edge-1"
    node.mkdir(parents=True)
    (node / "edgecore.yaml").write_text(f"dmi:\n  socket: {node / 'dmi.sock'}\n")
    assert node_socket("edge-1", str(tmp_path / "ks")) == str(node / "dmi.sock")
    assert node_socket(None, str(node)) == str(node / "dmi.sock")  # a node's own data dir
