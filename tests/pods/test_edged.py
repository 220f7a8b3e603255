"""edged end to end with real processes: standalone cloudcore, edgecore with edged on a real
containerd, Pods applied with kubectl. What a user sees (``kubectl get pod``) and what the runtime has
(containers, their PIDs) are both checked."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from _peers import mosquitto
from _stack import Stack, wait_for

from kubeshore import cgroups
from pods._containerd import BUSYBOX, Containerd

NODE = "edge-1"


class PodStack(Stack):
    def pod(self, name: str) -> dict[str, Any]:
        out: dict[str, Any] = json.loads(self.kubectl("get", "pod", name, "-o", "json"))
        return out

    def container_status(self, name: str, container: str = "main") -> dict[str, Any]:
        for s in (self.pod(name).get("status") or {}).get("containerStatuses") or []:
            if s.get("name") == container:
                return dict(s)
        return {}

    def running(self, name: str) -> dict[str, Any] | None:
        p = self.pod(name)
        st = p.get("status") or {}
        return p if st.get("phase") == "Running" and st.get("podIP") else None

    def ready(self, name: str) -> bool:
        conds = (self.pod(name).get("status") or {}).get("conditions") or []
        return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conds)


def pod_manifest(name: str, command: str, **extra: Any) -> str:
    container: dict[str, Any] = {
        "name": "main",
        "image": BUSYBOX,
        "imagePullPolicy": "Never",
        "command": ["sh", "-c", command],
    }
    container.update(extra.pop("container", {}))
    pod: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"nodeName": NODE, "containers": [container], "terminationGracePeriodSeconds": 2, **extra},
    }
    return yaml.safe_dump(pod)


def http_get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=3) as r:
        body: bytes = r.read()
        return body.decode()


@pytest.fixture(scope="module")
def stack(containerd: Containerd, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PodStack]:
    tmp = Path(tmp_path_factory.mktemp("pods"))
    with mosquitto() as broker:
        s = PodStack(tmp, broker)
        try:
            s.start_cloudcore()
            s.join_edge(extra=containerd.join_flags)
            cfg_path = s.edge_dir / "edgecore.yaml"
            cfg = yaml.safe_load(cfg_path.read_text())
            # Short back-off so restarts are seen in seconds (the default is the kubelet's 10 s).
            cfg["edged"]["restartBackoffInitial"] = 1.0
            cfg["edged"]["restartBackoffMax"] = 4.0
            cfg_path.write_text(yaml.safe_dump(cfg))
            s.start_edgecore()
            ready = "jsonpath={.status.conditions[?(@.type=='Ready')].status}"
            wait_for(lambda: "True" in s.kubectl("get", "node", NODE, "-o", ready), 60, "node Ready")
            yield s
        finally:
            s.stop_all()


def test_node_reports_its_container_runtime(stack: PodStack) -> None:
    """Ready only once edged reached its runtime (as the kubelet), and the runtime in nodeInfo."""
    info = wait_for(
        lambda: stack.get("node", NODE)["status"]["nodeInfo"].get("containerRuntimeVersion"), 60, "runtime"
    )
    assert info.startswith("containerd://")


def test_pod_runs_reports_running_with_ip_and_answers(stack: PodStack) -> None:
    stack.apply(pod_manifest("web", "echo hello > /www/index.html; exec httpd -f -p 8080 -h /www"))
    pod = wait_for(lambda: stack.running("web"), 60, "web Running with an IP")
    st = pod["status"]
    assert st["hostIP"]
    cs = st["containerStatuses"][0]
    assert cs["state"].get("running") and cs["containerID"].startswith("containerd://")
    assert cs["image"] == BUSYBOX and cs["restartCount"] == 0
    assert wait_for(lambda: stack.ready("web"), 30, "web Ready")
    assert http_get(f"http://{st['podIP']}:8080/") == "hello\n"
    row = stack.kubectl("get", "pod", "web", "-o", "wide", "--no-headers")
    assert "Running" in row and st["podIP"] in row and NODE in row


def test_crashing_container_restarts_with_backoff(stack: PodStack) -> None:
    stack.apply(pod_manifest("crash", "echo boom; exit 3"))
    cs = wait_for(lambda: (c := stack.container_status("crash")).get("restartCount", 0) >= 2 and c, 90,
                  "restartCount >= 2")  # fmt: skip
    assert cs["lastState"]["terminated"]["exitCode"] == 3
    waiting = wait_for(
        lambda: (stack.container_status("crash").get("state") or {}).get("waiting"), 30, "CrashLoopBackOff"
    )
    assert waiting["reason"] == "CrashLoopBackOff"
    assert "CrashLoopBackOff" in stack.kubectl("get", "pod", "crash", "--no-headers")


def test_readiness_probe_gates_ready(stack: PodStack) -> None:
    probe = {"exec": {"command": ["test", "-f", "/tmp/ready"]}, "periodSeconds": 1, "failureThreshold": 1}
    stack.apply(pod_manifest("gated", "sleep 6; touch /tmp/ready; exec sleep 3600",
                             container={"readinessProbe": probe}))  # fmt: skip
    wait_for(lambda: stack.running("gated"), 60, "gated Running")
    assert not stack.ready("gated"), "Ready before the readiness probe passed"
    assert wait_for(lambda: stack.ready("gated"), 40, "gated Ready after the probe passes")


def test_missing_image_shows_reason(stack: PodStack) -> None:
    stack.apply(pod_manifest("noimage", "true", container={"image": "localhost/absent:1"}))
    row = wait_for(
        lambda: (
            (r := stack.kubectl("get", "pod", "noimage", "--no-headers")) and "ErrImageNeverPull" in r and r
        ),
        60,
        "ErrImageNeverPull in kubectl get pod",
    )
    assert "ErrImageNeverPull" in row
    events = stack.kubectl("get", "events", "--field-selector", "involvedObject.name=noimage")
    assert "ErrImageNeverPull" in events


def test_configmap_update_reaches_mounted_file(stack: PodStack) -> None:
    stack.apply(yaml.safe_dump({"apiVersion": "v1", "kind": "ConfigMap",
                                "metadata": {"name": "site", "namespace": "default"},
                                "data": {"index.html": "one"}}))  # fmt: skip
    stack.apply(pod_manifest(
        "cmweb", "exec httpd -f -p 8080 -h /www",
        container={"volumeMounts": [{"name": "site", "mountPath": "/www"}]},
        volumes=[{"name": "site", "configMap": {"name": "site"}}],
    ))  # fmt: skip
    ip = wait_for(lambda: stack.running("cmweb"), 60, "cmweb Running")["status"]["podIP"]
    assert wait_for(lambda: http_get(f"http://{ip}:8080/index.html") == "one", 20, "first content")
    stack.kubectl("patch", "configmap", "site", "--type=merge", "-p", '{"data":{"index.html":"two"}}')
    assert wait_for(lambda: http_get(f"http://{ip}:8080/index.html") == "two", 30, "updated content")


def test_edgecore_kill9_adopts_running_containers(stack: PodStack, containerd: Containerd) -> None:
    stack.apply(pod_manifest("steady", "exec sleep 3600"))
    before = wait_for(lambda: stack.running("steady"), 60, "steady Running")
    cid = before["status"]["containerStatuses"][0]["containerID"]
    pids = wait_for(lambda: containerd.pod_pids(before["metadata"]["uid"]), 30, "steady's processes")
    stack.kill9("edgecore")
    stack.start_edgecore()
    time.sleep(5)  # several sync passes of the restarted edged
    after = stack.pod("steady")
    assert after["status"]["containerStatuses"][0]["containerID"] == cid
    assert after["status"]["containerStatuses"][0]["restartCount"] == 0
    assert pids <= containerd.pod_pids(before["metadata"]["uid"]), (
        "a process died across the edgecore restart"
    )


def test_cloud_away_pods_keep_running_and_restart(stack: PodStack, containerd: Containerd) -> None:
    stack.apply(pod_manifest("flaky", "sleep 2; exit 1"))
    stack.apply(pod_manifest("calm", "exec sleep 3600"))
    wait_for(lambda: stack.container_status("flaky").get("containerID"), 60, "flaky started")
    wait_for(lambda: stack.running("calm"), 60, "calm Running")
    calm_pids = containerd.pod_pids(stack.pod("calm")["metadata"]["uid"])
    flaky_uid = stack.pod("flaky")["metadata"]["uid"]
    restarts_before = stack.container_status("flaky").get("restartCount", 0)
    stack.kill9("cloudcore")
    # With the cloud away, the node's own store drives edged: exits are seen and restarted. Each
    # restart is a new process in the pod's cgroup (the sandbox's pause process stays).
    away = 60.0  # the issue asks for a minute
    seen: set[int] = set()
    end = time.monotonic() + away
    while time.monotonic() < end:
        seen |= containerd.pod_pids(flaky_uid)
        time.sleep(0.3)
    assert len(seen) >= 1 + 5, f"only {len(seen)} processes of the crashing pod while the cloud was away"
    stack.start_cloudcore(same_ports=True)
    want = restarts_before + 5
    cs = wait_for(lambda: (c := stack.container_status("flaky")).get("restartCount", 0) >= want and c, 60,
                  "restarts made while the cloud was away reported")  # fmt: skip
    assert cs["restartCount"] >= want
    assert stack.running("calm"), "calm stopped running while the cloud was away"
    assert stack.container_status("calm")["restartCount"] == 0
    assert calm_pids and calm_pids <= containerd.pod_pids(stack.pod("calm")["metadata"]["uid"]), (
        "calm's processes did not survive the cloud's absence"
    )


def test_delete_pod_removes_containers(stack: PodStack, containerd: Containerd) -> None:
    calm = containerd.pod_pids(stack.pod("calm")["metadata"]["uid"])
    stack.apply(pod_manifest("gone", "exec sleep 3600"))
    uid = wait_for(lambda: stack.running("gone"), 60, "gone Running")["metadata"]["uid"]
    mine = wait_for(lambda: containerd.pod_pids(uid), 30, "the pod's processes")
    assert len(containerd.cgroup_dirs(f"kubepods/pod{uid}")) == len(cgroups.hierarchies())
    stack.kubectl("delete", "pod", "gone", "--wait=false")

    def stopped() -> bool:
        alive = containerd.pod_pids(uid)
        return not alive and "pod/gone" not in stack.kubectl("get", "pods", "-o", "name")

    assert wait_for(stopped, 60, "the pod's containers stopped and the pod gone")
    # runc leaves the pod's parent cgroups in every hierarchy; edged removes them (the kubelet does too).
    assert wait_for(lambda: not containerd.cgroup_dirs(f"kubepods/pod{uid}"), 30, "the pod's cgroups gone"), (
        containerd.cgroup_dirs(f"kubepods/pod{uid}")
    )
    assert containerd.cgroup_dirs(f"kubepods/pod{stack.pod('calm')['metadata']['uid']}"), "calm's cgroup"
    assert mine and calm and calm <= containerd.pod_pids(stack.pod("calm")["metadata"]["uid"]), (
        "deleting one pod stopped another's containers"
    )


def test_deployment_runs_scales_and_rolls_out(stack: PodStack) -> None:
    """Standalone mode's own controllers: Deployment -> ReplicaSet -> Pods, scheduled onto the node."""
    deploy = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "webd"}},
            "strategy": {"rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": {
                "metadata": {"labels": {"app": "webd"}},
                "spec": {
                    "terminationGracePeriodSeconds": 1,
                    "containers": [
                        {"name": "main", "image": BUSYBOX, "imagePullPolicy": "Never",
                         "command": ["sh", "-c", "echo v1 > /www/index.html; exec httpd -f -p 8080 -h /www"],
                         "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1}}
                    ],
                },
            },
        },
    }  # fmt: skip

    def ready_pods(version: str) -> list[dict[str, Any]]:
        pods = json.loads(stack.kubectl("get", "pods", "-l", "app=webd", "-o", "json"))["items"]
        out = []
        for p in pods:
            st = p.get("status") or {}
            if p["metadata"].get("deletionTimestamp") or not st.get("podIP"):
                continue
            try:
                if http_get(f"http://{st['podIP']}:8080/").strip() == version:
                    out.append(p)
            except OSError:
                continue
        return out

    stack.apply(yaml.safe_dump(deploy))
    pods = wait_for(lambda: len(r := ready_pods("v1")) == 2 and r, 90, "2 pods of v1 answering")
    assert {p["spec"]["nodeName"] for p in pods} == {NODE}
    status = wait_for(
        lambda: (
            (s := json.loads(stack.kubectl("get", "deploy", "web", "-o", "json"))["status"]).get(
                "availableReplicas"
            )
            == 2
            and s
        ),
        60,
        "deployment available",
    )
    assert status["updatedReplicas"] == 2
    stack.kubectl("scale", "deploy", "web", "--replicas=3")
    wait_for(lambda: len(ready_pods("v1")) == 3, 60, "scaled to 3")
    deploy["spec"]["replicas"] = 3
    deploy["spec"]["template"]["spec"]["containers"][0]["command"][2] = (
        "echo v2 > /www/index.html; exec httpd -f -p 8080 -h /www"
    )
    stack.apply(yaml.safe_dump(deploy))
    wait_for(lambda: len(ready_pods("v2")) == 3 and not ready_pods("v1"), 120, "rolled out to v2")
    rs = json.loads(stack.kubectl("get", "rs", "-l", "app=webd", "-o", "json"))["items"]
    assert sorted(r["spec"]["replicas"] for r in rs) == [0, 3]


def test_kill9_then_cleanup_leaves_no_cgroups(stack: PodStack, containerd: Containerd) -> None:
    """Last in this module: it ends the module's containerd. kill -9 of edgecore and containerd leaves the
    pods' shims, containers and cgroups behind; the clean-up (``up.containerd.cleanup``, as `kubeshore
    down` and this fixture run it) removes the node's whole cgroup root in every hierarchy."""
    stack.apply(pod_manifest("last", "exec sleep 3600"))
    uid = wait_for(lambda: stack.running("last"), 60, "last Running")["metadata"]["uid"]
    assert wait_for(lambda: containerd.pod_pids(uid), 30, "last's processes")
    assert containerd.cgroup_dirs(f"kubepods/pod{uid}"), "the pod does not run under the node's cgroup root"
    stack.kill9("edgecore")
    containerd.stop()  # kill -9 of containerd, then the clean-up
    # SIGKILLed processes finish exiting on their own time; the clean-up waits for their cgroups to empty.
    assert wait_for(lambda: not containerd.pod_pids(uid), 10, "the pod's processes gone")
    assert containerd.cgroup_dirs() == []
