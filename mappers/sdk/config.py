"""The mapper configuration file: KubeEdge's mapper ``config.yaml`` keys plus kubeshore's sections.

A KubeEdge mapper ConfigMap (``grpc_server.socket_path``, ``common.*``) loads unchanged; the extra
sections are optional. Loaded and validated by :func:`kubeshore.config.load_config`, so a misspelt
key is an error naming it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from kubeshore.config import ConfigModel

DEFAULT_DMI_DIR = "/etc/kubeedge"
DEFAULT_REST_PORT = 0  # any free port (KubeEdge's 7777 is often taken by another mapper on the node)


class GrpcServerConfig(ConfigModel):
    socket_path: str = Field("", description="Unix socket of this mapper's DeviceMapperService")


class CommonConfig(ConfigModel):
    name: str = ""
    version: str = "v1.23.0"
    api_version: str = "v1.0.0"
    protocol: str = Field("", description="protocol name; defaults to the driver's")
    address: str = "127.0.0.1"
    edgecore_sock: str = Field(f"{DEFAULT_DMI_DIR}/dmi.sock", description="edgecore's DMI socket or dir")
    http_port: str = Field("", description="REST port (KubeEdge's key); rest.port wins when set")


class RestConfig(ConfigModel):
    enabled: bool = True
    host: str = Field("127.0.0.1", description="listen address; set it to reach the API from elsewhere")
    port: int | None = Field(None, ge=0, le=65535)
    token_file: str = Field("", description="file holding a bearer token every request must carry")


class RuntimeConfig(ConfigModel):
    read_timeout_ms: int = Field(5000, gt=0, description="timeout of one driver read/write/state call")
    open_timeout_ms: int = Field(10000, gt=0)
    reconnect_min_ms: int = Field(500, gt=0)
    reconnect_max_ms: int = Field(10000, gt=0)
    report_batch_window_ms: int = Field(50, ge=0, description="how long twins are gathered per report")
    report_concurrency: int = Field(16, gt=0)
    edgecore_timeout_ms: int = Field(5000, gt=0, description="timeout of one DMI call to edgecore")
    register_retry_max_ms: int = Field(5000, gt=0)


class SqliteSinkConfig(ConfigModel):
    path: str
    retention_hours: float = Field(24.0, gt=0)


class MqttTLSConfig(ConfigModel):
    enable: bool = False
    ca_file: str = Field("", description="CA the broker's certificate must chain to (default: system CAs)")
    cert_file: str = Field("", description="client certificate, when the broker asks for one")
    key_file: str = ""


class MqttSinkConfig(ConfigModel):
    """Credentials and TLS for every ``pushMethod.mqtt`` broker (kept here, not in the Device, which
    anyone allowed to read Devices can see); edgecore's are ``mqttUsername``, ``mqttPassword``,
    ``eventBusTLS``."""

    username: str = ""
    password: str = Field("", repr=False)
    tls: MqttTLSConfig = MqttTLSConfig()


class SinksConfig(ConfigModel):
    buffer: int = Field(10000, gt=0, description="readings kept per sink while it is down")
    sqlite: SqliteSinkConfig | None = None
    mqtt: MqttSinkConfig = MqttSinkConfig()


class MapperConfig(ConfigModel):
    grpc_server: GrpcServerConfig = GrpcServerConfig()
    common: CommonConfig = CommonConfig()
    rest: RestConfig = RestConfig()
    runtime: RuntimeConfig = RuntimeConfig()
    sinks: SinksConfig = SinksConfig()
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    driver: dict[str, Any] = Field(default_factory=dict, description="options for every driver")

    def edgecore_socket(self) -> str:
        """KubeEdge ≥1.23 configures the directory; the socket is ``dmi.sock`` inside it."""
        path = self.common.edgecore_sock
        if path.startswith("unix://"):
            path = path[len("unix://") :]
        if not path.endswith(".sock") or Path(path).is_dir():
            path = str(Path(path) / "dmi.sock")
        return path

    def mapper_socket(self, mapper_name: str) -> str:
        """This mapper's socket: configured, else beside edgecore's (the directory a node's mappers share)."""
        return self.grpc_server.socket_path or str(
            Path(self.edgecore_socket()).parent / f"{mapper_name}.sock"
        )

    def rest_port(self) -> int:
        if self.rest.port is not None:
            return self.rest.port
        return int(self.common.http_port) if self.common.http_port.strip() else DEFAULT_REST_PORT
