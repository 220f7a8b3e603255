"""The caBundle of cloudcore's ValidatingWebhookConfiguration, kept by cloudcore itself.

deploy/ ships the configuration without a caBundle: the webhook's serving certificate comes from
cloudcore's own CA (Secret ``kubeedge/casecret``), which exists only once cloudcore has run. cloudcore
writes that CA into every webhook of the configuration at start and checks it again periodically (a
re-applied or replaced configuration gets it back); it may get and patch that one configuration only
(deploy/01-cloudcore-rbac.yaml, ``resourceNames``).
"""

from __future__ import annotations

import asyncio
import base64
import logging

from kubeclient import JSON_PATCH, ApiError, Kube, Resource

log = logging.getLogger(__name__)

VALIDATING_WEBHOOKS = Resource(
    "admissionregistration.k8s.io",
    "v1",
    "validatingwebhookconfigurations",
    "ValidatingWebhookConfiguration",
    False,
)


def ensure_ca_bundle(kube: Kube, name: str, ca_pem: bytes) -> str:
    """Put ``ca_pem`` into every webhook of configuration ``name`` (blocking): "patched", "current" or
    "missing"; raises ApiError when the API server refuses."""
    config = kube.get(VALIDATING_WEBHOOKS, name)
    if config is None:
        return "missing"
    bundle = base64.b64encode(ca_pem).decode()
    # Only if the configuration is still the one read: its webhooks list is addressed by index.
    ops = [
        {"op": "test", "path": "/metadata/resourceVersion", "value": config["metadata"]["resourceVersion"]}
    ]
    for i, hook in enumerate(config.get("webhooks") or []):
        if (hook.get("clientConfig") or {}).get("caBundle") != bundle:
            ops.append({"op": "add", "path": f"/webhooks/{i}/clientConfig/caBundle", "value": bundle})
    if len(ops) == 1:
        return "current"
    kube.patch(VALIDATING_WEBHOOKS, name, ops, content_type=JSON_PATCH)
    return "patched"


class CABundleKeeper:
    """Runs :func:`ensure_ca_bundle` at start and every ``period`` seconds; says once what went wrong."""

    def __init__(self, kube: Kube, name: str, ca_pem: bytes, *, port: int, period: float) -> None:
        self.kube = kube
        self.name = name
        self.ca_pem = ca_pem
        self.port = port
        self.period = period
        self.result = ""
        self.checked = asyncio.Event()  # set after the first check, whatever its result

    async def check(self) -> str:
        try:
            result = str(await self.kube.run(ensure_ca_bundle, self.kube, self.name, self.ca_pem))
        except ApiError as exc:
            result = f"error: {exc}"
        if result != self.result:
            if result == "patched":
                log.info("ValidatingWebhookConfiguration %s: caBundle set to cloudcore's CA", self.name)
            elif result == "missing":
                log.warning(
                    "ValidatingWebhookConfiguration %s not found: the webhook is served on port %d but the "
                    "API server does not call it (kubectl apply -f deploy/02-cloudcore-webhook.yaml)",
                    self.name,
                    self.port,
                )
            elif result.startswith("error"):
                log.warning("ValidatingWebhookConfiguration %s: caBundle not written: %s", self.name, result)
        self.result = result
        self.checked.set()
        return result

    async def run(self) -> None:
        while True:
            await self.check()
            await asyncio.sleep(self.period)
