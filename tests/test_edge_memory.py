"""edgecore loads nothing heavy it does not need (target: < 50 MB RSS; docs/channel.md "Memory").

Edge code never imports the kubernetes client, kubeclient or cloudcore; the MetaServer's HTTP side
(aiohttp, kubeapi.server) loads when the first client connects, kubeapi's write side (patches, CRD
schemas) and OpenAPI documents only when asked for; the edge stores use SQLAlchemy Core, not the
ORM. Checked on the imports alone and on a real, joined edgecore (run under bench/_importcost.py,
which reports its modules on SIGUSR1).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from _peers import mosquitto
from _stack import Stack, wait_for

ROOT = Path(__file__).resolve().parent.parent

NEVER_ON_THE_EDGE = ("kubernetes", "kubeclient", "cloudcore")
# Replaced on the edge by lighter code of our own (dmi.rpc, edgecore's MQTT client): ~9 MB together.
REPLACED = ("grpc", "paho")
LOADED_WHEN_USED = (
    "sqlalchemy.orm",
    "aiohttp",
    "yarl",
    "kubeapi.server",
    "kubeapi.openapi",
    "kubeapi._generated_schemas",
    "kubeapi.schema",
    "kubeapi.patch",
    "kubeapi.objects",
    "k8sproto",
)


def _loaded(modules: list[str] | dict[str, Any], names: tuple[str, ...]) -> list[str]:
    return sorted(m for m in modules if any(m == n or m.startswith(n + ".") for n in names))


def test_importing_edgecore_loads_nothing_heavy() -> None:
    code = (
        "import json, sys\n"
        "import edgecore.main, edgecore._node, edgecore.metamanager.metaserver, edgecore._metrics\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    modules = json.loads(out.stdout)
    assert _loaded(modules, NEVER_ON_THE_EDGE + REPLACED + LOADED_WHEN_USED) == []


def test_a_running_edgecore_loads_the_metaserver_http_side_for_its_first_client(tmp_path: Path) -> None:
    with mosquitto() as broker:
        stack = Stack(tmp_path, broker)
        try:
            stack.start_cloudcore()
            stack.join_edge()
            report = tmp_path / "imports.json"
            stack.start(
                "edgecore", sys.executable, str(ROOT / "bench" / "_importcost.py"), str(report), "--",
                "edgecore.main", "--config", str(stack.edge_dir / "edgecore.yaml"),
            )  # fmt: skip
            state = stack.edge_dir / "edgecore.json"
            wait_for(state.exists, 60, "edgecore.json")
            ready = "jsonpath={.status.conditions[?(@.type=='Ready')].status}"
            wait_for(
                lambda: stack.kubectl("get", "node", "edge-1", "-o", ready) == "True", 60, "edge-1 Ready"
            )
            pid = stack.procs["edgecore"].pid

            def modules() -> dict[str, Any]:
                report.unlink(missing_ok=True)
                stack.procs["edgecore"].send_signal(signal.SIGUSR1)
                wait_for(report.exists, 10, "import report")
                data: dict[str, Any] = json.loads(report.read_text())
                assert data["pid"] == pid
                return data["modules"]  # type: ignore[no-any-return]

            assert _loaded(modules(), NEVER_ON_THE_EDGE + REPLACED + LOADED_WHEN_USED) == []

            port = json.loads(state.read_text())["metaServerPort"]
            out = subprocess.run(
                ["kubectl", "--kubeconfig", "/dev/null", "--server", f"http://127.0.0.1:{port}",
                 "get", "services", "-n", "default", "-o", "name"],
                capture_output=True, text=True, timeout=60,
            )  # fmt: skip
            assert out.returncode == 0, out.stderr
            assert out.stdout.split() == ["service/kubernetes"]
            now = modules()
            assert "aiohttp" in now and "kubeapi.server" in now
            assert _loaded(now, NEVER_ON_THE_EDGE + REPLACED) == []
            # Reads never load the write side (patches, CRD schema admission).
            assert _loaded(now, ("kubeapi.patch", "kubeapi.schema")) == []
            # Nor Kubernetes' protobuf messages, for a client that asks in JSON.
            assert _loaded(now, ("k8sproto",)) == []
        finally:
            stack.stop_all()
