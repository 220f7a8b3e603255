"""cloudcore's validating admission webhook: ``POST /validate/devices`` over HTTPS.

kube-apiserver is the only intended caller, but the port is reachable by whatever reaches the pod:
every request is bounded (body size, time to send it) and a request that is not an AdmissionReview
gets a 400 naming what is wrong. Answers come from the informer cache, never from an API call, so a
review costs no request to the API server that is waiting for it.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from typing import Any

from aiohttp import web

from cloudcore._https import serve
from cloudcore.admission._review import DEVICES_PATH, ModelLookup, ReviewError, answer_review
from kubeshore.logs import Throttled

log = logging.getLogger(__name__)
_throttled = Throttled(log)

#: kube-apiserver takes request bodies up to 3 MiB; a review carries the object and the old object.
MAX_REVIEW_BYTES = 7 * 1024 * 1024
#: seconds a caller may take to send its review (kube-apiserver's own call times out sooner)
READ_TIMEOUT = 10.0
#: seconds a review naming a DeviceModel the informer does not hold waits for it: a model and its
#: Devices applied together (``kubectl apply -f dir/``) reach the webhook before the model's watch
#: event reaches cloudcore, and would otherwise go unchecked. Well within deploy/'s timeoutSeconds 5.
MODEL_GRACE = 1.0


class WebhookServer:
    def __init__(
        self,
        model_of: ModelLookup,
        ssl_context: ssl.SSLContext | None,
        *,
        bind: str,
        port: int,
        max_body: int = MAX_REVIEW_BYTES,
        read_timeout: float = READ_TIMEOUT,
        model_grace: float = MODEL_GRACE,
    ) -> None:
        self.model_of = model_of
        self.ssl_context = ssl_context
        self.bind = bind
        self.port = port
        self.max_body = max_body
        self.read_timeout = read_timeout
        self.model_grace = model_grace
        #: reviews answered by result (allowed, refused, bad): for /metrics and the tests
        self.answered = {"allowed": 0, "refused": 0, "bad": 0}
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application(client_max_size=self.max_body)
        app.router.add_post(DEVICES_PATH, self._validate)
        self._runner, self.port = await serve(
            app, self.bind, self.port, self.ssl_context, keepalive_timeout=30
        )

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def _bad(self, status: int, reason: str, request: web.Request) -> web.Response:
        self.answered["bad"] += 1
        _throttled.warning(
            f"bad/{request.remote}", "admission webhook: %d from %s: %s", status, request.remote, reason
        )
        return web.Response(status=status, text=reason + "\n")

    async def _model_arrives(self, namespace: str, name: str) -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.model_grace
        while loop.time() < deadline:
            await asyncio.sleep(0.02)
            if self.model_of(namespace, name) is not None:
                return True
        return False

    async def _validate(self, request: web.Request) -> web.Response:
        if request.content_length is not None and request.content_length > self.max_body:
            return self._bad(413, f"AdmissionReview larger than {self.max_body} bytes", request)
        try:
            body = await asyncio.wait_for(request.read(), self.read_timeout)
        except web.HTTPRequestEntityTooLarge:
            return self._bad(413, f"AdmissionReview larger than {self.max_body} bytes", request)
        except TimeoutError:
            return self._bad(408, f"AdmissionReview not received within {self.read_timeout:g} s", request)
        missing: list[tuple[str, str]] = []

        def model_of(namespace: str, name: str) -> dict[str, Any] | None:
            model = self.model_of(namespace, name)
            if model is None:
                missing.append((namespace, name))
            return model

        try:
            answer = answer_review(body, model_of)
        except ReviewError as exc:
            return self._bad(400, f"not a valid AdmissionReview: {exc}", request)
        if missing and await self._model_arrives(*missing[0]):
            answer = answer_review(body, self.model_of)
        response = answer["response"]
        if response["allowed"]:
            self.answered["allowed"] += 1
        else:
            self.answered["refused"] += 1
            log.info("admission webhook refused %s", response["status"]["message"])
        return web.json_response(answer)
