"""Row "one mapper that accepts calls and never answers: desired-value delivery to a healthy mapper
goes from 0.11 s to 15.8-18.7 s".

A hung mapper process (it reads its socket and never answers) serves three devices next to a
healthy mapper process serving one. Bounds: while the hung mapper's calls are pending, a desired
value set on the healthy device reaches its mapper within 2 s, every time; the hung mapper is
marked unhealthy (``edgecore_mapper_healthy`` 0, a log line) within 10 s and its devices' state
in DeviceStatus says ``unhealthy`` within 30 s.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from _stack import wait_for

from robustness._robust import RobustStack, device

HERE = Path(__file__).resolve().parent
DEVICES = HERE.parent / "devices"
HUNG = ["hung-1", "hung-2", "hung-3"]


def _desired_delivered(calls: Path, name: str, value: str) -> bool:
    if not calls.exists():
        return False
    for line in calls.read_text().splitlines():
        rec = json.loads(line)
        dev = (rec["msg"].get("device") or {}) if rec["call"] in ("RegisterDevice", "UpdateDevice") else {}
        if dev.get("name") != name:
            continue
        for prop in (dev.get("spec") or {}).get("properties") or []:
            if prop.get("name") == "p0" and (prop.get("desired") or {}).get("value") == value:
                return True
    return False


def _patch_desired(stack: RobustStack, name: str, value: str) -> None:
    op = [{"op": "replace", "path": "/spec/properties/0/desired/value", "value": value}]
    stack.kubectl("patch", "device", name, "-n", "default", "--type=json", "-p", json.dumps(op))


def test_a_hung_mapper_does_not_slow_the_others(stack: RobustStack) -> None:
    sock = stack.dmi_socket()
    calls = stack.tmp / "healthy-calls.jsonl"
    stack.start(
        "healthy-mapper", sys.executable, str(DEVICES / "testmapper.py"), "--edgecore-sock", sock,
        "--socket", str(stack.tmp / "healthy.sock"), "--protocol", "healthy", "--name", "healthy-mapper",
        "--record", str(calls), "--period", "1",
    )  # fmt: skip
    stack.start(
        "hung-mapper", sys.executable, str(HERE / "hungmapper.py"), "--edgecore-sock", sock,
        "--socket", str(stack.tmp / "hung.sock"),
    )  # fmt: skip
    try:
        wait_for(lambda: "registered" in stack.log("hung-mapper"), 30, "hung mapper registered")
        stack.apply_objects(
            *(device(n, protocol="hung") for n in HUNG), device("healthy-1", protocol="healthy")
        )
        wait_for(lambda: _desired_delivered(calls, "healthy-1", "0"), 60, "healthy-1 at its mapper")

        latencies = []
        for i in range(1, 4):
            # The hung mapper gets work too: its calls hang while the healthy one is served.
            for name in HUNG:
                _patch_desired(stack, name, str(100 + i))
            start = time.monotonic()
            _patch_desired(stack, "healthy-1", str(i))
            wait_for(lambda i=i: _desired_delivered(calls, "healthy-1", str(i)), 30, f"desired {i}")
            latencies.append(time.monotonic() - start)
        assert max(latencies) < 2.0, latencies

        def unhealthy() -> bool:
            return stack.samples("edgecore").get('edgecore_mapper_healthy{mapper="hung-mapper"}') == 0

        wait_for(unhealthy, 10, "hung mapper marked unhealthy")
        assert stack.samples("edgecore")['edgecore_mapper_healthy{mapper="healthy-mapper"}'] == 1
        assert any(
            "hung-mapper" in r["msg"] and "unhealthy" in r["msg"] for r in stack.edgecore_log_records()
        )
        for name in HUNG:
            wait_for(lambda name=name: stack.state(name) == "unhealthy", 30, f"{name} state unhealthy")
        print(f"desired -> healthy mapper with a hung mapper beside it: {[round(x, 2) for x in latencies]} s")
    finally:
        stack.kill9("healthy-mapper")
        stack.kill9("hung-mapper")
