"""Discovery documents: /api, /api/v1, /apis, /apis/<group>, /apis/<group>/<version>."""

from __future__ import annotations

import hashlib
from typing import Any

from kubeapi.resources import Registry, ResourceType

_SUBRESOURCE_VERBS = ("get", "patch", "update")


def _storage_hash(t: ResourceType) -> str:
    return hashlib.sha256(f"{t.group}/{t.storage_version or t.version}/{t.kind}".encode()).hexdigest()[:12]


def resource_list(registry: Registry, group: str, version: str) -> dict[str, Any] | None:
    types = sorted(
        (t for t in registry.all() if t.group == group and t.version == version), key=lambda t: t.plural
    )
    if not types:
        return None
    resources: list[dict[str, Any]] = []
    for t in types:
        entry: dict[str, Any] = {
            "name": t.plural,
            "singularName": t.singular,
            "namespaced": t.namespaced,
            "kind": t.kind,
            "verbs": list(t.verbs),
            "storageVersionHash": _storage_hash(t),
        }
        if t.short_names:
            entry["shortNames"] = list(t.short_names)
        if t.categories:
            entry["categories"] = list(t.categories)
        resources.append(entry)
        for sub in t.subresources:
            sub_entry: dict[str, Any] = {
                "name": f"{t.plural}/{sub}",
                "singularName": "",
                "namespaced": t.namespaced,
                "kind": t.kind,
                "verbs": list(_SUBRESOURCE_VERBS),
            }
            if sub == "scale":
                sub_entry.update(group="autoscaling", version="v1", kind="Scale")
            elif sub == "binding":
                # A Binding is posted, never read back (kube-apiserver lists it so).
                sub_entry.update(kind="Binding", verbs=["create"])
            resources.append(sub_entry)
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": f"{group}/{version}" if group else version,
        "resources": resources,
    }


def _group(name: str, versions: list[str]) -> dict[str, Any]:
    entries = [{"groupVersion": f"{name}/{v}", "version": v} for v in versions]
    return {"name": name, "versions": entries, "preferredVersion": entries[0]}


def group_list(registry: Registry) -> dict[str, Any]:
    groups = registry.groups()
    return {
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": [_group(name, versions) for name, versions in sorted(groups.items()) if name],
    }


def group(registry: Registry, name: str) -> dict[str, Any] | None:
    versions = registry.groups().get(name)
    if not name or not versions:
        return None
    return {"kind": "APIGroup", "apiVersion": "v1", **_group(name, versions)}


def core_versions(server_address: str) -> dict[str, Any]:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    }
