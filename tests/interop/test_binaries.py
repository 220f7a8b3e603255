"""The lane's own precondition: KubeEdge's binaries unpack and run on this machine."""

from __future__ import annotations

import subprocess
from pathlib import Path


def test_kubeedge_binaries_run(kubeedge_bin: Path) -> None:
    kinds = {"edgecore": "edgecore.config.kubeedge.io", "cloudcore": "cloudcore.config.kubeedge.io"}
    for name, kind in kinds.items():
        out = subprocess.run(
            [str(kubeedge_bin / name), "--defaultconfig"], capture_output=True, text=True, timeout=30
        )
        assert kind in out.stdout, out.stderr[-500:]
