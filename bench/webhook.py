"""What cloudcore's Device validating webhook costs: per review in cloudcore, and per Device write on a
real kube-apiserver.

Run: ``python -m bench.webhook [--patches N] [--rounds N]``. In-process: the AdmissionReview answer for
an allowed and a refused Device (median and p99 microseconds), and reviews over HTTPS on one keep-alive
connection. With ../shared/kubernetes: cloudcore on the host (its ServiceAccount, deploy/'s RBAC)
serving the webhook to kube-apiserver v1.36.2 by URL, and N Device patches through the official client
with the webhook registered and without it (median and p99 milliseconds), cloudcore's CPU per patch
and its RSS. Writes ``bench/results/webhook.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
import os
import platform
import ssl
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script too

from bench._measure import call_times_us, cpu_seconds, percentile, rss_mb, write_results  # noqa: E402
from cloudcore.admission import DEVICES_PATH, WebhookServer, answer_review  # noqa: E402
from kubeshore import pki  # noqa: E402

RESULT = ROOT / "bench" / "results" / "webhook.json"
EXAMPLES = ROOT / "examples"
MODEL = yaml.safe_load((EXAMPLES / "devicemodel-virtual-thermometer.yaml").read_text())
DEVICE = yaml.safe_load((EXAMPLES / "device-virtual-thermometer.yaml").read_text())


def _review(value: str) -> bytes:
    new = copy.deepcopy(DEVICE)
    new["spec"]["properties"][2]["desired"]["value"] = value
    request = {
        "uid": "u1",
        "resource": {"group": "devices.kubeedge.io", "version": "v1beta1", "resource": "devices"},
        "namespace": "default",
        "operation": "UPDATE",
        "object": new,
        "oldObject": DEVICE,
    }
    return json.dumps(
        {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}
    ).encode()


def _models(namespace: str, name: str) -> dict[str, Any] | None:
    return MODEL if name == MODEL["metadata"]["name"] else None


def _stats(samples: list[float], digits: int = 1) -> dict[str, float]:
    return {
        "median": round(percentile(samples, 0.5), digits),
        "p99": round(percentile(samples, 0.99), digits),
        "n": len(samples),
    }


def _time_us(fn: Callable[[], object], rounds: int) -> dict[str, float]:
    return _stats(call_times_us(fn, rounds, warmup=200))


async def _over_https(rounds: int) -> dict[str, float]:
    import aiohttp

    with tempfile.TemporaryDirectory() as tmp:
        ca = pki.CertificateAuthority.create("bench")
        cert, key = ca.issue("cloudcore", server_names=["127.0.0.1"], server=True)
        (Path(tmp) / "s.crt").write_bytes(pki.cert_to_pem(cert))
        pki.write_private(Path(tmp) / "s.key", pki.key_to_pem(key))
        (Path(tmp) / "ca.crt").write_bytes(pki.cert_to_pem(ca.cert))
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(Path(tmp) / "s.crt", Path(tmp) / "s.key")
        server = WebhookServer(_models, ctx, bind="127.0.0.1", port=0)
        await server.start()
        client_ctx = pki.client_tls_context(Path(tmp) / "ca.crt")
        url = f"https://127.0.0.1:{server.port}{DEVICES_PATH}"
        bodies = [_review("hot"), _review("19")]
        samples = []
        try:
            async with aiohttp.ClientSession() as session:
                for i in range(rounds):
                    start = time.perf_counter_ns()
                    async with session.post(url, data=bodies[i % 2], ssl=client_ctx) as resp:
                        await resp.read()
                    samples.append((time.perf_counter_ns() - start) / 1000)
        finally:
            await server.stop()
        return _stats(samples)


def _on_cluster(patches: int) -> dict[str, Any]:
    sys.path.insert(0, str(ROOT / "tests"))
    from _peers import control_plane, kubernetes_missing  # the tests' one way to run them
    from _stack import Stack, wait_for

    from kubeclient import JSON_PATCH, Kube

    if kubernetes_missing():
        return {"skipped": kubernetes_missing()}
    with control_plane() as cp, tempfile.TemporaryDirectory() as tmp:
        stack = Stack(Path(tmp), "", cp)
        try:
            stack.start_cloudcore(webhookPort=0, resyncPeriod=1)
            docs = yaml.safe_load_all((ROOT / "deploy" / "02-cloudcore-webhook.yaml").read_text())
            config = next(d for d in docs if d and d["kind"] == "ValidatingWebhookConfiguration")
            port = stack.ports["webhookPort"]
            for hook in config["webhooks"]:
                hook["clientConfig"] = {
                    "url": f"https://127.0.0.1:{port}{hook['clientConfig']['service']['path']}"
                }
            stack.kubectl("apply", "-f", str(EXAMPLES / "devicemodel-virtual-thermometer.yaml"))
            stack.kubectl("apply", "-f", str(EXAMPLES / "device-virtual-thermometer.yaml"))
            kube = Kube.from_kubeconfig(cp.kubeconfig)
            path = "/apis/devices.kubeedge.io/v1beta1/namespaces/default/devices/thermometer-1"
            pid = stack.procs["cloudcore"].pid

            def run() -> list[float]:
                samples = []
                for i in range(patches):
                    op = [
                        {
                            "op": "replace",
                            "path": "/spec/properties/2/desired/value",
                            "value": str(15 + i % 10),
                        }
                    ]
                    start = time.perf_counter()
                    kube.request("PATCH", path, body=op, content_type=JSON_PATCH)
                    samples.append((time.perf_counter() - start) * 1000)
                return samples

            cpu0 = cpu_seconds(pid)
            without = run()
            cpu_without = cpu_seconds(pid) - cpu0
            stack.apply(json.dumps(config))

            def registered() -> bool:
                hooks = stack.get("validatingwebhookconfiguration", "kubeshore-devices")["webhooks"]
                return all(h["clientConfig"].get("caBundle") for h in hooks)

            wait_for(registered, 60, "the caBundle")
            bad = [{"op": "replace", "path": "/spec/properties/2/desired/value", "value": "hot"}]
            wait_for(lambda: _refused(kube, path, bad), 60, "kube-apiserver calling the webhook")
            cpu0 = cpu_seconds(pid)
            answered0 = _answered(stack)
            with_webhook = run()
            reviews = _answered(stack) - answered0
            cpu = cpu_seconds(pid) - cpu0
            kube.close()
            return {
                "patch_ms_without_webhook": _stats(without),
                "patch_ms_with_webhook": _stats(with_webhook),
                "reviews": reviews,
                "cloudcore_cpu_ms_per_patch_without_webhook": round(cpu_without * 1000 / patches, 2),
                "cloudcore_cpu_ms_per_patch_with_webhook": round(cpu * 1000 / patches, 2),
                "cloudcore_rss_mb": rss_mb(pid),
            }
        finally:
            stack.stop_all()


def _refused(kube: Any, path: str, ops: list[dict[str, Any]]) -> bool:
    from kubeclient import JSON_PATCH, ApiError

    try:
        kube.request("PATCH", path, body=ops, query={"dryRun": "All"}, content_type=JSON_PATCH)
    except ApiError as exc:
        return exc.status == 422
    return False


def _answered(stack: Any) -> int:
    samples = stack.samples("cloudcore")
    return int(sum(v for k, v in samples.items() if k.startswith("cloudcore_webhook_reviews_total")))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.webhook", description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=5000, help="in-process answers per case")
    p.add_argument("--https-rounds", type=int, default=1000)
    p.add_argument("--patches", type=int, default=200, help="Device patches on kube-apiserver per case")
    args = p.parse_args(argv)
    result: dict[str, Any] = {
        "title": "Device validating webhook (cloudcore.admission)",
        "description": (
            "The AdmissionReview answer for the example thermometer (allowed: a number for a FLOAT property; "
            'refused: "hot", a 422 Status naming the field), in process and over HTTPS on one keep-alive '
            "connection (microseconds); then Device JSON patches through the official client on "
            "kube-apiserver v1.36.2 without and with the webhook registered (milliseconds, the webhook "
            "reached by URL on 127.0.0.1), and cloudcore's CPU per patch without and with it (its informer "
            "handles every changed Device either way) and its RSS."
        ),
        "answer_us_allowed": _time_us(lambda: answer_review(_review("19"), _models), args.rounds),
        "answer_us_refused": _time_us(lambda: answer_review(_review("hot"), _models), args.rounds),
        "https_round_trip_us": asyncio.run(_over_https(args.https_rounds)),
        "real_cluster": _on_cluster(args.patches),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores shared, load {os.getloadavg()[0]:.2f}, "
        f"Python {platform.python_version()}",
    }
    write_results(RESULT, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
