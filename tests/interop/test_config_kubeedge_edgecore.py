"""``edgecore --config`` reads KubeEdge's own edgecore.yaml: the file KubeEdge's edgecore writes with
``--defaultconfig`` (every key mapped or named in one warning line), and a file written by KubeEdge's
recipe for this machine, on which kubeshore's edgecore gets its certificate with the configured token
and syncs a Device from kubeshore's cloudcore."""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from _peers import free_port, mosquitto
from _stack import BIN, Stack, wait_for

from edgecore.config import EdgeCoreConfig
from kubeshore.config import load_config

pytest.importorskip("cloudcore.apiserver", reason="standalone mode needs the embedded API server")


@pytest.fixture(scope="module")
def default_config(kubeedge_bin: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ke-config") / "default.yaml"
    out = subprocess.run(
        [str(kubeedge_bin / "edgecore"), "--defaultconfig"], capture_output=True, text=True, timeout=30
    )
    path.write_text(out.stdout)
    return path


def test_kubeedge_default_config_maps_and_names_what_it_ignores(
    default_config: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="kubeshore.config"):
        cfg = load_config(EdgeCoreConfig, default_config)

    assert cfg.node_name == "vm"
    assert (cfg.edge_hub.server, cfg.edge_hub.https_server) == ("192.0.2.2:10000", "192.0.2.2:10002")
    assert (cfg.edge_hub.heartbeat, cfg.edge_hub.handshake_timeout) == (15.0, 30.0)
    assert cfg.certs.ca_file == Path("/etc/kubeedge/ca/rootCA.crt")
    assert cfg.certs.cert_file == Path("/etc/kubeedge/certs/server.crt")
    assert cfg.certs.key_file == Path("/etc/kubeedge/certs/server.key")
    # Beside KubeEdge's database, whose tables have other columns under the same names.
    assert cfg.database.path == Path("/var/lib/kubeedge/edgecore.kubeshore.db")
    assert cfg.dmi.socket == Path("/etc/kubeedge/dmi.sock")
    assert cfg.event_bus.mqtt_url == "tcp://127.0.0.1:1883"
    assert cfg.meta_server.enable is False
    assert cfg.edged.enable and cfg.edged.root_directory == Path("/var/lib/kubelet")
    assert cfg.edged.tailored_kubelet_config.runtime_request_timeout == 120.0  # "2m0s"
    assert (cfg.node_status_check_period, cfg.node_status_report_period) == (10.0, 300.0)

    (warning,) = [r.getMessage() for r in caplog.records]
    named = warning.rpartition("ignored: ")[2].split(", ")
    assert {"modules.edgeHub.projectID", "modules.edged.podSandboxImage", "modules.eventBus.mqttQOS"} <= set(
        named
    )
    # The kubelet's many other settings are named once, with their number.
    (kubelet,) = [n for n in named if "tailoredKubeletConfig" in n]
    assert re.fullmatch(r"modules\.edged\.tailoredKubeletConfig \(\d+ other keys\)", kubelet)
    # Mapped keys and sections switched off are not named.
    mapped = {"modules.edgeHub.websocket.server", "modules.edged.hostnameOverride", "modules.edged.enable"}
    assert not set(named) & (mapped | {"apiVersion", "kind"})
    assert not any(
        n.startswith(("modules.edgeStream", "modules.edgeHub.quic", "modules.serviceBus")) for n in named
    )

    # The command reads it too: one warning line, then the missing certificate (no join happened).
    done = subprocess.run(
        [str(BIN / "edgecore"), "--config", str(default_config)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert [ln for ln in lines if "ignored:" in ln] == [
        ln for ln in lines if "modules.edgeHub.projectID" in ln
    ]
    assert "does not exist" in lines[-1] and "/etc/kubeedge/ca/rootCA.crt" in lines[-1]


@pytest.fixture
def cloud(tmp_path: Path) -> Iterator[Stack]:
    with mosquitto() as broker:
        s = Stack(tmp_path, broker)
        try:
            s.start_cloudcore()
            yield s
        finally:
            s.stop_all()


DEVICE = """
apiVersion: devices.kubeedge.io/v1beta1
kind: DeviceModel
metadata: {name: cfg-model, namespace: default}
spec: {protocol: virtual, properties: [{name: p, type: INT, accessMode: ReadOnly}]}
---
apiVersion: devices.kubeedge.io/v1beta1
kind: Device
metadata: {name: cfg-1, namespace: default}
spec:
  deviceModelRef: {name: cfg-model}
  nodeName: ke-config-node
  protocol: {protocolName: virtual}
  properties: [{name: p}]
"""


def _recipe_config(cloud: Stack, default_config: Path, recipes: Path) -> tuple[Path, int]:
    """KubeEdge's recipe writes edgecore.yaml for node ke-config-node, with a ``kubeshore token create``
    token; returns its path and the MetaServer port in it."""
    token = subprocess.run(
        [str(BIN / "kubeshore"), "token", "create", "--data-dir", str(cloud.tmp / "cloud")],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout.strip()  # fmt: skip
    edge_dir = cloud.tmp / "ke-edge"
    edge_dir.mkdir()
    config = edge_dir / "edgecore.yaml"
    metaserver = free_port()
    subprocess.run(
        [sys.executable, str(recipes / "edgecore-config.py"), str(default_config), str(config),
         str(edge_dir), "ke-config-node", f"127.0.0.1:{cloud.ports['websocketPort']}",
         f"127.0.0.1:{cloud.ports['httpsPort']}", token, cloud.broker, str(metaserver)],
        check=True, timeout=30,
    )  # fmt: skip
    return config, metaserver


def _device_at_edge(cloud: Stack, metaserver: int) -> None:
    def check() -> bool:
        assert cloud.procs["edgecore"].poll() is None, cloud.log("edgecore")[-3000:]
        url = f"http://127.0.0.1:{metaserver}/apis/devices.kubeedge.io/v1beta1/namespaces/default/devices"
        with urllib.request.urlopen(url, timeout=5) as resp:
            items = json.loads(resp.read())["items"]
        return any(d["metadata"]["name"] == "cfg-1" for d in items)

    wait_for(check, 60, "Device cfg-1 in the edge's MetaServer")


def test_recipe_config_runs_kubeshore_edgecore(
    cloud: Stack, default_config: Path, kubeedge_recipes: Path
) -> None:
    config, metaserver = _recipe_config(cloud, default_config, kubeedge_recipes)
    edge_dir = config.parent
    cloud.start("edgecore", str(BIN / "edgecore"), "--config", str(config), "--metrics-port", "0")
    cloud.apply(DEVICE)

    # The certificate came with the token; the Device reached the edge (its MetaServer serves it) and
    # the DMI socket is where KubeEdge's dmiSockPath puts it.
    _device_at_edge(cloud, metaserver)
    assert (edge_dir / "certs" / "server.crt").is_file()
    assert (edge_dir / "dmi.sock").exists()


def test_node_that_ran_kubeedge_switches_with_its_file(
    cloud: Stack, default_config: Path, kubeedge_bin: Path, kubeedge_recipes: Path
) -> None:
    """KubeEdge's edgecore joins with the file and writes its certificate and database; kubeshore's
    edgecore then runs on the same file, certificate and directory (KubeEdge's database left alone)."""
    config, metaserver = _recipe_config(cloud, default_config, kubeedge_recipes)
    edge_dir = config.parent
    cloud.start("ke-edgecore", str(kubeedge_bin / "edgecore"), "--config", str(config))
    wait_for((edge_dir / "dmi.sock").exists, 60, "KubeEdge's edgecore running")
    wait_for(
        lambda: cloud.samples("cloudcore").get("cloudhub_connected_nodes") == 1.0, 60, "KubeEdge connected"
    )
    cloud.kill9("ke-edgecore")
    kubeedge_db = (edge_dir / "edgecore.db").read_bytes()
    cert = (edge_dir / "certs" / "server.crt").read_bytes()

    cloud.start("edgecore", str(BIN / "edgecore"), "--config", str(config), "--metrics-port", "0")
    cloud.apply(DEVICE)
    _device_at_edge(cloud, metaserver)
    assert (edge_dir / "certs" / "server.crt").read_bytes() == cert  # no new join
    assert (edge_dir / "edgecore.db").read_bytes() == kubeedge_db
