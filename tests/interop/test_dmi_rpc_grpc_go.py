"""grpc-go (KubeEdge's ``dmiload``: one gRPC connection, many workers, one ``ReportDeviceStatus`` per
call) against a bare ``dmi.rpc`` server process: every call answered OK, with the server's stream
limit far below grpc-go's 64 workers: grpc-go keeps to the SETTINGS_MAX_CONCURRENT_STREAMS we advertise
(no stream refused; it would retry refused ones silently, so the server counts them), and the server's
memory stays bounded."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from _stack import Processes, wait_for

from bench._measure import peak_rss_mb

LIMITS_SERVER = Path(__file__).resolve().parents[1] / "dmirpc" / "limits_server.py"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Processes]]:
    procs = Processes(tmp_path)
    path = str(tmp_path / "dmi.sock")
    procs.start("server", sys.executable, str(LIMITS_SERVER), path, "8")
    try:
        wait_for(lambda: "ready" in procs.log("server"), 30, "the dmi.rpc server to listen")
        yield path, procs
    finally:
        procs.stop_all()


def test_grpc_go_dmiload_against_a_dmi_rpc_server(kubeedge_bin: Path, server: tuple[str, Processes]) -> None:
    path, procs = server
    proc = procs.procs["server"]
    out = subprocess.run(
        [str(kubeedge_bin / "dmiload"), "-sock", path, "-rate", "1500", "-duration", "4s",
         "-devices", "200", "-device-prefix", "dev-", "-props", "temp,humidity", "-workers", "64"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    assert summary["failed"] == 0, summary
    assert summary["ok"] == summary["offered"] > 3000, summary
    assert peak_rss_mb(proc.pid) < 80
    proc.terminate()
    proc.wait(10)
    counters = json.loads(procs.log("server").strip().splitlines()[-1])
    assert counters == {"refused_streams": 0}  # grpc-go kept to the 8 streams we advertised
