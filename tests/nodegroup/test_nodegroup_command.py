"""The ``nodegroup-controller`` command as a user runs it: killed with -9 and restarted, it converges."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from nodegroup_testing import eventually, requires_apiserver

from nodegroup._naming import BELONGING_TO_LABEL
from up.processes import Processes

# The console script installed next to this interpreter, as a user runs it.
COMMAND = str(Path(sys.executable).parent / "nodegroup-controller")


@pytest.fixture
def controller(tmp_path: Path) -> Iterator[Processes]:
    procs = Processes(tmp_path)
    yield procs
    procs.stop_all()


@requires_apiserver
@pytest.mark.timeout(120)
async def test_command_survives_kill_and_restart(kube: Any, apiserver: Path, controller: Processes) -> None:
    await kube.acreate("/api/v1/nodes", {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "cmd-a"}})
    ng = "/apis/apps.kubeedge.io/v1alpha1/nodegroups"
    group = {"apiVersion": "apps.kubeedge.io/v1alpha1", "kind": "NodeGroup", "metadata": {"name": "cmd"}}
    await kube.acreate(ng, group | {"spec": {"nodes": ["cmd-a"]}})
    controller.start("controller", COMMAND, "--kubeconfig", str(apiserver))

    async def label(expected: str | None) -> None:
        node = await kube.aget("/api/v1/nodes/cmd-a")
        assert (node["metadata"].get("labels") or {}).get(BELONGING_TO_LABEL) == expected

    await eventually(lambda: label("cmd"))
    controller.kill9("controller")

    # While the controller is down the group lets the node go; the restarted controller catches up.
    await kube.apatch(f"{ng}/cmd", {"spec": {"nodes": []}})
    proc = controller.start("controller", COMMAND, "--kubeconfig", str(apiserver))
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
