"""Edge code never reaches the Kubernetes client, directly or through kubeclient."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BANNED = {"kubernetes", "kubeclient", "cloudcore", "nodegroup"}


def imported_roots(path: Path) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def test_edge_packages_do_not_import_the_kubernetes_client() -> None:
    offenders = [
        f"{path.relative_to(ROOT)}: {sorted(imported_roots(path) & BANNED)}"
        for package in ("edgecore", "mappers")
        for path in sorted((ROOT / package).rglob("*.py"))
        if imported_roots(path) & BANNED
    ]
    assert offenders == []


def test_cloud_packages_reach_the_client_only_through_kubeclient() -> None:
    direct = [
        str(path.relative_to(ROOT))
        for package in ("cloudcore", "nodegroup")
        for path in sorted((ROOT / package).rglob("*.py"))
        if "kubernetes" in imported_roots(path)
    ]
    assert direct == []


def test_edge_processes_speak_grpc_through_dmi_rpc_not_grpcio() -> None:
    """grpcio costs ~20 MB and three times dmi.rpc's CPU per call: edge code and dmi.rpc avoid it.
    (The generated ``api_pb2_grpc`` stays for mapper authors who want grpcio.)"""
    offenders = [
        str(path.relative_to(ROOT))
        for package in ("edgecore", "mappers", "dmi/rpc")
        for path in sorted((ROOT / package).rglob("*.py"))
        if "grpc" in imported_roots(path)
    ]
    assert offenders == []


def test_one_mqtt_client_paho_only_in_tests_and_benches() -> None:
    """kubeshore.mqtt is the one MQTT client (edgecore's eventbus and the mapper SDK's sink); paho-mqtt
    is a reference peer for tests and benchmarks, not a runtime dependency."""
    offenders = [
        str(path.relative_to(ROOT))
        for package in ("kubeshore", "edgecore", "mappers", "cloudcore", "dmi", "kubeapi", "crds")
        for path in sorted((ROOT / package).rglob("*.py"))
        if "paho" in imported_roots(path)
    ]
    assert offenders == []
