"""Prometheus ``/metrics`` and ``/healthz``, ``/livez``, ``/readyz`` for every kubeshore process.

A deliberately small HTTP/1.1 server on asyncio streams (no aiohttp), so edgecore can serve it
without loading a web framework. Components keep their metrics on their own
``prometheus_client.CollectorRegistry`` and register named checks; processes that already run an
HTTP server (the mapper's REST API) can serve the same bodies with :func:`render_metrics` and
:meth:`HealthChecks.evaluate` instead of starting this one.

Health answers follow kube-apiserver: ``200 ok``, or ``500`` with one ``[+]name ok`` /
``[-]name failed: reason`` line per check; ``?verbose`` lists the checks when all pass.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

log = logging.getLogger(__name__)

Check = Callable[[], bool | Awaitable[bool]]
Probe = Literal["livez", "readyz", "healthz"]


def render_metrics(registry: Any) -> tuple[bytes, str]:
    """(body, content type) of the Prometheus text exposition of ``registry``."""
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    return generate_latest(registry), CONTENT_TYPE_LATEST


@dataclass
class _Check:
    name: str
    check: Check
    liveness: bool


class HealthChecks:
    """Named checks. Readiness runs all of them; liveness only those added with ``liveness=True``
    (a process that cannot reach its peer is not ready, but restarting it would not help)."""

    def __init__(self) -> None:
        self._checks: list[_Check] = []

    def add(self, name: str, check: Check, *, liveness: bool = False) -> None:
        self._checks.append(_Check(name, check, liveness))

    async def evaluate(self, probe: Probe, verbose: bool = False) -> tuple[bool, str]:
        checks = [c for c in self._checks if probe != "livez" or c.liveness]
        lines, ok = [], True
        for c in checks:
            try:
                result = c.check()
                passed = bool(await result) if inspect.isawaitable(result) else bool(result)
                reason = ""
            except Exception as exc:
                passed, reason = False, f": {exc}"
            ok &= passed
            lines.append(f"[+]{c.name} ok" if passed else f"[-]{c.name} failed{reason}")
        if ok and not verbose:
            return True, "ok"
        lines.append(f"{probe} check passed" if ok else f"{probe} check failed")
        return ok, "\n".join(lines)


class ObservabilityServer:
    """Serves ``/metrics`` and the health probes on ``host:port`` (port 0 picks a free one)."""

    def __init__(
        self, registry: Any, health: HealthChecks | None = None, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.registry = registry
        self.health = health or HealthChecks()
        self.host = host
        self.port = port
        self._server: asyncio.Server | None = None

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._handle, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("metrics and health endpoints listening", extra={"address": f"{self.host}:{self.port}"})
        return self.port

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> ObservabilityServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _respond(self, method: str, target: str) -> tuple[int, str, bytes]:
        url = urlsplit(target)
        if method not in ("GET", "HEAD"):
            return 405, "text/plain", b"method not allowed\n"
        if url.path == "/metrics":
            body, ctype = await asyncio.to_thread(render_metrics, self.registry)
            return 200, ctype, body
        probe = url.path.strip("/")
        if probe in ("livez", "readyz", "healthz"):
            ok, text = await self.health.evaluate(probe, verbose="verbose" in url.query)  # type: ignore[arg-type]
            return (200 if ok else 500), "text/plain; charset=utf-8", (text + "\n").encode()
        return 404, "text/plain", b"not found: try /metrics, /healthz, /livez or /readyz\n"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readline(), 10)
            parts = request.decode("latin-1").split()
            # Headers are read and ignored: every answer is small and the connection closes.
            while await asyncio.wait_for(reader.readline(), 10) not in (b"\r\n", b"\n", b""):
                pass
            if len(parts) != 3:
                status, ctype, body = 400, "text/plain", b"bad request\n"
            else:
                status, ctype, body = await self._respond(parts[0], parts[1])
            reason = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed"}.get(
                status, "Internal Server Error"
            )
            head = (
                f"HTTP/1.1 {status} {reason}\r\nContent-Type: {ctype}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            )
            writer.write(head.encode() + (b"" if parts[:1] == ["HEAD"] else body))
            await writer.drain()
        except (TimeoutError, ConnectionError, UnicodeDecodeError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
