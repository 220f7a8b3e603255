"""cloudcore's Device validating webhook (cloudcore.admission), unit level: the AdmissionReview answer
(allowed, refused naming the field, model missing, status writes, malformed) and the HTTPS server
(real TLS from a kubeshore CA, oversize and slow bodies). Against a real kube-apiserver:
tests/realk8s/test_webhook.py."""

from __future__ import annotations

import asyncio
import copy
import json
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from cloudcore.admission import DEVICES_PATH, ReviewError, WebhookServer, answer_review
from kubeshore import pki

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
MODEL = yaml.safe_load((EXAMPLES / "devicemodel-virtual-thermometer.yaml").read_text())
DEVICE = yaml.safe_load((EXAMPLES / "device-virtual-thermometer.yaml").read_text())
MODEL_NAME = MODEL["metadata"]["name"]


def models(namespace: str, name: str) -> dict[str, Any] | None:
    return MODEL if (namespace, name) == ("default", MODEL_NAME) else None


def with_target(value: str, device: dict[str, Any] = DEVICE) -> dict[str, Any]:
    out = copy.deepcopy(device)
    out["spec"]["properties"][2]["desired"]["value"] = value
    return out


def review(
    obj: dict[str, Any] | None, old: dict[str, Any] | None = None, operation: str = "UPDATE"
) -> dict[str, Any]:
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
            "kind": {"group": "devices.kubeedge.io", "version": "v1beta1", "kind": "Device"},
            "resource": {"group": "devices.kubeedge.io", "version": "v1beta1", "resource": "devices"},
            "name": "thermometer-1",
            "namespace": "default",
            "operation": operation,
            "userInfo": {"username": "admin"},
            "object": obj,
            "oldObject": old,
            "dryRun": False,
        },
    }


def answer(body: dict[str, Any]) -> dict[str, Any]:
    out = answer_review(json.dumps(body).encode(), models)
    assert out["apiVersion"] == "admission.k8s.io/v1" and out["kind"] == "AdmissionReview"
    assert out["response"]["uid"] == body["request"]["uid"]
    response: dict[str, Any] = out["response"]
    return response


def test_a_value_of_the_property_type_is_allowed() -> None:
    assert answer(review(with_target("19"), DEVICE))["allowed"] is True
    assert answer(review(DEVICE, None, "CREATE")) == {"uid": review(None)["request"]["uid"], "allowed": True}


def test_a_value_the_type_cannot_hold_is_refused_naming_the_field_and_why() -> None:
    response = answer(review(with_target("hot"), DEVICE))
    assert response["allowed"] is False
    status = response["status"]
    assert status["code"] == 422 and status["reason"] == "Invalid"
    assert "spec.properties[2].desired.value" in status["message"]
    assert "target-temperature is of type FLOAT in DeviceModel virtual-thermometer" in status["message"]
    (cause,) = status["details"]["causes"]
    assert cause["field"] == "spec.properties[2].desired.value" and cause["reason"] == "FieldValueInvalid"
    assert status["details"]["kind"] == "Device" and status["details"]["name"] == "thermometer-1"
    # The same on create.
    assert answer(review(with_target("hot"), None, "CREATE"))["allowed"] is False


def test_the_embedded_server_and_the_webhook_give_the_same_refusal() -> None:
    from cloudcore.admission import device_refusal

    status = device_refusal(with_target("hot"), MODEL)
    assert status is not None
    assert answer(review(with_target("hot"), DEVICE))["status"]["message"] == status["message"]


def test_a_write_that_leaves_the_properties_alone_is_allowed() -> None:
    """A status or label write (cloudcore's own conditions) of a Device admitted before its model
    changed, or before the webhook existed, is not refused."""
    bad = with_target("hot")
    relabelled = copy.deepcopy(bad)
    relabelled["metadata"]["labels"]["site"] = "b"
    relabelled["status"] = {"conditions": [{"type": "Reporting", "status": "False"}]}
    assert answer(review(relabelled, bad))["allowed"] is True


