"""The real kubectl against a real `kubeshore apiserver` process."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from .conftest import FIXTURE_CRD, APIServerProcess

WIDGET = """
apiVersion: example.kubeshore.io/v1
kind: Widget
metadata:
  name: {name}
  namespace: {namespace}
  labels: {{tier: {tier}}}
spec:
  color: {color}
  size: {size}
"""


def _widget(
    name: str, namespace: str = "default", tier: str = "front", color: str = "red", size: int = 3
) -> str:
    return WIDGET.format(name=name, namespace=namespace, tier=tier, color=color, size=size)


def _install_crd(api: APIServerProcess) -> None:
    api.kubectl("apply", "-f", str(FIXTURE_CRD))
    api.kubectl("wait", "--for=condition=Established", "crd/widgets.example.kubeshore.io", "--timeout=10s")


def test_bootstrap_objects_and_api_resources(apiserver: APIServerProcess) -> None:
    names = apiserver.kubectl("get", "ns", "-o", "jsonpath={.items[*].metadata.name}").stdout.split()
    assert {"default", "kube-system", "kube-public"} <= set(names)
    svc = apiserver.kubectl_json("get", "svc", "kubernetes", "-n", "default")
    assert svc["spec"]["ports"][0]["name"] == "https"
    eps = apiserver.kubectl_json("get", "endpointslice", "kubernetes", "-n", "default")
    assert eps["ports"][0]["port"] == int(apiserver.url.rsplit(":", 1)[1])
    resources = apiserver.kubectl("api-resources").stdout
    for name in (
        "pods",
        "nodes",
        "configmaps",
        "secrets",
        "services",
        "endpoints",
        "events",
        "endpointslices",
        "deployments",
        "leases",
        "customresourcedefinitions",
        "namespaces",
    ):
        assert f"\n{name} " in resources or resources.startswith(name), name
    assert "v1.32" in apiserver.kubectl("version", "-o", "json").stdout


def test_crd_apply_get_columns_and_outputs(apiserver: APIServerProcess) -> None:
    start = time.monotonic()
    _install_crd(apiserver)
    assert time.monotonic() - start < 5
    assert "widgets" in apiserver.kubectl("api-resources", "--api-group=example.kubeshore.io").stdout
    out = apiserver.kubectl("apply", "-f", "-", input=_widget("w1"))
    assert "created" in out.stdout
    assert "unchanged" in apiserver.kubectl("apply", "-f", "-", input=_widget("w1")).stdout
    assert "configured" in apiserver.kubectl("apply", "-f", "-", input=_widget("w1", size=4)).stdout
    apiserver.kubectl("apply", "-f", "-", input=_widget("w2", tier="back", color="green", size=7))
    table = apiserver.kubectl("get", "widgets").stdout.splitlines()
    assert table[0].split() == ["NAME", "COLOR", "SIZE", "AGE"]
    assert table[1].split()[:3] == ["w1", "red", "4"]
    assert table[2].split()[:3] == ["w2", "green", "7"]
    assert "kind: Widget" in apiserver.kubectl("get", "wd", "w1", "-o", "yaml").stdout
    obj = apiserver.kubectl_json("get", "widget", "w1")
    assert obj["spec"] == {"color": "red", "size": 4}
    assert obj["metadata"]["generation"] == 2
    assert apiserver.kubectl("get", "wd", "-o", "jsonpath={.items[*].metadata.name}").stdout == "w1 w2"
    assert apiserver.kubectl("get", "wd", "-l", "tier=back", "-o", "name").stdout.split() == [
        "widget.example.kubeshore.io/w2"
    ]
    assert apiserver.kubectl("get", "wd", "-l", "tier in (front,middle)", "-o", "name").stdout.split() == [
        "widget.example.kubeshore.io/w1"
    ]
    assert apiserver.kubectl("get", "wd", "-l", "tier!=front", "-o", "name").stdout.split() == [
        "widget.example.kubeshore.io/w2"
    ]
    out = apiserver.kubectl("get", "wd", "--field-selector", "metadata.name=w2", "-o", "name").stdout
    assert out.split() == ["widget.example.kubeshore.io/w2"]
    assert "No resources found" in apiserver.kubectl("get", "wd", "-n", "kube-system").stderr
    crd = apiserver.kubectl_json("get", "crd", "widgets.example.kubeshore.io")
    conditions = {c["type"]: c["status"] for c in crd["status"]["conditions"]}
    assert conditions == {"NamesAccepted": "True", "Established": "True"}


def test_patch_label_annotate_edit(apiserver: APIServerProcess, tmp_path: Path) -> None:
    _install_crd(apiserver)
    apiserver.kubectl("apply", "-f", "-", input=_widget("p1"))
    apiserver.kubectl("patch", "wd", "p1", "--type", "merge", "-p", '{"spec":{"color":"blue"}}')
    apiserver.kubectl(
        "patch", "wd", "p1", "--type", "json", "-p", '[{"op":"replace","path":"/spec/size","value":9}]'
    )
    apiserver.kubectl("label", "wd", "p1", "env=prod")
    apiserver.kubectl("annotate", "wd", "p1", "note=hello")
    editor = tmp_path / "editor.sh"
    editor.write_text("#!/bin/sh\nsed -i 's/color: blue/color: green/' \"$1\"\n")
    editor.chmod(0o755)
    apiserver.kubectl("edit", "wd", "p1", env={"EDITOR": str(editor), "KUBE_EDITOR": str(editor)})
    obj = apiserver.kubectl_json("get", "wd", "p1")
    assert obj["spec"] == {"color": "green", "size": 9}
    assert obj["metadata"]["labels"]["env"] == "prod"
    assert obj["metadata"]["annotations"]["note"] == "hello"
    # A configmap goes through strategic merge patch (built-in kind).
    apiserver.kubectl(
        "apply", "-f", "-", input="apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm1}\ndata: {a: '1'}\n"
    )
    apiserver.kubectl("patch", "cm", "cm1", "-p", '{"data":{"b":"2"}}')
    assert apiserver.kubectl_json("get", "cm", "cm1")["data"] == {"a": "1", "b": "2"}
    table = apiserver.kubectl("get", "cm", "cm1").stdout.splitlines()
    assert table[0].split() == ["NAME", "DATA", "AGE"] and table[1].split()[:2] == ["cm1", "2"]


def test_get_watch_sees_added_modified_deleted(apiserver: APIServerProcess) -> None:
    _install_crd(apiserver)
    apiserver.kubectl(
        "apply", "-f", "-", input="apiVersion: v1\nkind: Namespace\nmetadata: {name: watched}\n"
    )
    env_proc = subprocess.Popen(
        ["kubectl", "get", "wd", "-n", "watched", "-w", "--output-watch-events"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=apiserver.env(),
    )
    try:
        time.sleep(1.0)
        apiserver.kubectl("apply", "-f", "-", input=_widget("x1", namespace="watched"))
        apiserver.kubectl(
            "patch", "wd", "x1", "-n", "watched", "--type", "merge", "-p", '{"spec":{"size":5}}'
        )
        apiserver.kubectl("delete", "wd", "x1", "-n", "watched")
        time.sleep(1.0)
    finally:
        env_proc.terminate()
        out, err = env_proc.communicate(timeout=10)
    events = [line.split()[0] for line in out.splitlines()[1:] if line.strip()]
    assert events == ["ADDED", "MODIFIED", "DELETED"], (out, err)


def test_delete_waits_for_finalizer(apiserver: APIServerProcess) -> None:
    _install_crd(apiserver)
    manifest = _widget("f1").replace("  labels:", "  finalizers: [example.kubeshore.io/hold]\n  labels:")
    apiserver.kubectl("apply", "-f", "-", input=manifest)
    deleting = subprocess.Popen(
        ["kubectl", "delete", "wd", "f1", "--timeout=30s"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=apiserver.env(),
    )
    try:
        time.sleep(1.5)
        assert deleting.poll() is None, "kubectl delete returned before the finalizer was removed"
        obj = apiserver.kubectl_json("get", "wd", "f1")
        assert obj["metadata"]["deletionTimestamp"]
        apiserver.kubectl(
            "patch", "wd", "f1", "--type", "json", "-p", '[{"op":"remove","path":"/metadata/finalizers"}]'
        )
        out, err = deleting.communicate(timeout=20)
    finally:
        if deleting.poll() is None:
            deleting.kill()
            deleting.communicate()
    assert deleting.returncode == 0, err
    assert "deleted" in out
    assert apiserver.kubectl("get", "wd", "f1", check=False).returncode != 0


REPO = Path(__file__).resolve().parents[2]


def test_apply_kubeedge_crds_and_examples(apiserver: APIServerProcess) -> None:
    apiserver.kubectl("apply", "-f", str(REPO / "crds"))
    apiserver.kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=10s")
    apiserver.kubectl("apply", "-f", str(REPO / "examples"))
    assert "unchanged" in apiserver.kubectl("apply", "-f", str(REPO / "examples")).stdout
    devices = apiserver.kubectl("get", "devices", "-o", "name").stdout.split()
    assert "device.devices.kubeedge.io/thermometer-1" in devices
    assert apiserver.kubectl("get", "devices", "-l", "site=a", "-o", "name").stdout.split() == [
        "device.devices.kubeedge.io/thermometer-1"
    ]
    assert apiserver.kubectl("get", "ng", "-o", "name").stdout.split() == [
        "nodegroup.apps.kubeedge.io/site-a",
        "nodegroup.apps.kubeedge.io/site-b",
    ]
    assert "hello-edge" in apiserver.kubectl("get", "eapp").stdout
    node = apiserver.kubectl_json("get", "device", "thermometer-1")["spec"]["nodeName"]
    assert node == "edge-1"
    # The older served version shares the stored objects (no conversion, as in KubeEdge's CRDs).
    old = apiserver.kubectl(
        "get", "devices.v1alpha2.devices.kubeedge.io", "thermometer-1", "-o", "json", check=False
    )
    if old.returncode == 0:
        assert '"apiVersion": "devices.kubeedge.io/v1alpha2"' in old.stdout
    resources = apiserver.kubectl("api-resources", "--api-group=devices.kubeedge.io").stdout
    assert "devicestatuses" in resources


def test_invalid_device_is_refused_with_the_field_named(apiserver: APIServerProcess) -> None:
    apiserver.kubectl("apply", "-f", str(REPO / "crds"))
    apiserver.kubectl(
        "wait", "--for=condition=Established", "crd/devices.devices.kubeedge.io", "--timeout=10s"
    )
    bad = """
