"""edgecore configuration (``edgecore.yaml``, written by ``kubeshore join``).

Every path and port is configurable so several nodes can run side by side without root.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic.alias_generators import to_camel

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


class MetricsConfig(_Camel):
    """``/metrics``, ``/healthz``, ``/livez`` and ``/readyz`` (plain HTTP; keep it on loopback or a
    trusted network)."""

    enable: bool = True
    address: str = "127.0.0.1"
    port: int = Field(10352, ge=0, le=65535, description="0 = any free port (written to stateFile)")


class EventBusConfig(_Camel):
    mqtt_url: str = "tcp://127.0.0.1:1883"


class DmiConfig(_Camel):
    socket: Path


class EdgeCoreConfig(_Camel):
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
    node_status_check_period: float = Field(
        60.0, gt=0, description="seconds between checks whether the node's status changed (sent only if so)"
    )
    state_file: Path | None = Field(None, description="where edgecore writes its actual ports (JSON)")
