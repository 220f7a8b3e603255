"""kill -9 the `kubeshore apiserver` process: acknowledged writes survive, versions keep increasing,
and a watch resumes from the last version its client saw."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

from .conftest import APIServerProcess


def _core(server: APIServerProcess) -> client.CoreV1Api:
    return client.CoreV1Api(config.new_client_from_config(config_file=str(server.kubeconfig)))


def test_kill9_restart_keeps_objects_and_versions(tmp_path: Path) -> None:
    server = APIServerProcess(tmp_path / "data")
    server.start()
    try:
        core = _core(server)
        old = core.create_namespaced_config_map("default", {"metadata": {"name": "old"}})

        def create(i: int) -> int:
            cm = core.create_namespaced_config_map(
                "default", {"metadata": {"name": f"cm-{i}"}, "data": {"i": str(i)}}
            )
            return int(cm.metadata.resource_version)

        with ThreadPoolExecutor(8) as pool:
            versions = list(pool.map(create, range(40)))
        listed = core.list_namespaced_config_map("default")
        last_seen = listed.metadata.resource_version
        server.kill9()

        server.start()
        core = _core(server)
        names = {i.metadata.name for i in core.list_namespaced_config_map("default").items}
        assert {f"cm-{i}" for i in range(40)} | {"old"} <= names
        fresh = core.create_namespaced_config_map("default", {"metadata": {"name": "fresh"}})
        assert int(fresh.metadata.resource_version) > max(versions)
        assert int(fresh.metadata.resource_version) > int(last_seen)
        # The watch a client had open resumes from the last version it saw.
        seen = [
            (e["type"], e["object"].metadata.name)
            for e in watch.Watch().stream(
                core.list_namespaced_config_map, "default", resource_version=last_seen, timeout_seconds=1
            )
        ]
        assert seen == [("ADDED", "fresh")]
        # Versions older than what the restarted server remembers are answered with 410 Gone.
        with pytest.raises(ApiException) as exc:
            for _ in watch.Watch().stream(
                core.list_namespaced_config_map,
                "default",
                resource_version=old.metadata.resource_version,
                timeout_seconds=1,
            ):
                pass
        assert exc.value.status == 410
        assert server.kubectl("get", "cm", "cm-7", "-o", "jsonpath={.data.i}").stdout == "7"
    finally:
        server.stop()
