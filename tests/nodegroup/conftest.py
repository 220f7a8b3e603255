"""Fixtures for the node-group tests: a real embedded API server (subprocess) with the CRDs applied,
and the controllers running in-process against it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from nodegroup_testing import CRDS, kubectl


@pytest.fixture(scope="module")
def apiserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fresh embedded API server with the NodeGroup/EdgeApplication CRDs; yields its kubeconfig."""
    data = tmp_path_factory.mktemp("apiserver")
    log = open(data / "apiserver.log", "w")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "kubeshore.cli", "apiserver", "--data-dir", str(data), "--port", "0"],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=data,
        start_new_session=True,
    )
    kubeconfig = data / "admin.kubeconfig"
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"apiserver exited: {(data / 'apiserver.log').read_text()[-2000:]}")
            if (
                kubeconfig.exists()
                and kubectl(kubeconfig, "get", "--raw", "/version", check=False).returncode == 0
            ):
                break
            if time.monotonic() > deadline:
                raise RuntimeError("apiserver did not come up in 30 s")
            time.sleep(0.1)
        kubectl(kubeconfig, "apply", *(arg for p in CRDS for arg in ("-f", str(p))))
        deadline = time.monotonic() + 20
        while kubectl(kubeconfig, "get", "nodegroups,edgeapplications", "-A", check=False).returncode != 0:
            if time.monotonic() > deadline:
                raise RuntimeError("CRDs were not served in 20 s")
            time.sleep(0.1)
        yield kubeconfig
    finally:
        with_suppressed_kill(proc)
        log.close()


def with_suppressed_kill(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)


@pytest.fixture
async def kube(apiserver: Path) -> AsyncIterator[Any]:
    from kubeclient import Kube

    client = Kube.from_kubeconfig(str(apiserver))
    yield client
    client.close()


@pytest.fixture
async def controllers(apiserver: Path) -> AsyncIterator[None]:
    from nodegroup.app import run_controllers

    stop = asyncio.Event()
    task = asyncio.create_task(run_controllers(apiserver, stop, resync_seconds=2.0))
    yield
    stop.set()
    await asyncio.wait_for(task, timeout=10)
