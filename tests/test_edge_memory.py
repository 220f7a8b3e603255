"""edgecore loads nothing heavy it does not need (target: < 50 MB RSS; docs/channel.md "Memory").

Edge code never imports the kubernetes client, kubeclient or cloudcore; the MetaServer's HTTP side
(aiohttp, kubeapi.server) loads when the first client connects, kubeapi's write side (patches, CRD
schemas) and OpenAPI documents only when asked for; the CRD models (crds, dmi.convert) with the first
conversion for a mapper; prometheus_client with the first scrape of /metrics; the edge stores use
SQLAlchemy Core, not the ORM. Checked on the imports alone and on a real, joined edgecore (run
under bench/_importcost.py, which reports its modules on SIGUSR1).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import signal
import subprocess
import sys
import tracemalloc
import weakref
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
    # pydantic models of the CRDs (~1.5 MB): a node holds its Devices without them until a mapper
    # registers for one.
    "crds",
    "dmi.convert",
    # with http.server (~1 MB): only for a scrape of /metrics.
    "prometheus_client",
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

            # The first scrape loads prometheus_client; the node's metrics are all there.
            assert _loaded(now, ("prometheus_client",)) == []
            samples = stack.samples("edgecore")
            assert samples["edgecore_cloud_connected"] == 1.0 and "edgecore_devices" in samples
            assert "prometheus_client" in modules()
        finally:
            stack.stop_all()


def test_the_condition_type_spelled_out_for_lazy_crds_is_crds_own() -> None:
    from crds import DeviceConditionType
    from edgecore.dmiserver._registry import MAPPER_AVAILABLE

    assert DeviceConditionType.MAPPER_AVAILABLE.value == MAPPER_AVAILABLE


class _Data(dict[str, str]):
    """A ConfigMap's data that a test can hold a weak reference to (plain dicts take none)."""


async def test_metamanager_lets_go_of_a_batch_once_it_is_stored(tmp_path: Path) -> None:
    """Received objects are freed once stored and acknowledged, not kept until the next message
    arrives: a node that just received its 1,000 Devices kept the last batch (~1.7 MB) parsed."""
    from edgecore._router import ModuleRouter
    from edgecore.metamanager import EdgeStore, MetaManager
    from kubeshore.message import GROUP_RESOURCE, OP_INSERT, Message

    store = EdgeStore(tmp_path / "edge.db")
    manager = MetaManager(store, ModuleRouter())
    task = asyncio.create_task(manager.run())
    try:
        data = _Data(key="value")
        watched = weakref.ref(data)
        content = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "settings", "namespace": "default", "resourceVersion": "7"},
            "data": data,
        }
        await manager.handle(
            Message.new(
                source="edgecontroller",
                group=GROUP_RESOURCE,
                operation=OP_INSERT,
                resource="default/configmap/settings",
                content=content,
            )
        )
        del data, content
        for _ in range(1000):
            if manager.applied:
                break
            await asyncio.sleep(0.01)
        assert manager.applied == 1
        assert await store.get("core/v1/configmaps", "default", "settings") is not None
        gc.collect()
        assert watched() is None, "the stored batch is still referenced"
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        store.close()


async def test_a_burst_of_device_writes_waits_for_the_newest_write_only(tmp_path: Path) -> None:
    """At start edgecore re-applies every Device, each with a write-behind of its rows: 1,000 calls at
    once. Each waits for the newest write handed over before it, not for every one (that made ~500,000
    waiters and left ~15 MB in a restarted edgecore's RSS). Checked on the Python heap's peak."""
    from edgecore.devicetwin import Device, TwinStore

    n = 500
    store = TwinStore(tmp_path / "twin.db", flush_interval=3600)
    await store.open()
    try:
        for i in range(n):
            body = {"metadata": {"name": f"d{i}", "namespace": "default"}, "spec": {}}
            store.put_device(Device(id=f"default/d{i}", namespace="default", name=f"d{i}", body=body))
        tracemalloc.start()
        try:
            # A device's rows, then callers whose rows an earlier call took: each waits for the writes.
            await asyncio.gather(
                *(store.sync_device(f"default/d{i}") for i in range(n)),
                *(store.sync_device(f"default/d{i}") for i in range(n)),
            )
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert store.pending_rows() == 0
    finally:
        await store.close()
    # Linear: ~3 MB here; waiting for every earlier write took 138 MB.
    assert peak < 16 << 20, f"{peak / 2**20:.1f} MB of Python heap for {n} device writes"
