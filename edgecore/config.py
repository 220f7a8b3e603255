"""edgecore configuration (``edgecore.yaml``, written by ``kubeshore join``).

Every path and port is configurable so several nodes can run side by side without root. KubeEdge's
own ``edgecore.yaml`` (``edgecore.config.kubeedge.io/v1alpha2``) is read too (``_kubeedge_config``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic.alias_generators import to_camel

from edgecore import _kubeedge_config
from kubeshore import cgroups
from kubeshore.config import ConfigModel


class _Camel(ConfigModel):
    model_config = ConfigModel.model_config | {"alias_generator": to_camel}


class EdgeHubConfig(_Camel):
    server: str = Field(description="cloudcore websocket address host:port")
    https_server: str = Field(description="cloudcore certificate server host:port")
    heartbeat: float = Field(15.0, gt=0, description="seconds between websocket pings")
    json_keepalive: bool = Field(
        True,
        description="also send KubeEdge's keepalive messages (KubeEdge's cloudhub closes a session "
        "without them after its keepaliveInterval)",
    )
    handshake_timeout: float = Field(30.0, gt=0)
    reconnect_initial: float = Field(1.0, gt=0, description="first reconnect delay (seconds)")
    reconnect_max: float = Field(30.0, gt=0, description="largest reconnect delay (seconds)")
    rotate_certificates: bool = True
    token: str | None = Field(
        None, repr=False, description="join token: the node certificate is requested with it when missing"
    )
    max_frame_bytes: int = Field(8 * 1024 * 1024, ge=1024)


class CertsConfig(_Camel):
    ca_file: Path
    cert_file: Path
    key_file: Path


class DatabaseConfig(_Camel):
    path: Path


class OutboxConfig(_Camel):
    max_messages: int = Field(10000, ge=1, description="cloud-bound messages kept while offline")


class MetaServerConfig(_Camel):
    enable: bool = True
    address: str = "127.0.0.1"
    port: int = Field(10550, ge=0, le=65535)
    token_file: Path | None = Field(
        None,
        description="bearer token a caller must present to read Secrets (created 0600 at first start; "
        "default <dataDir>/metaserver.token)",
    )


class MetricsConfig(_Camel):
    """``/metrics``, ``/healthz``, ``/livez`` and ``/readyz`` (plain HTTP; keep it on loopback or a
    trusted network)."""

    enable: bool = True
    address: str = "127.0.0.1"
    port: int = Field(10352, ge=0, le=65535, description="0 = any free port (written to stateFile)")


class EventBusTLS(_Camel):
    """KubeEdge's ``modules.eventBus.eventBusTLS``; files default to the node's CA, certificate and key."""

    enable: bool = False
    tls_mqtt_ca_file: Path | None = Field(None, alias="tlsMqttCAFile")
    tls_mqtt_cert_file: Path | None = None
    tls_mqtt_private_key_file: Path | None = None


class EventBusConfig(_Camel):
    mqtt_url: str = "tcp://127.0.0.1:1883"
    mqtt_username: str = Field("", description="KubeEdge's mqttUsername; empty: no credentials")
    mqtt_password: str = Field("", repr=False, description="KubeEdge's mqttPassword")
    event_bus_tls: EventBusTLS = Field(default_factory=EventBusTLS, alias="eventBusTLS")


class DmiConfig(_Camel):
    socket: Path


class TailoredKubeletConfig(_Camel):
    """The part of KubeEdge's ``edged.tailoredKubeletConfig`` that edged acts on."""

    container_runtime_endpoint: str = Field(
        "unix:///run/containerd/containerd.sock", description="CRI socket of the node's container runtime"
    )
    cgroup_driver: Literal["cgroupfs", "systemd"] = "cgroupfs"
    cgroup_root: str = Field(
        cgroups.DEFAULT_ROOT,
        description="cgroup under which Pod cgroups live (<cgroupRoot>/kubepods/pod<uid>); empty: /",
    )
    runtime_request_timeout: float = Field(120.0, gt=0, description="seconds a CRI call may take")

    @field_validator("cgroup_root")
    @classmethod
    def _absolute(cls, v: str) -> str:
        return cgroups.normalize_root(v)


class EdgedConfig(_Camel):
    """edged: run the Pods bound to this node through CRI (KubeEdge's names)."""

    enable: bool = Field(False, description="run Pods (needs a CRI runtime such as containerd)")
    root_directory: Path | None = Field(None, description="Pod volumes and logs; default <dataDir>/edged")
    tailored_kubelet_config: TailoredKubeletConfig = Field(default_factory=TailoredKubeletConfig)
    restart_backoff_initial: float = Field(
        10.0, gt=0, description="seconds before a crashing container's second restart (doubles each time)"
    )
    restart_backoff_max: float = Field(300.0, gt=0, description="longest wait between container restarts")


class EdgeCoreConfig(_Camel):
    foreign_formats = {_kubeedge_config.API_VERSION: _kubeedge_config.translate}

    node_name: str = Field(min_length=1, max_length=253, pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    data_dir: Path
    edge_hub: EdgeHubConfig
    certs: CertsConfig
    database: DatabaseConfig
    outbox: OutboxConfig = Field(default_factory=OutboxConfig)
    meta_server: MetaServerConfig = Field(default_factory=MetaServerConfig)
    event_bus: EventBusConfig = Field(default_factory=EventBusConfig)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    dmi: DmiConfig
    edged: EdgedConfig = Field(default_factory=EdgedConfig)
    node_status_check_period: float = Field(
        60.0, gt=0, description="seconds between checks whether the node's status changed (sent only if so)"
    )
    node_status_report_period: float = Field(
        300.0,
        gt=0,
        description="seconds between node status reports when nothing changed (the Lease says alive)",
    )
    lease_renew_period: float = Field(
        10.0, gt=0, le=30, description="seconds between renewals of the node's Lease (40 s duration)"
    )
    state_file: Path | None = Field(None, description="where edgecore writes its actual ports (JSON)")
