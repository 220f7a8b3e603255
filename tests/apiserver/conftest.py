"""Fixtures: a real `kubeshore apiserver` process, kubectl against it, and an in-process server."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from _stack import start_apiserver

from cloudcore.apiserver import EmbeddedAPIServer
from up.processes import Processes

HERE = Path(__file__).parent
FIXTURE_CRD = HERE / "fixture_crd.yaml"


class APIServerProcess:
    """`kubeshore apiserver --port 0` in a subprocess; kill -9 and restart keep the data dir."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        # The log beside the data directory, which the server creates with its own modes.
        self.processes = Processes(data_dir.parent)
        self.name = f"{data_dir.name}-apiserver"
        self.url = ""

    @property
    def kubeconfig(self) -> Path:
        return self.data_dir / "admin.kubeconfig"

    def start(self) -> None:
        self.url = start_apiserver(self.processes, self.data_dir, "--log-level", "warning", name=self.name)

    def kill9(self) -> None:
        self.processes.kill9(self.name)

    def stop(self) -> None:
        self.processes.stop_all(grace=10)

    def kubectl(
        self,
        *args: str,
        input: str | None = None,
        check: bool = True,
        env: dict[str, str] | None = None,
        timeout: float = 30,
    ) -> subprocess.CompletedProcess[str]:
        full_env = {**self.env(), **(env or {})}
        out = subprocess.run(
            ["kubectl", *args], input=input, capture_output=True, text=True, env=full_env, timeout=timeout
        )
        if check and out.returncode != 0:
            raise AssertionError(
                f"kubectl {' '.join(args)} failed ({out.returncode}):\n{out.stdout}\n{out.stderr}"
            )
        return out

    def env(self) -> dict[str, str]:
        """Environment for kubectl: this server's kubeconfig and a discovery cache of its own."""
        return {
            **os.environ,
            "KUBECONFIG": str(self.kubeconfig),
            "KUBECACHEDIR": str(self.data_dir / "kubecache"),
        }

    def kubectl_json(self, *args: str) -> Any:
        return json.loads(self.kubectl(*args, "-o", "json").stdout)


@pytest.fixture(scope="module")
def apiserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[APIServerProcess]:
    server = APIServerProcess(tmp_path_factory.mktemp("apiserver"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def embedded(tmp_path: Path) -> AsyncIterator[EmbeddedAPIServer]:
    async with EmbeddedAPIServer(
        tmp_path / "data", port=0, event_log_size=200, bookmark_interval=0.5
    ) as server:
        yield server
