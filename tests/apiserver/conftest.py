"""Fixtures: a real `kubeshore apiserver` process, kubectl against it, and an in-process server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from cloudcore.apiserver import EmbeddedAPIServer

HERE = Path(__file__).parent
FIXTURE_CRD = HERE / "fixture_crd.yaml"


class APIServerProcess:
    """`kubeshore apiserver --port 0` in a subprocess; kill -9 and restart keep the data dir."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""

    @property
    def kubeconfig(self) -> Path:
        return self.data_dir / "admin.kubeconfig"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "kubeshore.cli",
                "apiserver",
                "--data-dir",
                str(self.data_dir),
                "--port",
                "0",
                "--log-level",
                "warning",
            ],
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stderr is not None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = self.proc.stderr.readline()
            if not line:
                raise RuntimeError(f"apiserver exited with {self.proc.wait()}")
            if "serving on" in line:
                self.url = line.split("serving on ")[1].split(";")[0]
                return
        raise RuntimeError("apiserver did not start in 60 s")

    def kill9(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
            self.proc = None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

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
