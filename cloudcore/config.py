"""cloudcore configuration: command-line flags and the same keys in a YAML file (``--config``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, model_validator
from pydantic.alias_generators import to_camel

from kubeshore.config import ConfigModel


class CloudCoreConfig(ConfigModel):
    """Keys are camelCase in YAML (``websocketPort``); snake_case is accepted too."""

    model_config = ConfigModel.model_config | {"alias_generator": to_camel}

    kubeconfig: Path | None = None
    standalone: bool = False
    data_dir: Path | None = None
    bind: str = Field(
        "0.0.0.0",
        description="listen address of cloudhub, certificates and (standalone) the API server; "
        "default 0.0.0.0 with a kubeconfig (KubeEdge's), 127.0.0.1 standalone",
    )
    advertise_address: list[str] = Field(default_factory=list)
    websocket_port: int = Field(10000, ge=0, le=65535)
    https_port: int = Field(10002, ge=0, le=65535)
    apiserver_port: int = Field(6443, ge=0, le=65535)
    metrics_port: int = Field(9091, ge=0, le=65535)
    webhook_port: int | None = Field(
        None,
        ge=0,
        le=65535,
        description="HTTPS port of the validating admission webhook (POST /validate/devices) a real "
        "cluster calls; unset: not served (the embedded API server checks Devices itself); 0 = any free port",
    )
    webhook_configuration: str = Field(
        "kubeshore-devices",
        min_length=1,
        description="the ValidatingWebhookConfiguration whose caBundle cloudcore keeps set to its CA",
    )
    metrics_bind: str = "127.0.0.1"
    node_grace_period: float = Field(40.0, gt=0, description="seconds without traffic before Ready=Unknown")
    keepalive_timeout: float = Field(
        30.0, gt=0, description="seconds without traffic before closing a session"
    )
    node_status_update_period: float = Field(60.0, gt=0, description="seconds between heartbeat-time writes")
    node_limit: int = Field(1000, ge=1)
    max_frame_bytes: int = Field(8 * 1024 * 1024, ge=1024)
    ack_timeout: float = Field(5.0, gt=0)
    ack_retries: int = Field(4, ge=0)
    max_inflight: int = Field(
        100, ge=1, description="acknowledged messages on the wire to one node at once (fewer for a slow node)"
    )
    sync_flush_interval: float = Field(0.2, gt=0, description="seconds between ObjectSync write batches")
    sync_writers: int = Field(16, ge=1, le=64)
    resync_period: float = Field(30.0, gt=0, description="seconds between full consistency checks")
    device_status_flush_interval: float = Field(
        1.0,
        gt=0,
        description="least seconds between DeviceStatus writes of one device (reports are coalesced); "
        "new values also wait for the Device's shortest reportCycle, state changes do not",
    )
    device_status_writers: int = Field(4, ge=1, le=64, description="DeviceStatus writes in flight at once")
    device_status_refresh_interval: float = Field(
        60.0,
        gt=0,
        description="seconds a report that changes no value, state or condition (only timestamps such as "
        "lastOnlineTime) may wait before it is written to the DeviceStatus",
    )
    token_validity_hours: float = Field(24.0, gt=0)
    edge_cert_validity_days: float = Field(365.0, gt=0)

    @model_validator(mode="before")
    @classmethod
    def _local_default_bind(cls, data: Any) -> Any:
        # Standalone is a single machine's control plane (often `kubeshore up`): nothing on it should
        # be reachable from the network unless asked for.
        if isinstance(data, dict) and data.get("standalone") and "bind" not in data:
            return {**data, "bind": "127.0.0.1"}
        return data

    @model_validator(mode="after")
    def _check_mode(self) -> CloudCoreConfig:
        if self.standalone and self.kubeconfig is not None:
            raise ValueError("give either standalone: true (with dataDir) or kubeconfig, not both")
        if self.standalone and self.data_dir is None:
            raise ValueError("standalone mode needs dataDir (--data-dir)")
        if not self.standalone and self.kubeconfig is None:
            raise ValueError(
                "kubeconfig is required unless standalone is true (--kubeconfig or --standalone)"
            )
        return self