apiVersion: devices.kubeedge.io/v1beta1
kind: Device
metadata: {name: broken}
spec:
  deviceModelRef: {name: m}
  nodeName: edge-1
  properties:
    - name: temperature
      collectCycle: "often"
"""
    out = apiserver.kubectl("apply", "-f", "-", input=bad, check=False)
    assert out.returncode != 0
    assert 'The Device "broken" is invalid' in out.stderr
    assert "spec.properties[0].collectCycle" in out.stderr
    assert apiserver.kubectl("get", "device", "broken", check=False).returncode != 0
    # kubectl validates strictly by default: an unknown field is named and refused.
    unknown = bad.replace('collectCycle: "often"', "collectCycle: 1000\n      colour: red")
    out = apiserver.kubectl("apply", "-f", "-", input=unknown, check=False)
    assert out.returncode != 0 and 'unknown field "spec.properties[0].colour"' in out.stderr
    # Without strict validation the unknown field is pruned, as kube-apiserver does.
    apiserver.kubectl("apply", "--validate=false", "-f", "-", input=unknown)
    props = apiserver.kubectl_json("get", "device", "broken")["spec"]["properties"]
    assert props == [{"name": "temperature", "collectCycle": 1000}] or "colour" not in props[0]


DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: default}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
        - name: web
          image: nginx:1.27
          env: [{name: A, value: "1"}]
        - name: sidecar
          image: busybox
"""


