"""The official `kubernetes` Python client against an in-process embedded server."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
import yaml
from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

from cloudcore.apiserver import EmbeddedAPIServer

from .conftest import FIXTURE_CRD


def _api(server: EmbeddedAPIServer) -> client.ApiClient:
    return config.new_client_from_config(config_file=str(server.kubeconfig))


def _wait(predicate: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("condition not reached in time")


async def test_crud_and_conflict(embedded: EmbeddedAPIServer) -> None:
    def scenario() -> None:
        core = client.CoreV1Api(_api(embedded))
        created = core.create_namespaced_config_map(
            "default", {"metadata": {"name": "c1"}, "data": {"a": "1"}}
        )
        assert created.metadata.uid and created.metadata.creation_timestamp
        rv1 = int(created.metadata.resource_version)
        got = core.read_namespaced_config_map("c1", "default")
        assert got.data == {"a": "1"}
        got.data["b"] = "2"
        updated = core.replace_namespaced_config_map("c1", "default", got)
        assert int(updated.metadata.resource_version) > rv1
        # A write based on the stale version is refused with 409 Conflict.
        with pytest.raises(ApiException) as exc:
            core.replace_namespaced_config_map("c1", "default", got)
        assert exc.value.status == 409
        assert "the object has been modified" in exc.value.body
        with pytest.raises(ApiException) as exc:
            core.create_namespaced_config_map("default", {"metadata": {"name": "c1"}})
        assert exc.value.status == 409 and "already exists" in exc.value.body
        patched = core.patch_namespaced_config_map("c1", "default", {"data": {"c": "3"}})
        assert patched.data == {"a": "1", "b": "2", "c": "3"}
        listed = core.list_namespaced_config_map("default")
        assert [i.metadata.name for i in listed.items] == ["c1"]
        gen = core.create_namespaced_config_map("default", {"metadata": {"generateName": "gen-"}})
        assert gen.metadata.name.startswith("gen-") and len(gen.metadata.name) == 9
        dry = core.create_namespaced_config_map("default", {"metadata": {"name": "dry"}}, dry_run="All")
        assert dry.metadata.name == "dry"
        with pytest.raises(ApiException) as exc:
            core.read_namespaced_config_map("dry", "default")
        assert exc.value.status == 404
        with pytest.raises(ApiException) as exc:
            core.create_namespaced_config_map("nowhere", {"metadata": {"name": "x"}})
        assert exc.value.status == 404 and 'namespaces \\"nowhere\\" not found' in exc.value.body
        core.delete_namespaced_config_map("c1", "default")
        with pytest.raises(ApiException) as exc:
            core.read_namespaced_config_map("c1", "default")
        assert exc.value.status == 404
        pages = [
            core.create_namespaced_config_map("default", {"metadata": {"name": f"page-{i:02d}"}})
            for i in range(7)
        ]
        first = core.list_namespaced_config_map("default", limit=3, label_selector="")
        assert len(first.items) == 3 and first.metadata._continue
        names = [i.metadata.name for i in first.items]
        token = first.metadata._continue
        while token:
            page = core.list_namespaced_config_map("default", limit=3, _continue=token)
            names += [i.metadata.name for i in page.items]
            token = page.metadata._continue
        assert [n for n in names if n.startswith("page-")] == [p.metadata.name for p in pages]
        core.delete_collection_namespaced_config_map("default", field_selector="metadata.name=page-00")
        assert (
            len(
                [
                    i
                    for i in core.list_namespaced_config_map("default").items
                    if i.metadata.name.startswith("page-")
                ]
            )
            == 6
        )

    await asyncio.to_thread(scenario)


async def test_custom_resources_and_status(embedded: EmbeddedAPIServer) -> None:
    def scenario() -> None:
        api = _api(embedded)
        ext = client.ApiextensionsV1Api(api)
        ext.create_custom_resource_definition(yaml.safe_load(FIXTURE_CRD.read_text()))
        custom = client.CustomObjectsApi(api)
        args = ("example.kubeshore.io", "v1", "default", "widgets")

        def established() -> bool:
            try:
                custom.list_namespaced_custom_object(*args)
            except ApiException:
                return False
            return True

        start = time.monotonic()
        _wait(established, 1.0)
        assert time.monotonic() - start < 1.0
        body = {
            "apiVersion": "example.kubeshore.io/v1",
            "kind": "Widget",
            "metadata": {"name": "a"},
            "spec": {"color": "red"},
            "status": {"phase": "ignored"},
        }
        obj = custom.create_namespaced_custom_object(*args, body)
        assert "status" not in obj and obj["metadata"]["generation"] == 1
        obj = custom.patch_namespaced_custom_object_status(
            *args, "a", {"status": {"phase": "Ready"}, "spec": {"color": "blue"}}
        )
        assert obj["status"] == {"phase": "Ready"} and obj["spec"]["color"] == "red"
        assert obj["metadata"]["generation"] == 1
        obj["spec"]["color"] = "green"
        obj["status"] = {"phase": "Lost"}
        obj = custom.replace_namespaced_custom_object(*args, "a", obj)
        assert obj["spec"]["color"] == "green" and obj["status"] == {"phase": "Ready"}
        assert obj["metadata"]["generation"] == 2
        # Deleting the CRD removes its resource and objects.
        ext.delete_custom_resource_definition("widgets.example.kubeshore.io")
        _wait(lambda: not established())
        with pytest.raises(ApiException) as exc:
            ext.read_custom_resource_definition("widgets.example.kubeshore.io")
        assert exc.value.status == 404

    await asyncio.to_thread(scenario)


async def test_watch_resume_and_gone(embedded: EmbeddedAPIServer) -> None:
    def scenario() -> None:
        core = client.CoreV1Api(_api(embedded))
        first = core.create_namespaced_config_map(
            "default", {"metadata": {"name": "w0", "labels": {"k": "v"}}}
        )
        rv = first.metadata.resource_version
        core.create_namespaced_config_map("default", {"metadata": {"name": "w1", "labels": {"k": "v"}}})
        core.patch_namespaced_config_map("w1", "default", {"data": {"x": "1"}})
        core.delete_namespaced_config_map("w0", "default")
        seen = []
        for event in watch.Watch().stream(
            core.list_namespaced_config_map, "default", resource_version=rv, timeout_seconds=1
        ):
            seen.append((event["type"], event["object"].metadata.name))
        assert seen == [("ADDED", "w1"), ("MODIFIED", "w1"), ("DELETED", "w0")]
        # A label selector turns a change that leaves the selection into DELETED.
        rv2 = core.list_namespaced_config_map("default").metadata.resource_version
        core.patch_namespaced_config_map("w1", "default", {"metadata": {"labels": {"k": "other"}}})
        seen = [
            (e["type"], e["object"].metadata.name)
            for e in watch.Watch().stream(
                core.list_namespaced_config_map,
                "default",
                resource_version=rv2,
                label_selector="k=v",
                timeout_seconds=1,
            )
        ]
        assert seen == [("DELETED", "w1")]
        # Once more than the event log holds has happened, the old version is gone: 410.
        for i in range(220):
            core.patch_namespaced_config_map("w1", "default", {"data": {"x": str(i)}})
        with pytest.raises(ApiException) as exc:
            for _ in watch.Watch().stream(
                core.list_namespaced_config_map, "default", resource_version=rv, timeout_seconds=1
            ):
                pass
        assert exc.value.status == 410
        # Bookmarks arrive when asked for.
        stream = watch.Watch().stream(
            core.list_namespaced_config_map,
            "default",
            allow_watch_bookmarks=True,
            timeout_seconds=2,
            resource_version=core.list_namespaced_config_map("default").metadata.resource_version,
            _preload_content=False,
        )
        assert any(e["type"] == "BOOKMARK" for e in stream)

    await asyncio.to_thread(scenario)


async def test_garbage_collection(embedded: EmbeddedAPIServer) -> None:
    def scenario() -> None:
        core = client.CoreV1Api(_api(embedded))

        def make_family(owner_name: str) -> tuple[Any, list[str]]:
            owner = core.create_namespaced_config_map("default", {"metadata": {"name": owner_name}})
            ref = {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "name": owner_name,
                "uid": owner.metadata.uid,
                "blockOwnerDeletion": True,
            }
            names = [f"{owner_name}-dep{i}" for i in range(2)]
            for n in names:
                core.create_namespaced_secret("default", {"metadata": {"name": n, "ownerReferences": [ref]}})
            return owner, names

        def exists(kind: str, name: str) -> bool:
            try:
                (core.read_namespaced_secret if kind == "secret" else core.read_namespaced_config_map)(
                    name, "default"
                )
            except ApiException as exc:
                assert exc.status == 404
                return False
            return True

        _, deps = make_family("bg")
        core.delete_namespaced_config_map("bg", "default", propagation_policy="Background")
        _wait(lambda: not any(exists("secret", d) for d in deps))

        _, deps = make_family("fg")
        core.delete_namespaced_config_map("fg", "default", propagation_policy="Foreground")
        _wait(lambda: not exists("configmap", "fg") and not any(exists("secret", d) for d in deps))

        _, deps = make_family("orph")
        core.delete_namespaced_config_map("orph", "default", propagation_policy="Orphan")
        _wait(lambda: not exists("configmap", "orph"))
        time.sleep(0.3)
        for d in deps:
            assert core.read_namespaced_secret(d, "default").metadata.owner_references is None

    await asyncio.to_thread(scenario)


async def test_namespace_deletion_removes_contents(embedded: EmbeddedAPIServer) -> None:
    def scenario() -> None:
        core = client.CoreV1Api(_api(embedded))
        core.create_namespace({"metadata": {"name": "doomed"}})
        core.create_namespaced_config_map("doomed", {"metadata": {"name": "c"}})
        core.delete_namespace("doomed")

        def gone() -> bool:
            try:
                core.read_namespace("doomed")
            except ApiException:
                return True
            return False

        _wait(gone)
        with pytest.raises(ApiException) as exc:
            core.read_namespaced_config_map("c", "doomed")
        assert exc.value.status == 404

    await asyncio.to_thread(scenario)
