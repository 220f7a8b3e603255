"""Device and DeviceModel objects as the cloud sends them, for the device tests."""

from __future__ import annotations

from typing import Any


def model(name: str = "thermo", ns: str = "default", protocol: str = "virtual") -> dict[str, Any]:
    return {
        "apiVersion": "devices.kubeedge.io/v1beta1",
        "kind": "DeviceModel",
        "metadata": {"name": name, "namespace": ns, "resourceVersion": "10", "uid": f"uid-{name}"},
        "spec": {
            "protocol": protocol,
            "protocolConfigData": {"baud": 9600},
            "properties": [
                {
                    "name": "temp",
                    "type": "INT",
                    "accessMode": "ReadWrite",
                    "visitors": {"protocolName": protocol, "configData": {"register": "HR", "offset": 1}},
                },
                {"name": "mode", "type": "STRING", "accessMode": "ReadWrite"},
                {"name": "on", "type": "BOOLEAN", "accessMode": "ReadOnly"},
            ],
        },
    }


def device(
    name: str = "t1",
    ns: str = "default",
    rv: str = "20",
    desired: str = "30",
    node: str = "edge1",
    protocol: str = "virtual",
    model_name: str = "thermo",
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": ns, "resourceVersion": rv, "uid": f"uid-{name}"}
    if annotations:
        meta["annotations"] = annotations
    return {
        "apiVersion": "devices.kubeedge.io/v1beta1",
        "kind": "Device",
        "metadata": meta,
        "spec": {
            "deviceModelRef": {"name": model_name},
            "nodeName": node,
            "protocol": {"protocolName": protocol, "configData": {"port": 1502}},
            "properties": [
                {
                    "name": "temp",
                    "desired": {"value": desired},
                    "reportToCloud": True,
                    "collectCycle": 1000,
                    "visitors": {"protocolName": protocol, "configData": {"offset": 2}},
                },
                {"name": "mode", "desired": {"value": "auto"}, "reportToCloud": True},
                {"name": "on", "reportToCloud": True},
            ],
        },
    }


def numbered_model(
    properties: int,
    *,
    name: str = "m",
    protocol: str = "p",
    value_type: str = "STRING",
    rv: str | None = None,
) -> dict[str, Any]:
    """A DeviceModel with properties ``p0`` .. ``p<n-1>``, for tests and benchmarks at scale."""
    meta: dict[str, Any] = {"name": name, "namespace": "default"}
    if rv is not None:
        meta["resourceVersion"] = rv
    return {
        "apiVersion": "devices.kubeedge.io/v1beta1",
        "kind": "DeviceModel",
        "metadata": meta,
        "spec": {
            "protocol": protocol,
            "properties": [
                {"name": f"p{j}", "type": value_type, "accessMode": "ReadWrite"} for j in range(properties)
            ],
        },
    }


def numbered_device(
    i: int,
    properties: int,
    *,
    model: str = "m",
    node: str = "n",
    protocol: str = "p",
    rv: str | None = None,
    desired: str | None = None,
    report_to_cloud: bool = False,
) -> dict[str, Any]:
    """Device ``d<i>`` of ``numbered_model``; ``desired`` goes on ``p0``. No resourceVersion by
    default, so the objects can be given to ``kubectl apply``."""
    props: list[dict[str, Any]] = [{"name": f"p{j}"} for j in range(properties)]
    if report_to_cloud:
        for p in props:
            p["reportToCloud"] = True
    if desired is not None:
        props[0]["desired"] = {"value": desired}
    meta: dict[str, Any] = {"name": f"d{i}", "namespace": "default"}
    if rv is not None:
        meta["resourceVersion"] = rv
    return {
        "apiVersion": "devices.kubeedge.io/v1beta1",
        "kind": "Device",
        "metadata": meta,
        "spec": {
            "deviceModelRef": {"name": model},
            "nodeName": node,
            "protocol": {"protocolName": protocol},
            "properties": props,
        },
    }