def test_builtin_strategic_merge_apply_and_scale(apiserver: APIServerProcess) -> None:
    apiserver.kubectl("apply", "-f", "-", input=DEPLOYMENT)
    # Another writer adds a container-level field kubectl apply does not own ...
    apiserver.kubectl(
        "patch",
        "deployment",
        "web",
        "-p",
        '{"spec":{"template":{"spec":{"containers":[{"name":"sidecar","args":["sleep","9"]}]}}}}',
    )
    # ... and a changed apply merges containers by name instead of replacing the list.
    apiserver.kubectl("apply", "-f", "-", input=DEPLOYMENT.replace("nginx:1.27", "nginx:1.28"))
    obj = apiserver.kubectl_json("get", "deploy", "web")
    containers = {c["name"]: c for c in obj["spec"]["template"]["spec"]["containers"]}
    assert containers["web"]["image"] == "nginx:1.28"
    assert containers["sidecar"]["args"] == ["sleep", "9"]
    assert obj["metadata"]["generation"] == 3
    apiserver.kubectl("scale", "deployment", "web", "--replicas=5")
    assert apiserver.kubectl_json("get", "deploy", "web")["spec"]["replicas"] == 5
    header = apiserver.kubectl("get", "deploy").stdout.splitlines()[0].split()
    assert header == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]


