"""Liveness, readiness and startup probes (exec, httpGet, tcpSocket), run as the kubelet runs them."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from dmi.rpc import RpcError
from edgecore.edged._runtime import Runtime

Obj = dict[str, Any]


def _port(value: Any, container: Obj) -> int:
    if isinstance(value, int) or (isinstance(value, str) and value.isdigit()):
        return int(value)
    for p in container.get("ports") or []:
        if p.get("name") == value:
            return int(p.get("containerPort", 0))
    raise ValueError(f"port {value!r} is not a number nor a named port of the container")


async def _http_get(probe: Obj, container: Obj, pod_ip: str, seconds: float) -> tuple[bool, str]:
    h = probe["httpGet"]
    host = h.get("host") or pod_ip or "127.0.0.1"
    port = _port(h.get("port"), container)
    if h.get("scheme", "HTTP").upper() != "HTTP":
        return False, "HTTPS probes are not supported on this node"
    path = h.get("path") or "/"
    headers = "".join(f"{x.get('name')}: {x.get('value')}\r\n" for x in h.get("httpHeaders") or [])
    request = (
        f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: kube-probe/1.36\r\n"
        f"Accept: */*\r\nConnection: close\r\n{headers}\r\n"
    ).encode()
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), seconds)
    try:
        writer.write(request)
        line = await asyncio.wait_for(reader.readline(), seconds)
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()
    parts = line.decode("latin-1").split()
    code = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
    if 200 <= code < 400:
        return True, ""
    return False, f"HTTP probe failed with statuscode: {code}"


async def probe_once(
    probe: Obj, runtime: Runtime, container: Obj, container_id: str, pod_ip: str
) -> tuple[bool, str]:
    """One probe: (success, message)."""
    timeout = float(probe.get("timeoutSeconds") or 1)
    try:
        if "exec" in probe:
            resp = await runtime.exec_sync(
                container_id, list(probe["exec"].get("command") or []), int(timeout)
            )
            if resp.exit_code == 0:
                return True, ""
            out = (resp.stdout + resp.stderr).decode(errors="replace").strip()[:256]
            return False, f"command exited with {resp.exit_code}: {out}"
        if "httpGet" in probe:
            return await _http_get(probe, container, pod_ip, timeout)
        if "tcpSocket" in probe:
            t = probe["tcpSocket"]
            host = t.get("host") or pod_ip or "127.0.0.1"
            port = _port(t.get("port"), container)
            _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
            writer.close()
            return True, ""
        return False, "probe type not supported on this node (exec, httpGet and tcpSocket are)"
    except (OSError, TimeoutError, ValueError, RpcError) as exc:
        return False, f"{type(exc).__name__}: {exc}"


@dataclass
class ProbeState:
    """Results of one probe of one container instance, with the kubelet's thresholds."""

    probe: Obj
    result: bool | None = None  # None until the first verdict
    successes: int = 0
    failures: int = 0
    message: str = ""
    changed_at: float = field(default_factory=time.monotonic)

    def record(self, ok: bool, message: str) -> bool:
        """Count one outcome; True when the verdict flipped."""
        if ok:
            self.successes += 1
            self.failures = 0
        else:
            self.failures += 1
            self.successes = 0
        self.message = message
        verdict = self.result
        if ok and self.successes >= int(self.probe.get("successThreshold") or 1):
            verdict = True
        elif not ok and self.failures >= int(self.probe.get("failureThreshold") or 3):
            verdict = False
        if verdict != self.result:
            self.result = verdict
            self.changed_at = time.monotonic()
            return True
        return False


class ContainerProber:
    """Runs a container instance's startup, liveness and readiness probes until cancelled.

    ``on_change`` is called when a verdict flips, so the pod worker recomputes status (readiness) or
    restarts the container (liveness failure)."""

    def __init__(
        self,
        runtime: Runtime,
        container: Obj,
        container_id: str,
        pod_ip: str,
        on_change: Callable[[], None],
    ) -> None:
        self.runtime = runtime
        self.container = container
        self.container_id = container_id
        self.pod_ip = pod_ip
        self.on_change = on_change
        self.states = {
            kind: ProbeState(container[f"{kind}Probe"])
            for kind in ("startup", "liveness", "readiness")
            if container.get(f"{kind}Probe")
        }
        self._tasks = [asyncio.create_task(self._loop(kind)) for kind in self.states]

    @property
    def started(self) -> bool:
        s = self.states.get("startup")
        return s is None or s.result is True

    @property
    def ready(self) -> bool:
        if not self.started:
            return False
        r = self.states.get("readiness")
        return r is None or r.result is True

    @property
    def live(self) -> bool:
        s = self.states.get("startup")
        if s is not None and s.result is False:
            return False
        lv = self.states.get("liveness")
        return lv is None or lv.result is not False

    def failure_message(self) -> str:
        for kind in ("startup", "liveness"):
            s = self.states.get(kind)
            if s is not None and s.result is False:
                return f"{kind.capitalize()} probe failed: {s.message}"
        return ""

    async def _loop(self, kind: str) -> None:
        state = self.states[kind]
        await asyncio.sleep(float(state.probe.get("initialDelaySeconds") or 0))
        period = float(state.probe.get("periodSeconds") or 10)
        while True:
            if kind != "startup" and not self.started:
                await asyncio.sleep(min(period, 1.0))
                continue
            if kind == "startup" and state.result is True:
                return
            ok, message = await probe_once(
                state.probe, self.runtime, self.container, self.container_id, self.pod_ip
            )
            if state.record(ok, message):
                self.on_change()
            await asyncio.sleep(period)

    def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
