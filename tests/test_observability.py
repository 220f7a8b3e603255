"""The shared metrics/health endpoint and structured logging, over a real socket."""

from __future__ import annotations

import io
import json
import logging

import pytest
from _peers import http_get
from prometheus_client import CollectorRegistry, Counter

from kubeshore.logs import setup_logging
from kubeshore.observability import HealthChecks, ObservabilityServer


async def test_metrics_and_probes() -> None:
    import asyncio

    registry = CollectorRegistry()
    sent = Counter("messages_sent", "Messages sent", ["node"], registry=registry)
    sent.labels("edge-1").inc(3)
    health = HealthChecks()
    connected = {"cloud": False}
    health.add("loop", lambda: True, liveness=True)

    async def cloud() -> bool:
        return connected["cloud"]

    health.add("cloudhub", cloud)

    def broken() -> bool:
        raise RuntimeError("store closed")

    async with ObservabilityServer(registry, health) as server:
        status, body = await asyncio.to_thread(http_get, server.port, "/metrics")
        assert status == 200 and 'messages_sent_total{node="edge-1"} 3.0' in body
        assert await asyncio.to_thread(http_get, server.port, "/livez") == (200, "ok\n")
        status, body = await asyncio.to_thread(http_get, server.port, "/readyz")
        assert status == 500 and "[-]cloudhub failed" in body and "[+]loop ok" in body
        connected["cloud"] = True
        assert await asyncio.to_thread(http_get, server.port, "/readyz") == (200, "ok\n")
        status, body = await asyncio.to_thread(http_get, server.port, "/healthz?verbose")
        assert status == 200 and "[+]cloudhub ok" in body and "healthz check passed" in body
        health.add("store", broken)
        status, body = await asyncio.to_thread(http_get, server.port, "/readyz")
        assert status == 500 and "[-]store failed: store closed" in body
        assert (await asyncio.to_thread(http_get, server.port, "/nope"))[0] == 404


@pytest.fixture
def restore_logging() -> object:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield None
    root.handlers[:] = handlers
    root.setLevel(level)


def test_json_logs_carry_fields(restore_logging: object) -> None:
    out = io.StringIO()
    setup_logging("info", "json", stream=out)
    logging.getLogger("cloudcore.cloudhub").info("node connected", extra={"node": "edge-1"})
    logging.getLogger("x").debug("hidden")
    lines = out.getvalue().splitlines()
    assert len(lines) == 1
    record = json.loads(lines[0])
    assert record["level"] == "info" and record["logger"] == "cloudcore.cloudhub"
    assert record["msg"] == "node connected" and record["node"] == "edge-1"
    assert record["ts"].endswith("Z")


def test_text_logs_and_levels(restore_logging: object) -> None:
    out = io.StringIO()
    setup_logging("debug", "text", stream=out)
    logging.getLogger("edgecore").debug("twin updated", extra={"device": "default/thermo", "why": "a b"})
    line = out.getvalue().strip()
    assert ' debug edgecore twin updated device=default/thermo why="a b"' in line
    with pytest.raises(ValueError, match="log level 'loud'"):
        setup_logging("loud")
