"""edged's translation of a Pod into CRI configs, its volume writer and the CRI stubs, without a runtime."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from cri.v1 import api_pb2 as cri
from edgecore.edged import _podspec, _volumes
from kubeapi.quantity import QuantityError, millicores, parse_quantity, to_bytes
from kubeshore import cgroups


def test_cri_messages_are_kubernetes_runtime_v1() -> None:
    # Fresh from cri/v1/api.proto: tests/test_codegen.py.
    assert cri.DESCRIPTOR.package == "runtime.v1"


def test_quantities() -> None:
    assert millicores("250m") == 250 and millicores("1.5") == 1500 and millicores(2) == 2000
    assert to_bytes("64Mi") == 64 << 20 and to_bytes("1k") == 1000 and to_bytes("1e3") == 1000
    with pytest.raises(QuantityError):
        parse_quantity("12 apples")


POD = {
    "metadata": {"name": "p", "namespace": "ns", "uid": "u-1", "labels": {"app": "a"}},
    "spec": {
        "nodeName": "edge-1",
        "containers": [
            {
                "name": "c",
                "image": "localhost/busybox:latest",
                "command": ["sh", "-c", "echo $(GREETING)"],
                "env": [
                    {"name": "GREETING", "value": "hi $(NAME)"},
                    {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                    {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
                    {"name": "PASS", "valueFrom": {"secretKeyRef": {"name": "s", "key": "password"}}},
                ],
                "envFrom": [{"configMapRef": {"name": "cm"}, "prefix": "CM_"}],
                "resources": {"limits": {"cpu": "500m", "memory": "64Mi"}},
                "volumeMounts": [{"name": "conf", "mountPath": "/conf"}],
            }
        ],
        "volumes": [
            {"name": "conf", "configMap": {"name": "cm", "items": [{"key": "NAME", "path": "name.txt"}]}}
        ],
    },
}
REFS = _podspec.References(
    configmaps={"cm": {"data": {"NAME": "edge"}, "binaryData": {"BLOB": base64.b64encode(b"\0x").decode()}}},
    secrets={"s": {"data": {"password": base64.b64encode(b"s3cret").decode()}}},
)


def test_container_config_from_pod(tmp_path: Path) -> None:
    c = POD["spec"]["containers"][0]  # type: ignore[index]
    env = _podspec.environment(POD, c, REFS, "10.0.0.1", "10.1.0.5")
    assert env == {"CM_NAME": "edge", "GREETING": "hi $(NAME)", "POD": "p", "APP": "a", "PASS": "s3cret"}
    cfg = _podspec.container_config(POD, c, 2, {**env, "GREETING": "hi"}, tmp_path)
    assert cfg.metadata.attempt == 2 and list(cfg.command) == ["sh", "-c", "echo hi"]
    assert cfg.linux.resources.cpu_quota == 50_000 and cfg.linux.resources.memory_limit_in_bytes == 64 << 20
    assert cfg.mounts[0].container_path == "/conf" and cfg.mounts[0].readonly
    sandbox = _podspec.sandbox_config(POD, "edge-1", 0, tmp_path, "cgroupfs")
    assert sandbox.labels[_podspec.POD_UID] == "u-1" and sandbox.labels[_podspec.NODE_LABEL] == "edge-1"
    assert sandbox.linux.cgroup_parent == "/kubepods/podu-1"
    rooted = _podspec.sandbox_config(POD, "edge-1", 0, tmp_path, "cgroupfs", "/kubeshore-edge-1")
    assert rooted.linux.cgroup_parent == "/kubeshore-edge-1/kubepods/podu-1"


def test_pod_cgroup_names_as_the_kubelet() -> None:
    assert cgroups.pod_cgroup("/", "cgroupfs", "u-1") == ("/kubepods/podu-1", "kubepods/podu-1")
    assert cgroups.pod_cgroup("/ks-a/", "cgroupfs", "u-1") == (
        "/ks-a/kubepods/podu-1",
        "ks-a/kubepods/podu-1",
    )
    # systemd: the kubelet's slice names, each level's dashes escaped, nested by '-'.
    assert cgroups.pod_cgroup("/", "systemd", "u-1") == (
        "kubepods-podu_1.slice",
        "kubepods.slice/kubepods-podu_1.slice",
    )
    assert cgroups.pod_cgroup("/ks-a", "systemd", "u-1") == (
        "ks_a-kubepods-podu_1.slice",
        "ks_a.slice/ks_a-kubepods.slice/ks_a-kubepods-podu_1.slice",
    )


def test_missing_key_is_named() -> None:
    c = {"name": "c", "env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "nope"}}}]}
    with pytest.raises(_podspec.SpecError, match="nope"):
        _podspec.environment(POD, c, REFS, "", "")


def test_volume_update_is_atomic_and_complete(tmp_path: Path) -> None:
    vol = tmp_path / "v"
    assert _volumes.write_atomically(vol, {"a": (b"1", 0o644), "b": (b"2", 0o600)})
    assert (vol / "a").read_text() == "1" and oct((vol / "b").stat().st_mode & 0o777) == "0o600"
    assert not _volumes.write_atomically(vol, {"a": (b"1", 0o644), "b": (b"2", 0o600)})
    assert _volumes.write_atomically(vol, {"a": (b"3", 0o644)})
    assert (vol / "a").read_text() == "3" and not (vol / "b").exists()
    assert (
        len([p for p in vol.iterdir() if p.name.startswith("..") and p.is_dir() and not p.is_symlink()]) == 1
    )
    with pytest.raises(_podspec.SpecError):
        _volumes.write_atomically(vol, {"../escape": (b"x", 0o644)})


def test_a_status_patch_clears_reasons_that_no_longer_apply() -> None:
    # As the cloud applies it (a strategic merge patch of pods/status): once the containers are ready,
    # the stored Ready condition must lose "ContainersNotReady" and its message, and a pod-level
    # reason from a sandbox error now gone must go too.
    from edgecore.edged._status import status_patch
    from kubeapi.patch import apply_strategic_merge_patch, strategic_merge_lists

    stored = {
        "metadata": {"name": "p", "uid": "u1"},
        "status": {
            "phase": "Pending",
            "reason": "SandboxFailed",
            "message": "no network",
            "conditions": [
                {"type": "Ready", "status": "False", "reason": "ContainersNotReady", "message": "[c]"},
                {"type": "PodScheduled", "status": "True"},
            ],
        },
    }
    now = {"phase": "Running", "conditions": [{"type": "Ready", "status": "True", "lastProbeTime": None}]}
    lists = strategic_merge_lists("", "v1", "Pod")
    assert lists is not None
    out = apply_strategic_merge_patch(stored, status_patch("u1", now), lists)
    ready = next(c for c in out["status"]["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "True"
    assert "reason" not in ready and "message" not in ready, ready
    assert "reason" not in out["status"] and "message" not in out["status"], out["status"]
    assert any(c["type"] == "PodScheduled" for c in out["status"]["conditions"])
