"""deploy/: manifests well formed and RBAC without wildcards. That a real cluster accepts them, and that
the RBAC allows every call the components make and no more, is shown by the realk8s lane
(tests/realk8s/test_scenarios.py: test_rbac_grants_what_the_processes_call)."""

from __future__ import annotations

import getpass
import subprocess
from pathlib import Path
from typing import Any

import yaml

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"


def _docs() -> list[dict[str, Any]]:
    out = []
    for path in sorted(DEPLOY.glob("*.yaml")):
        out += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return out


def test_manifests_are_well_formed() -> None:
    docs = _docs()
    kinds = {d["kind"] for d in docs}
    assert {
        "Namespace",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Deployment",
        "Service",
    } <= kinds
    for d in docs:
        assert d["apiVersion"] and d["metadata"]["name"], d
        if d["kind"] not in (
            "Namespace",
            "ClusterRole",
            "ClusterRoleBinding",
            "ValidatingWebhookConfiguration",
        ):
            assert d["metadata"].get("namespace") in ("kubeedge", "default", "kube-node-lease"), d["metadata"]
    service = next(d for d in docs if d["kind"] == "Service" and d["metadata"]["name"] == "cloudcore")
    assert sorted(p["port"] for p in service["spec"]["ports"]) == [10000, 10002]
    # Every binding names a role and a service account that the manifests define.
    roles = {(d["kind"], d["metadata"]["name"]) for d in docs if d["kind"] in ("Role", "ClusterRole")}
    accounts = {d["metadata"]["name"] for d in docs if d["kind"] == "ServiceAccount"}
    for b in (d for d in docs if d["kind"] in ("RoleBinding", "ClusterRoleBinding")):
        assert (b["roleRef"]["kind"], b["roleRef"]["name"]) in roles
        assert all(s["name"] in accounts for s in b["subjects"])
    for dep in (d for d in docs if d["kind"] == "Deployment" and d["metadata"]["namespace"] == "kubeedge"):
        assert dep["spec"]["template"]["spec"]["serviceAccountName"] in accounts


def test_rbac_is_scoped() -> None:
    """No wildcards, and cluster-wide secret access is read-only (writes only in the kubeedge namespace)."""
    for d in _docs():
        if d["kind"] not in ("Role", "ClusterRole"):
            continue
        for rule in d["rules"]:
            assert "*" not in rule["verbs"] and "*" not in rule["resources"] and "*" not in rule["apiGroups"]
            if d["kind"] == "ClusterRole" and "secrets" in rule["resources"]:
                assert set(rule["verbs"]) <= {"get", "list", "watch"}


def test_systemd_units_name_the_documented_commands() -> None:
    unit = (DEPLOY / "systemd" / "edgecore.service").read_text()
    assert "ExecStart=/usr/local/bin/edgecore --config " in unit
    mapper = (DEPLOY / "systemd" / "kubeshore-mapper@.service").read_text()
    assert "kubeshore mapper run %i --edgecore-sock /etc/kubeedge/dmi.sock" in mapper


def test_mosquitto_conf_is_accepted_by_mosquitto(tmp_path: Path) -> None:
    """deploy/mosquitto/kubeshore.conf starts a real mosquitto (on a free port instead of 1883)."""
    from _peers import free_port, wait_port

    from up.processes import Processes

    text = (DEPLOY / "mosquitto" / "kubeshore.conf").read_text()
    assert "set_tcp_nodelay true" in text
    port = free_port()
    conf = tmp_path / "kubeshore.conf"
    passwd = tmp_path / "kubeshore.passwd"
    passwd.write_text("edgecore:pw\n")
    subprocess.run(["mosquitto_passwd", "-U", str(passwd)], check=True)
    text = text.replace("listener 1883 ", f"listener {port} ")
    text = text.replace("/etc/mosquitto/kubeshore.passwd", str(passwd))
    text = text.replace("/etc/mosquitto/kubeshore.acl", str(DEPLOY / "mosquitto" / "kubeshore.acl"))
    # As root mosquitto would switch to user mosquitto, which cannot read the test's private files.
    conf.write_text(f"user {getpass.getuser()}\n" + text)
    procs = Processes(tmp_path)
    procs.start("mosquitto", "mosquitto", "-c", str(conf))
    try:
        wait_port(port, timeout=10)
        assert procs.alive("mosquitto"), procs.log("mosquitto")
    finally:
        procs.stop_all()
    assert "Error" not in procs.log("mosquitto"), procs.log("mosquitto")
