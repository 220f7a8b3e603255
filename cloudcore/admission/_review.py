"""AdmissionReview (``admission.k8s.io/v1``) in, AdmissionReview out: the Device check itself.

The checks are :func:`crds.duplicate_property_names` (KubeEdge's own admission has it) and
:func:`crds.desired_value_problems`; the refusal is the 422 ``Status`` kube-apiserver itself
answers for an invalid object, so ``kubectl`` shows the same lines whether the embedded API server
refused the write or a real cluster's webhook did:

    The Device "thermometer-1" is invalid: spec.properties[2].desired.value: Invalid value: "hot": ...
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from crds import desired_value_problems, device_properties_changed, duplicate_property_names

DEVICES_PATH = "/validate/devices"
#: names kube-apiserver checks the serving certificate for (deploy/02-cloudcore-webhook.yaml's Service)
WEBHOOK_SERVICE_NAMES = ("cloudcore-webhook.kubeedge.svc", "cloudcore-webhook.kubeedge.svc.cluster.local")
_GROUP = "devices.kubeedge.io"
_REVIEW_VERSION = "admission.k8s.io/v1"

ModelLookup = Callable[[str, str], dict[str, Any] | None]
"""``model_of(namespace, name)``: the DeviceModel as cloudcore's informer holds it, None if absent."""


class ReviewError(ValueError):
    """The request is not an AdmissionReview this webhook can answer (answered with 400)."""


def device_refusal(
    device: dict[str, Any], model: dict[str, Any] | None, old: dict[str, Any] | None = None
) -> dict[str, Any] | None:
    """The 422 ``Status`` refusing ``device`` (None: admitted); ``old`` is the stored Device of an update."""
    duplicates = duplicate_property_names(device, old)
    problems = desired_value_problems(device, model, old)
    if not problems and not duplicates:
        return None
    from kubeapi import schema  # only when refusing: its import is not free

    errors = [schema.FieldError(schema.CAUSE_DUPLICATE, path, name) for path, name in duplicates]
    errors += [schema.FieldError("FieldValueInvalid", path, value, why) for path, value, why in problems]
    name = str((device.get("metadata") or {}).get("name") or "")
    return schema.invalid_status("Device", _GROUP, name, errors)


def _object(request: dict[str, Any], key: str) -> dict[str, Any] | None:
    obj = request.get(key)
    if obj is None:
        return None
    if not isinstance(obj, dict):
        raise ReviewError(f"request.{key} is not an object")
    return obj


def answer_review(body: bytes, model_of: ModelLookup) -> dict[str, Any]:
    """The AdmissionReview answering ``body``; raises :class:`ReviewError` naming what is wrong with it."""
    try:
        review = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ReviewError(f"body is not JSON: {exc}") from None
    if not isinstance(review, dict):
        raise ReviewError("body is not a JSON object")
    if review.get("apiVersion") != _REVIEW_VERSION or review.get("kind") != "AdmissionReview":
        raise ReviewError(
            f"expected apiVersion {_REVIEW_VERSION} kind AdmissionReview, got apiVersion "
            f"{review.get('apiVersion')!r} kind {review.get('kind')!r}"
        )
    request = review.get("request")
    if not isinstance(request, dict):
        raise ReviewError("request is missing or not an object")
    uid = request.get("uid")
    if not isinstance(uid, str) or not uid:
        raise ReviewError("request.uid is missing")
    response: dict[str, Any] = {"uid": uid, "allowed": True}
    answer = {"apiVersion": _REVIEW_VERSION, "kind": "AdmissionReview", "response": response}
    resource = request.get("resource") or {}
    if not isinstance(resource, dict):
        raise ReviewError("request.resource is not an object")
    operation = request.get("operation")
    if (
        resource.get("group") != _GROUP
        or resource.get("resource") != "devices"
        or request.get("subResource")
        or operation not in ("CREATE", "UPDATE")
    ):
        return answer  # not what this webhook checks: a configuration matching more must not block it
    device = _object(request, "object")
    if device is None:
        raise ReviewError(f"request.object is missing in a {operation}")
    old = _object(request, "oldObject") if operation == "UPDATE" else None
    if not device_properties_changed(device, old):
        return answer  # a status or metadata write (cloudcore's own conditions among them)
    try:
        model_name = str(device["spec"]["deviceModelRef"]["name"] or "")
    except (KeyError, TypeError):
        return answer  # the CRD schema (checked before any webhook) says what a Device must hold
    namespace = str(request.get("namespace") or "default")
    model = model_of(namespace, model_name)
    if model is None:
        response["warnings"] = [
            f'DeviceModel "{model_name}" not found in namespace {namespace}: desired values not checked; '
            "the Device's ModelFound condition says so"
        ]
        return answer
    try:
        status = device_refusal(device, model, old)
    except (TypeError, AttributeError) as exc:
        raise ReviewError(f"request.object is not a Device: {exc}") from None
    if status is not None:
        response["allowed"] = False
        response["status"] = {k: status[k] for k in ("status", "message", "reason", "details", "code")}
    return answer
