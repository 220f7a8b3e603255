"""Validation of Devices beyond their CRD schema, in one place for both API servers: the embedded
one calls :func:`device_refusal` at admission, a real cluster calls cloudcore's validating webhook
(``POST /validate/devices``), which answers with the same function."""

from cloudcore.admission._registration import VALIDATING_WEBHOOKS, CABundleKeeper, ensure_ca_bundle
from cloudcore.admission._review import (
    DEVICES_PATH,
    WEBHOOK_SERVICE_NAMES,
    ModelLookup,
    ReviewError,
    answer_review,
    device_refusal,
)
from cloudcore.admission._server import WebhookServer

__all__ = [
    "DEVICES_PATH",
    "VALIDATING_WEBHOOKS",
    "WEBHOOK_SERVICE_NAMES",
    "CABundleKeeper",
    "ModelLookup",
    "ReviewError",
    "WebhookServer",
    "answer_review",
    "device_refusal",
    "ensure_ca_bundle",
]