def test_explain_uses_the_crd_schema(apiserver: APIServerProcess) -> None:
    apiserver.kubectl("apply", "-f", str(REPO / "crds"))
    apiserver.kubectl(
        "wait", "--for=condition=Established", "crd/devices.devices.kubeedge.io", "--timeout=10s"
    )
    out = apiserver.kubectl("explain", "devices.spec.nodeName").stdout
    assert "FIELD: nodeName <string>" in out
    out = apiserver.kubectl("explain", "pods.spec").stdout
    assert "containers" in out


def test_imperative_create_of_builtin_kinds(apiserver: APIServerProcess) -> None:
    # kubectl sends these as protobuf.
    apiserver.kubectl("create", "namespace", "made-by-create")
    apiserver.kubectl("create", "configmap", "cm-create", "-n", "made-by-create", "--from-literal=a=1")
    apiserver.kubectl("create", "secret", "generic", "s-create", "-n", "made-by-create", "--from-literal=k=v")
    assert apiserver.kubectl_json("get", "cm", "cm-create", "-n", "made-by-create")["data"] == {"a": "1"}
    secret = apiserver.kubectl_json("get", "secret", "s-create", "-n", "made-by-create")
    assert secret["data"] == {"k": "dg=="} and secret["type"] == "Opaque"
    apiserver.kubectl(
        "create", "deployment", "d-create", "-n", "made-by-create", "--image=nginx", "--replicas=0"
    )
    deployment = apiserver.kubectl_json("get", "deployment", "d-create", "-n", "made-by-create")
    assert deployment["spec"]["replicas"] == 0
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx"


def test_server_side_apply(apiserver: APIServerProcess) -> None:
    _install_crd(apiserver)
    out = apiserver.kubectl("apply", "--server-side", "-f", "-", input=_widget("ssa"))
    assert "serverside-applied" in out.stdout
    apiserver.kubectl("apply", "--server-side", "-f", "-", input=_widget("ssa", color="blue", size=6))
    obj = apiserver.kubectl_json("get", "wd", "ssa")
    assert obj["spec"] == {"color": "blue", "size": 6}
    bad = _widget("ssa", color="purple")
    out = apiserver.kubectl("apply", "--server-side", "-f", "-", input=bad, check=False)
    assert out.returncode != 0 and "spec.color" in out.stderr


def test_secret_string_data_is_merged_into_data(apiserver: APIServerProcess) -> None:
    secret = (
        "apiVersion: v1\nkind: Secret\nmetadata: {name: creds, namespace: default}\n"
        "data: {user: b2xk, keep: a2VlcA==}\nstringData: {user: admin, password: hunter2}\n"
    )
    apiserver.kubectl("apply", "-f", "-", input=secret)
    got = apiserver.kubectl_json("get", "secret", "creds")
    assert got["data"] == {"user": "YWRtaW4=", "password": "aHVudGVyMg==", "keep": "a2VlcA=="}
    assert "stringData" not in got
    assert apiserver.kubectl("get", "secret", "creds").stdout.split("\n")[1].split()[2] == "3"  # DATA
    # An update (kubectl create --dry-run | replace) merges too; a non-string value is refused, named.
    apiserver.kubectl("patch", "secret", "creds", "-p", '{"stringData": {"password": "s3cret"}}')
    assert apiserver.kubectl_json("get", "secret", "creds")["data"]["password"] == "czNjcmV0"
    bad = apiserver.kubectl("patch", "secret", "creds", "-p", '{"stringData": {"n": 1}}', check=False)
    assert bad.returncode != 0 and "stringData" in bad.stderr
