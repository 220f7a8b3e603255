"""Fixtures for the node-group tests: a real embedded API server (subprocess) with the CRDs applied,
and the controllers running in-process against it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from _stack import start_apiserver
from nodegroup_testing import CRDS, kubectl

from up.processes import Processes


@pytest.fixture(scope="module")
def apiserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fresh embedded API server with the NodeGroup/EdgeApplication CRDs; yields its kubeconfig."""
    data = tmp_path_factory.mktemp("apiserver")
    procs = Processes(data, cwd=data)
    kubeconfig = data / "admin.kubeconfig"
    try:
        start_apiserver(procs, data)
        kubectl(kubeconfig, "apply", *(arg for p in CRDS for arg in ("-f", str(p))))
        deadline = time.monotonic() + 20
        while kubectl(kubeconfig, "get", "nodegroups,edgeapplications", "-A", check=False).returncode != 0:
            if time.monotonic() > deadline:
                raise RuntimeError("CRDs were not served in 20 s")
            time.sleep(0.1)
        yield kubeconfig
    finally:
        procs.stop_all()


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
