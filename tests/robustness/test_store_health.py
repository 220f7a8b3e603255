"""Rows "the edge database's disk full: /readyz stays ok, reports answered OK but not stored" and
"read-only database at start: a 125-line traceback".

Bounds: with the database's file system full, a report is answered UNAVAILABLE (never OK) within
2,000 reports, /readyz answers 500 naming the reason, and edgecore logs it; a Device sent meanwhile
is answered "unavailable" and the cloud keeps the node's session; once space is back,
/readyz is 200 again within 30 s and reports are answered OK. A database edgecore cannot open
(read-only file system, a directory) ends edgecore with exit code 1 and one line, no traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from _stack import BIN, wait_for

from dmi.rpc import Channel, RpcError, StatusCode
from robustness._robust import RobustStack, device, report, wait_devices

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux") or os.geteuid() != 0, reason="mounts a tmpfs: Linux and root only"
)


@contextlib.contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(path: Path) -> None:
    """Write ``path`` until the file system has no space left."""
    chunk = b"\0" * 65536
    try:
        # Opening fails too when edgecore's own store already took the last blocks (its WAL grows
        # between checkpoints): the disk is full either way.
        with path.open("wb") as f:
            while True:
                f.write(chunk)
                f.flush()
    except OSError as exc:
        assert exc.errno == errno.ENOSPC, exc


async def _report_until_refused(socket: str, name: str, limit: int = 2000) -> RpcError:
    ch = Channel(socket)
    try:
        for i in range(limit):
            try:
                await report(ch, name, {"p0": str(i), "note": "x" * 512})
            except RpcError as exc:
                return exc
        raise AssertionError(f"{limit} reports answered OK on a full disk")
    finally:
        await ch.close()


def test_full_disk_fails_readiness_and_refuses_reports(stack: RobustStack) -> None:
    edge_dir = stack.tmp / "edge-disk"
    with tmpfs(stack.tmp / "disk", "3m") as disk:
        cfg_path = stack.join_edge("edge-disk", edge_dir)
        cfg = yaml.safe_load(cfg_path.read_text())
        cfg["database"]["path"] = str(disk / "edge.db")
        cfg_path.write_text(yaml.safe_dump(cfg))
        stack.start_edgecore("edgecore-disk", edge_dir)
        try:
            stack.apply_objects(device("disk-meter", node="edge-disk"))
            socket = stack.dmi_socket(edge_dir)
            asyncio.run(wait_devices(socket, ["disk-meter"]))
            assert stack.scrape("edgecore", "/readyz", edge_dir)[0] == 200

            fill(disk / "filler")
            err = asyncio.run(_report_until_refused(socket, "disk-meter"))
            assert err.code == StatusCode.UNAVAILABLE and "full" in err.details, err
            status, body = stack.scrape("edgecore", "/readyz", edge_dir)
            assert status == 500 and "[-]store-writes failed" in body and "full" in body, body
            logged = [r["msg"] for r in stack.edgecore_log_records("edgecore-disk")]
            assert any("cannot write" in m and "full" in m for m in logged), logged[-5:]
            samples = stack.samples("edgecore", edge_dir)
            assert samples["edgecore_store_write_failures_total"] >= 1

            # A Device sent to the node meanwhile cannot be stored: the node answers so, and the cloud
            # keeps the session (it used to give up on the unacknowledged node every 25 s).
            stack.apply_objects(device("disk-meter-2", node="edge-disk"))
            unavailable = 'cloudhub_refusals_total{reason="node_unavailable"}'
            wait_for(
                lambda: stack.samples("cloudcore").get(unavailable, 0) >= 1, 30, "node answers unavailable"
            )
            time.sleep(8)  # more than cloudcore's ackTimeout x (ackRetries + 1) in the suite
            assert stack.samples("edgecore", edge_dir)["edgecore_cloud_connects_total"] == 1
            assert "acknowledgements overdue" not in stack.log("cloudcore")

            (disk / "filler").unlink()
            wait_for(lambda: stack.scrape("edgecore", "/readyz", edge_dir)[0] == 200, 30, "ready again")
            asyncio.run(wait_devices(socket, ["disk-meter", "disk-meter-2"], within=60))
            assert "Traceback" not in stack.log("edgecore-disk")
        finally:
            stack.kill9("edgecore-disk")


def _edgecore_once(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "edgecore"), "--config", str(config), "--log-format", "json"],
        capture_output=True,
        text=True,
        timeout=60,
    )


def _error_lines(out: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in out.stderr.splitlines() if not line.startswith("{")]


def test_start_up_errors_are_one_line(stack: RobustStack, tmp_path: Path) -> None:
    cfg = stack.config()
    cfg["metrics"]["port"] = 0
    cfg["metaServer"]["port"] = 0
    cfg["dmi"]["socket"] = str(tmp_path / "dmi.sock")
    cfg.pop("stateFile", None)
    config = tmp_path / "edgecore.yaml"

    # A database on a read-only file system.
    with tmpfs(tmp_path / "ro", "1m") as ro:
        (ro / "edge.db").write_bytes(b"")
        (ro / "edge.db").chmod(0o600)  # as edgecore wants it: the failure is SQLite's, not a chmod
        subprocess.run(["mount", "-o", "remount,ro", str(ro)], check=True)
        cfg["database"]["path"] = str(ro / "edge.db")
        config.write_text(yaml.safe_dump(cfg))
        out = _edgecore_once(config)
    assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr
    lines = _error_lines(out)
    assert len(lines) == 1 and "cannot open database" in lines[0] and "read-only" in lines[0], lines

    # A directory where the database file should be.
    (tmp_path / "db").mkdir(mode=0o700)
    cfg["database"]["path"] = str(tmp_path / "db")
    config.write_text(yaml.safe_dump(cfg))
    out = _edgecore_once(config)
    assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr
    lines = _error_lines(out)
    assert len(lines) == 1 and "is a directory" in lines[0], lines

    # A DMI socket where no directory can be made.
    cfg["database"]["path"] = str(tmp_path / "edge.db")
    cfg["dmi"]["socket"] = "/proc/kubeshore-robustness/dmi.sock"
    config.write_text(yaml.safe_dump(cfg))
    out = _edgecore_once(config)
    assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr
    lines = _error_lines(out)
    assert len(lines) == 1 and "/proc/kubeshore-robustness" in lines[0], lines
    cfg["dmi"]["socket"] = str(tmp_path / "dmi.sock")

    # A database file edgecore must tighten (mode 0644) on a read-only file system.
    with tmpfs(tmp_path / "ro2", "1m") as ro:
        (ro / "edge.db").write_bytes(b"")
        (ro / "edge.db").chmod(0o644)
        subprocess.run(["mount", "-o", "remount,ro", str(ro)], check=True)
        cfg["database"]["path"] = str(ro / "edge.db")
        config.write_text(yaml.safe_dump(cfg))
        out = _edgecore_once(config)
    assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr
    lines = _error_lines(out)
    assert len(lines) == 1 and "read-only" in lines[0].lower() and "edge.db" in lines[0], lines
