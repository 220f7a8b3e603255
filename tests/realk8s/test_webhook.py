"""cloudcore's Device validating webhook called by a real kube-apiserver (v1.36.2, ../shared/kubernetes).

cloudcore runs on the host with its ServiceAccount's token (deploy/'s RBAC), serving the webhook on a port
the system chose; deploy/02-cloudcore-webhook.yaml's ValidatingWebhookConfiguration is applied as it
ships except that kube-apiserver reaches cloudcore at ``https://127.0.0.1:PORT`` (``clientConfig.url``,
there is no Service in front of a host process) and only this test's namespace is matched. It is applied
after cloudcore started, with no caBundle: cloudcore finds it and fills in its CA. Then ``kubectl patch``
of a FLOAT property with "hot" is refused naming the field and the property, and a number is accepted."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from _peers import ControlPlane
from _stack import REPO, Stack, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

NS = "webhook-test"
WEBHOOKS = "validatingwebhookconfiguration"
NAME = "kubeshore-devices"
EXAMPLES = REPO / "examples"


def webhook_configuration(port: int) -> dict[str, Any]:
    """deploy/'s configuration, reaching cloudcore on the host and matching only this test's namespace."""
    docs = yaml.safe_load_all((REPO / "deploy" / "02-cloudcore-webhook.yaml").read_text())
    config: dict[str, Any] = next(d for d in docs if d and d["kind"] == "ValidatingWebhookConfiguration")
    assert config["metadata"]["name"] == NAME
    for hook in config["webhooks"]:
        assert "caBundle" not in hook["clientConfig"]
        hook["clientConfig"] = {"url": f"https://127.0.0.1:{port}{hook['clientConfig']['service']['path']}"}
        hook["namespaceSelector"] = {"matchLabels": {"kubernetes.io/metadata.name": NS}}
    return config


def in_namespace(path: Path) -> str:
    doc = yaml.safe_load(path.read_text())
    doc["metadata"]["namespace"] = NS
    return json.dumps(doc)


@pytest.fixture(scope="module")
def stack(control_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = Stack(tmp_path_factory.mktemp("webhook"), "", control_plane)
    try:
        s.kubectl("create", "namespace", NS)
        # A short resync: the configuration is applied after cloudcore started and looked for it.
        s.start_cloudcore(webhookPort=0, resyncPeriod=2)
        yield s
    finally:
        s.stop_all()
        subprocess.run(
            ["kubectl", "--kubeconfig", s.kubeconfig, "delete", WEBHOOKS, NAME, "--ignore-not-found"],
            capture_output=True, timeout=60,
        )  # fmt: skip
        subprocess.run(
            ["kubectl", "--kubeconfig", s.kubeconfig, "delete", "namespace", NS, "--wait=false"],
            capture_output=True, timeout=60,
        )  # fmt: skip


def patch_target(stack: Stack, value: str, *extra: str) -> subprocess.CompletedProcess[str]:
    op = [{"op": "replace", "path": "/spec/properties/2/desired/value", "value": value}]
    return subprocess.run(
        ["kubectl", "--kubeconfig", stack.kubeconfig, "-n", NS, "patch", "device", "thermometer-1",
         "--type=json", "-p", json.dumps(op), *extra],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def stored_target(stack: Stack) -> str:
    device = stack.get("device", "thermometer-1", "-n", NS)
    return str(device["spec"]["properties"][2]["desired"]["value"])


def test_kubectl_patch_of_a_value_the_type_cannot_hold_is_refused(stack: Stack) -> None:
    wait_for(
        lambda: "ValidatingWebhookConfiguration kubeshore-devices not found" in stack.log("cloudcore"),
        30,
        "cloudcore saying the configuration is missing",
    )
    stack.apply(json.dumps(webhook_configuration(int(stack.ports["webhookPort"]))))
    wait_for(
        lambda: all(h["clientConfig"].get("caBundle") for h in stack.get(WEBHOOKS, NAME)["webhooks"]),
        60,
        "cloudcore writing its CA into the caBundle",
    )
    stack.kubectl(
        "apply", "-f", "-",
        stdin=in_namespace(EXAMPLES / "devicemodel-virtual-thermometer.yaml") + "\n"
        + in_namespace(EXAMPLES / "device-virtual-thermometer.yaml"),
    )  # fmt: skip
    # kube-apiserver picks up the caBundle from its own informer, cloudcore the model from its: a
    # server-side dry run (no side effect) says when both are there.
    wait_for(
        lambda: "desired.value" in patch_target(stack, "hot", "--dry-run=server").stderr,
        60,
        "the webhook refusing a dry run",
    )
    refused = patch_target(stack, "hot")
    assert refused.returncode != 0, refused.stdout
    assert "spec.properties[2].desired.value" in refused.stderr, refused.stderr
    assert 'Invalid value: "hot"' in refused.stderr, refused.stderr
    assert "target-temperature is of type FLOAT in DeviceModel virtual-thermometer" in refused.stderr
    assert stored_target(stack) == "21.5"

    accepted = patch_target(stack, "19")
    assert accepted.returncode == 0, accepted.stderr
    assert stored_target(stack) == "19"
    # A write that leaves the properties alone passes (cloudcore's own condition writes are such).
    stack.kubectl("-n", NS, "label", "device", "thermometer-1", "checked=yes")
    reviews = stack.samples("cloudcore")
    assert reviews['cloudcore_webhook_reviews_total{result="refused"}'] >= 2  # the dry run and the patch
    assert reviews['cloudcore_webhook_reviews_total{result="allowed"}'] >= 3  # create, "19", the label
    assert reviews['cloudcore_webhook_reviews_total{result="bad"}'] == 0


def test_cloudcore_keeps_the_ca_bundle_with_deploys_rbac(stack: Stack) -> None:
    """The configuration's caBundle removed (a re-applied manifest from elsewhere): cloudcore writes it
    back; every call it made for that used deploy/'s rights, none refused."""
    patch = [{"op": "remove", "path": "/webhooks/0/clientConfig/caBundle"}]
    stack.kubectl("patch", WEBHOOKS, NAME, "--type=json", "-p", json.dumps(patch))
    wait_for(
        lambda: stack.get(WEBHOOKS, NAME)["webhooks"][0]["clientConfig"].get("caBundle"),
        30,
        "the caBundle written back",
    )
    calls = [json.loads(line) for line in (stack.tmp / "api-cloudcore.jsonl").read_text().splitlines()]
    mine = [c for c in calls if "/validatingwebhookconfigurations/" in c["path"]]
    assert {c["method"] for c in mine} == {"GET", "PATCH"}, mine
    assert {c["status"] for c in mine} <= {200, 404}, mine
    assert not [c for c in calls if c["status"] == 403]
