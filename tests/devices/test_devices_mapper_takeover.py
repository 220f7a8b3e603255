"""A mapper that comes back under a new name for the same protocol (moved from a host process to a
Pod, or renamed) takes over the devices; the old registration is dropped and stays dropped across
an edgecore restart; a mapper that cannot reach edgecore is alive but not ready.

Real processes: standalone cloudcore (embedded API server), kubeshore join + edgecore, mosquitto and
two of the SDK's virtual mappers (``kubeshore mapper run virtual --name ...``), killed with -9.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from _peers import free_port, http_get, mosquitto
from _stack import Stack, wait_for

pytest.importorskip("cloudcore.apiserver", reason="standalone mode needs the embedded API server")
pytest.importorskip("mappers.virtual", reason="needs the mapper SDK")
pytestmark = pytest.mark.slow

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
DEVICE = "default/thermometer-1"


def _example(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((EXAMPLES / name).read_text())
    return doc


class _Stack(Stack):
    def start_mapper(self, name: str, rest_port: int, edgecore_sock: Path | None = None) -> None:
        self.start(
            name, str(Path(sys.executable).parent / "kubeshore"), "mapper", "run", "virtual", "--name", name,
            "--edgecore-sock", str(edgecore_sock or self.edge_dir / "dmi.sock"),
            "--socket", str(self.tmp / f"{name}.sock"), "--rest-port", str(rest_port),
        )  # fmt: skip

    def last_report_ms(self) -> int:
        rows = self.edge_rows(f"select max(actual_ts) from device_twin where device_id = '{DEVICE}'")
        return int(rows[0][0] or 0)

    def mappers(self) -> set[str]:
        return {r[0] for r in self.edge_rows("select name from device_mapper")}

    def mapper_available(self) -> dict[str, Any]:
        return dict(self.conditions("devicestatus", "thermometer-1").get("MapperAvailable") or {})

    def served_by(self, mapper: str) -> bool:
        cond = self.mapper_available()
        return cond.get("status") == "True" and f"mapper {mapper} " in cond.get("message", "")

    def reports_after(self, since_ms: int, what: str) -> int:
        return int(wait_for(lambda: (ts := self.last_report_ms()) > since_ms and ts, 60, what))


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[_Stack]:
    with mosquitto() as broker:
        s = _Stack(tmp_path, broker)
        try:
            yield s
        finally:
            s.stop_all()


def test_a_renamed_mapper_takes_over_and_a_dead_one_gets_nothing(stack: _Stack) -> None:
    stack.start_cloudcore()
    stack.join_edge()
    stack.start_edgecore()
    stack.apply(json.dumps(_example("devicemodel-virtual-thermometer.yaml")))
    stack.apply(json.dumps(_example("device-virtual-thermometer.yaml")))

    # A mapper whose DMI socket path is wrong: alive, not ready, saying why; KubeEdge's ping is 200.
    lost_port = free_port()
    stack.start_mapper("virtual-lost", lost_port, edgecore_sock=stack.tmp / "nowhere" / "dmi.sock")
    status, body = wait_for(lambda: (r := http_get(lost_port, "/readyz"))[0] != 0 and r, 30, "lost /readyz")
    assert status == 503 and "cannot register with edgecore" in body and "nowhere" in body, body
    assert http_get(lost_port, "/livez")[0] == 200
    assert http_get(lost_port, "/api/v1/ping")[0] == 200
    stack.kill9("virtual-lost")

    # Mapper A, as a host process, serves the device.
    host_port = free_port()
    stack.start_mapper("virtual-host", host_port)
    wait_for(lambda: stack.served_by("virtual-host"), 60, "MapperAvailable by virtual-host")
    first = stack.reports_after(0, "reports through virtual-host")
    assert http_get(host_port, "/readyz")[0] == 200

    # A goes for good; B, the same protocol under another name (the Pod), takes the device over.
    stack.kill9("virtual-host")
    gone = stack.last_report_ms()
    assert gone >= first
    pod_port = free_port()
    stack.start_mapper("virtual-pod", pod_port)
    wait_for(lambda: http_get(pod_port, "/readyz")[0] == 200, 30, "virtual-pod ready")
    stack.reports_after(gone, "reports through virtual-pod")
    wait_for(lambda: stack.served_by("virtual-pod"), 60, "MapperAvailable by virtual-pod")
    # A's registration was unreachable and replaced: dropped from the edge store.
    wait_for(lambda: stack.mappers() == {"virtual-pod"}, 30, "virtual-host dropped")

    # edgecore restarts: B still has the device, and nothing is sent to A's dead socket.
    stack.kill9("edgecore")
    before = stack.last_report_ms()
    stack.start_edgecore()
    stack.reports_after(before, "reports through virtual-pod after the edgecore restart")
    assert stack.mappers() == {"virtual-pod"}
    assert stack.served_by("virtual-pod"), stack.mapper_available()
    log = stack.log("edgecore")
    restart = log.rindex("restored ")
    assert "virtual-host" not in log[restart:], log[restart:]
