"""KubeEdge's edgecore.yaml through kubeshore's config loader: what cannot be carried over is an error
naming KubeEdge's key (the real file KubeEdge writes is read in tests/interop/test_config_*.py)."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from edgecore.config import EdgeCoreConfig
from kubeshore.config import ConfigError, load_config


def _write(tmp_path: Path, **modules: Any) -> Path:
    doc = {
        "apiVersion": "edgecore.config.kubeedge.io/v1alpha2",
        "kind": "EdgeCore",
        "database": {"dataSource": "/data/edgecore.db", "driverName": "sqlite3"},
        "modules": {
            "edged": {"enable": False, "hostnameOverride": "edge-a"},
            "edgeHub": {
                "httpServer": "https://10.0.0.1:10002",
                "websocket": {"enable": True, "server": "10.0.0.1:10000"},
                "tlsCaFile": "/c/ca.crt",
                "tlsCertFile": "/c/s.crt",
                "tlsPrivateKeyFile": "/c/s.key",
            },
            "deviceTwin": {"enable": True, "dmiSockPath": "/run/ke/"},
            **modules,
        },
    }
    path = tmp_path / "edgecore.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_minimal_file_maps(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        cfg = load_config(EdgeCoreConfig, _write(tmp_path))
    assert cfg.database.path == Path("/data/edgecore.kubeshore.db")
    assert (cfg.node_name, cfg.data_dir, cfg.dmi.socket) == (
        "edge-a",
        Path("/data"),
        Path("/run/ke/dmi.sock"),
    )
    assert cfg.edge_hub.https_server == "10.0.0.1:10002"
    assert not caplog.records  # nothing set that kubeshore ignores


def test_internal_broker_mode_and_disabled_twin_are_named(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = _write(tmp_path, eventBus={"mqttMode": 0}, deviceTwin={"enable": False, "dmiSockPath": "/r/"})
    with caplog.at_level(logging.WARNING):
        load_config(EdgeCoreConfig, path)
    (line,) = [r.getMessage() for r in caplog.records]
    assert line.endswith("ignored: modules.deviceTwin.enable, modules.eventBus.mqttMode")


def test_broker_credentials_tls_and_edged_map(tmp_path: Path) -> None:
    bus = {
        "mqttServerExternal": "ssl://broker:8883",
        "mqttUsername": "edge",
        "mqttPassword": "s3cret",
        "eventBusTLS": {"enable": True, "tlsMqttCAFile": "/t/ca.crt"},
    }
    kubelet_config = {"runtimeRequestTimeout": "1m30s", "cgroupDriver": "systemd", "cgroupRoot": "/edge/"}
    edged = {"enable": True, "hostnameOverride": "edge-a", "rootDirectory": "/pods"}
    edged["tailoredKubeletConfig"] = kubelet_config
    cfg = load_config(EdgeCoreConfig, _write(tmp_path, eventBus=bus, edged=edged))
    assert (cfg.event_bus.mqtt_url, cfg.event_bus.mqtt_username, cfg.event_bus.mqtt_password) == (
        "ssl://broker:8883",
        "edge",
        "s3cret",
    )
    assert cfg.event_bus.event_bus_tls.enable and cfg.event_bus.event_bus_tls.tls_mqtt_ca_file == Path(
        "/t/ca.crt"
    )
    kubelet = cfg.edged.tailored_kubelet_config
    assert (cfg.edged.enable, kubelet.runtime_request_timeout, kubelet.cgroup_driver) == (
        True,
        90.0,
        "systemd",
    )
    assert kubelet.cgroup_root == "/edge"


def test_edged_cgroup_root_defaults_as_kubeedge_and_refuses_a_relative_one(tmp_path: Path) -> None:
    # KubeEdge leaves cgroupRoot empty; its kubelet then puts pod cgroups under "/".
    edged = {"enable": True, "hostnameOverride": "edge-a", "tailoredKubeletConfig": {"cgroupRoot": ""}}
    cfg = load_config(EdgeCoreConfig, _write(tmp_path, edged=edged))
    assert cfg.edged.tailored_kubelet_config.cgroup_root == "/"
    edged["tailoredKubeletConfig"] = {"cgroupRoot": "../up"}
    with pytest.raises(ConfigError, match=r"modules\.edged\.tailoredKubeletConfig\.cgroupRoot.*absolute"):
        load_config(EdgeCoreConfig, _write(tmp_path, edged=edged))


@pytest.mark.parametrize(
    ("modules", "problem"),
    [
        (
            {"edged": {"hostnameOverride": "Not_A_Name"}},
            "modules.edged.hostnameOverride (kubeshore nodeName)",
        ),
        ({"edgeHub": {"websocket": {"enable": False}}}, "modules.edgeHub.websocket.enable: false"),
        ({"edged": {"enable": False}}, "modules.edged.hostnameOverride (kubeshore nodeName): Field required"),
        ({"edgeHub": {"heartbeat": "15s"}}, "modules.edgeHub.heartbeat: expected a number of seconds"),
        (
            {
                "edged": {
                    "hostnameOverride": "a",
                    "tailoredKubeletConfig": {"nodeStatusUpdateFrequency": "10"},
                }
            },
            "tailoredKubeletConfig.nodeStatusUpdateFrequency: '10' is not a duration",
        ),
    ],
)
def test_what_cannot_carry_over_names_kubeedge_key(tmp_path: Path, modules: Any, problem: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(problem)):
        load_config(EdgeCoreConfig, _write(tmp_path, **modules))


def test_other_database_and_unknown_api_version_are_errors(tmp_path: Path) -> None:
    path = _write(tmp_path)
    doc = yaml.safe_load(path.read_text())
    doc["database"]["driverName"] = "mysql"
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(ConfigError, match=re.escape("database.driverName: 'mysql' is not supported")):
        load_config(EdgeCoreConfig, path)
    doc["apiVersion"] = "edgecore.config.kubeedge.io/v1alpha1"
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(ConfigError, match=re.escape("v1alpha1' is not a format this program reads")):
        load_config(EdgeCoreConfig, path)