def test_a_missing_model_is_allowed_with_a_warning() -> None:
    orphan = copy.deepcopy(with_target("hot"))
    orphan["spec"]["deviceModelRef"]["name"] = "no-such-model"
    response = answer(review(orphan, None, "CREATE"))
    assert response["allowed"] is True
    (warning,) = response["warnings"]
    assert '"no-such-model" not found' in warning and "ModelFound" in warning


def test_other_resources_and_operations_are_allowed() -> None:
    body = review(with_target("hot"), None, "DELETE")
    assert answer(body)["allowed"] is True
    body = review(with_target("hot"), DEVICE)
    body["request"]["resource"]["resource"] = "devicemodels"
    assert answer(body)["allowed"] is True


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"{not json", "not JSON"),
        (b"\xff\xfe", "not JSON"),
        (b"[]", "not a JSON object"),
        (
            json.dumps({**review(DEVICE), "apiVersion": "admission.k8s.io/v1beta1"}).encode(),
            "expected apiVersion",
        ),
        (json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}).encode(), "request is"),
        (json.dumps({**review(DEVICE), "request": {**review(DEVICE)["request"], "uid": ""}}).encode(), "uid"),
        (json.dumps(review(None, None, "CREATE")).encode(), "request.object is missing"),
        (json.dumps(review(["x"], None, "CREATE")).encode(), "request.object is not an object"),
    ],
)
def test_a_malformed_review_is_an_error_naming_the_problem(body: bytes, problem: str) -> None:
    with pytest.raises(ReviewError, match=problem):
        answer_review(body, models)


def test_a_device_of_the_wrong_shape_is_an_error_not_a_crash() -> None:
    odd = copy.deepcopy(DEVICE)
    odd["spec"]["properties"] = 7
    with pytest.raises(ReviewError, match="not a Device"):
        answer_review(json.dumps(review(odd, DEVICE)).encode(), models)


# --- the HTTPS server --------------------------------------------------------------------------------


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[tuple[WebhookServer, ssl.SSLContext]]:
    ca = pki.CertificateAuthority.create("test-ca")
    cert, key = ca.issue("cloudcore", server_names=["127.0.0.1"], server=True)
    (tmp_path / "s.crt").write_bytes(pki.cert_to_pem(cert))
    pki.write_private(tmp_path / "s.key", pki.key_to_pem(key))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(tmp_path / "s.crt", tmp_path / "s.key")
    (tmp_path / "ca.crt").write_bytes(pki.cert_to_pem(ca.cert))
    srv = WebhookServer(models, ctx, bind="127.0.0.1", port=0, max_body=64 * 1024, read_timeout=1.0)
    await srv.start()
    try:
        yield srv, pki.client_tls_context(tmp_path / "ca.crt")
    finally:
        await srv.stop()


async def post(srv: WebhookServer, client_ctx: ssl.SSLContext, body: bytes, **kw: Any) -> tuple[int, str]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"https://127.0.0.1:{srv.port}{DEVICES_PATH}", data=body, ssl=client_ctx, **kw) as resp,
    ):
        return resp.status, await resp.text()


async def test_server_answers_over_tls(server: tuple[WebhookServer, ssl.SSLContext]) -> None:
    srv, client_ctx = server
    status, text = await post(srv, client_ctx, json.dumps(review(with_target("hot"), DEVICE)).encode())
    assert status == 200
    assert json.loads(text)["response"]["allowed"] is False
    status, text = await post(srv, client_ctx, json.dumps(review(with_target("20"), DEVICE)).encode())
    assert json.loads(text)["response"]["allowed"] is True
    assert srv.answered == {"allowed": 1, "refused": 1, "bad": 0}


async def test_server_refuses_malformed_and_oversize_reviews(
    server: tuple[WebhookServer, ssl.SSLContext],
) -> None:
    srv, client_ctx = server
    status, text = await post(srv, client_ctx, b"{")
    assert status == 400 and "not a valid AdmissionReview: body is not JSON" in text
    big = json.dumps(review(with_target("x" * 100_000), DEVICE)).encode()
    status, text = await post(srv, client_ctx, big)
    assert status == 413 and "larger than 65536 bytes" in text

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: the limit holds while reading
        for _ in range(20):
            yield b" " * 8192

    status, text = await post(srv, client_ctx, chunks())  # type: ignore[arg-type]
    assert status == 413, text
    # Still serving.
    status, _ = await post(srv, client_ctx, json.dumps(review(DEVICE, DEVICE)).encode())
    assert status == 200 and srv.answered["bad"] == 3


