"""Helpers shared by the node-group tests (a plain module: pytest's conftest is for fixtures)."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import pytest

from kubeshore.cli import SUBCOMMANDS

REPO = Path(__file__).resolve().parents[2]
CRDS = [
    REPO / "crds" / "nodegroups.apps.kubeedge.io.yaml",
    REPO / "crds" / "edgeapplications.apps.kubeedge.io.yaml",
]
T = TypeVar("T")


def _apiserver_missing() -> str | None:
    if "apiserver" not in SUBCOMMANDS:
        return "the embedded API server (kubeshore apiserver) is not on this branch yet"
    if not all(p.exists() for p in CRDS):
        return "crds/*.yaml for NodeGroup and EdgeApplication are not on this branch yet"
    if shutil.which("kubectl") is None:
        return "kubectl is not installed"
    return None


requires_apiserver = pytest.mark.skipif(_apiserver_missing() is not None, reason=str(_apiserver_missing()))


def kubectl(kubeconfig: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["kubectl", "--kubeconfig", str(kubeconfig), *args],
        capture_output=True,
        text=True,
        check=check,
        timeout=30,
    )


async def eventually(check: Callable[[], Awaitable[T]], within: float = 15.0, interval: float = 0.1) -> T:
    """Poll ``check`` until it returns without AssertionError; re-raise the last failure on timeout."""
    deadline = time.monotonic() + within
    while True:
        try:
            return await check()
        except AssertionError:
            if time.monotonic() > deadline:
                raise
        await asyncio.sleep(interval)
