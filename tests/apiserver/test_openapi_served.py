"""The real kubectl reading the real server's OpenAPI documents (kubeapi/openapi.py)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from .conftest import APIServerProcess

REPO = Path(__file__).resolve().parents[2]


def test_explain_and_documents_follow_the_crds(apiserver: APIServerProcess) -> None:
    apiserver.kubectl("apply", "-f", str(REPO / "crds"))
    apiserver.kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=10s")
    out = apiserver.kubectl("explain", "devices.spec").stdout
    assert "KIND:       Device" in out and "VERSION:    v1beta1" in out
    assert re.search(r"deviceModelRef\s+<Object>", out)
    out = apiserver.kubectl("explain", "nodegroups.spec").stdout
    assert "KIND:       NodeGroup" in out
    out = apiserver.kubectl("explain", "pods.spec.containers").stdout
    assert re.search(r"image\s+<string>", out)

    index = json.loads(apiserver.kubectl("get", "--raw", "/openapi/v3").stdout)["paths"]
    assert index["apis/devices.kubeedge.io/v1beta1"]["serverRelativeURL"].startswith(
        "/openapi/v3/apis/devices.kubeedge.io/v1beta1?hash="
    )
    v2 = json.loads(apiserver.kubectl("get", "--raw", "/openapi/v2").stdout)
    assert v2["swagger"] == "2.0" and "io.kubeedge.devices.v1beta1.Device" in v2["definitions"]

    apiserver.kubectl("delete", "crd", "nodegroups.apps.kubeedge.io")
    index = json.loads(apiserver.kubectl("get", "--raw", "/openapi/v3").stdout)["paths"]
    assert "apis/apps.kubeedge.io/v1alpha1" in index  # EdgeApplication is still served there
    doc = json.loads(apiserver.kubectl("get", "--raw", "/openapi/v3/apis/apps.kubeedge.io/v1alpha1").stdout)
    assert "io.kubeedge.apps.v1alpha1.NodeGroup" not in doc["components"]["schemas"]
    assert "io.kubeedge.apps.v1alpha1.EdgeApplication" in doc["components"]["schemas"]