async def test_server_does_not_wait_for_ever_for_a_body(server: tuple[WebhookServer, ssl.SSLContext]) -> None:
    srv, client_ctx = server
    reader, writer = await asyncio.open_connection("127.0.0.1", srv.port, ssl=client_ctx)
    writer.write(f"POST {DEVICES_PATH} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{{".encode())
    await writer.drain()
    head = await asyncio.wait_for(reader.readline(), 30)
    assert head.startswith(b"HTTP/1.1 408"), head
    writer.close()


async def test_a_model_applied_with_its_device_is_waited_for(
    server: tuple[WebhookServer, ssl.SSLContext],
) -> None:
    """``kubectl apply -f dir/``: the Device's review may come before the model's watch event reaches
    cloudcore's informer; the review waits for it (a short while) instead of letting the value through."""
    srv, client_ctx = server
    known: dict[tuple[str, str], dict[str, Any]] = {}
    srv.model_of = lambda namespace, name: known.get((namespace, name))
    srv.model_grace = 5.0
    asyncio.get_running_loop().call_later(0.3, known.__setitem__, ("default", MODEL_NAME), MODEL)
    status, text = await post(
        srv, client_ctx, json.dumps(review(with_target("hot"), None, "CREATE")).encode()
    )
    assert status == 200 and json.loads(text)["response"]["allowed"] is False, text
    # A model that does not come: allowed after the grace, with the warning.
    srv.model_grace = 0.2
    orphan = copy.deepcopy(with_target("hot"))
    orphan["spec"]["deviceModelRef"]["name"] = "no-such-model"
    status, text = await post(srv, client_ctx, json.dumps(review(orphan, None, "CREATE")).encode())
    response = json.loads(text)["response"]
    assert response["allowed"] is True and "not found" in response["warnings"][0]


def test_a_property_named_twice_is_refused_as_kubeedge_does() -> None:
    # KubeEdge's admission: "property names must be unique" — the edge keys twins by name, so the
    # second would shadow the first. Checked with or without the model, on create and update.
    twice = copy.deepcopy(DEVICE)
    twice["spec"]["properties"].append(copy.deepcopy(twice["spec"]["properties"][0]))
    i = len(twice["spec"]["properties"]) - 1
    for old in (None, DEVICE):
        response = answer(review(twice, old, "CREATE" if old is None else "UPDATE"))
        assert response["allowed"] is False
        (cause,) = response["status"]["details"]["causes"]
        assert cause["reason"] == "FieldValueDuplicate" and cause["field"] == f"spec.properties[{i}].name"
        assert f"spec.properties[{i}].name: Duplicate value" in response["status"]["message"]
    # A write that leaves the (already stored) properties alone is not re-checked.
    assert answer(review(twice, twice))["allowed"] is True


def test_the_embedded_server_refuses_a_property_named_twice_without_its_model() -> None:
    from _apiserver import embedded_kube

    from kubeclient import ApiError, Resource

    devices = Resource("devices.kubeedge.io", "v1beta1", "devices", "Device", True)
    twice = copy.deepcopy(DEVICE)
    twice["metadata"] = {"name": "twice", "namespace": "default"}
    twice["spec"]["deviceModelRef"] = {"name": "not-there-yet"}
    twice["spec"]["properties"].append(copy.deepcopy(twice["spec"]["properties"][0]))
    with embedded_kube() as kube:
        with pytest.raises(ApiError) as refused:
            kube.create(devices, twice, "default")
        assert refused.value.status == 422
        assert "Duplicate value" in str(refused.value) and ".name" in str(refused.value), refused.value
        twice["spec"]["properties"].pop()
        kube.create(devices, twice, "default")  # the model missing alone is accepted
