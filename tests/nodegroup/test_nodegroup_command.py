"""The ``nodegroup-controller`` command as a user runs it: killed with -9 and restarted, it converges."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from nodegroup_testing import eventually, requires_apiserver

from nodegroup._naming import BELONGING_TO_LABEL

# The console script installed next to this interpreter, as a user runs it.
COMMAND = str(Path(sys.executable).parent / "nodegroup-controller")


@pytest.fixture
def start_controller(apiserver: Path, tmp_path: Path) -> Iterator[Any]:
    procs: list[subprocess.Popen[bytes]] = []

    def start() -> subprocess.Popen[bytes]:
        log = open(tmp_path / f"controller-{len(procs)}.log", "w")  # noqa: SIM115
        proc = subprocess.Popen(
            [COMMAND, "--kubeconfig", str(apiserver)],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
            start_new_session=True,
        )
        log.close()
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


@requires_apiserver
@pytest.mark.timeout(120)
async def test_command_survives_kill_and_restart(kube: Any, start_controller: Any) -> None:
    await kube.acreate("/api/v1/nodes", {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "cmd-a"}})
    ng = "/apis/apps.kubeedge.io/v1alpha1/nodegroups"
    group = {"apiVersion": "apps.kubeedge.io/v1alpha1", "kind": "NodeGroup", "metadata": {"name": "cmd"}}
    await kube.acreate(ng, group | {"spec": {"nodes": ["cmd-a"]}})
    proc = start_controller()

    async def label(expected: str | None) -> None:
        node = await kube.aget("/api/v1/nodes/cmd-a")
        assert (node["metadata"].get("labels") or {}).get(BELONGING_TO_LABEL) == expected

    await eventually(lambda: label("cmd"))
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)

    # While the controller is down the group lets the node go; the restarted controller catches up.
    await kube.apatch(f"{ng}/cmd", {"spec": {"nodes": []}})
    proc = start_controller()
    await eventually(lambda: label(None))

    # SIGTERM stops it cleanly.
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=15) == 0


def test_bad_kubeconfig_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "kubeconfig"
    bad.write_text("not: [a kubeconfig")
    out = subprocess.run(
        [COMMAND, "--kubeconfig", str(bad)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=30,
    )
    assert out.returncode == 2
    assert "cannot use kubeconfig" in out.stderr
