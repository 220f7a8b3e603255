from typing import Any

import pytest

from nodegroup.endpointfilter import filter_endpoint_slice, filter_endpoints, owning_service_name

GROUPS = {"a1": "A", "a2": "A", "b1": "B", "loose1": None, "loose2": None}


def group_of(node: str) -> str | None:
    return GROUPS.get(node)


def service(scoped: bool) -> dict[str, Any]:
    annotations = {"apps.kubeedge.io/service-topology": "range-nodegroup"} if scoped else {}
    return {"metadata": {"name": "web", "namespace": "default", "annotations": annotations}}


def slice_(*nodes: str | None) -> dict[str, Any]:
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": "web-x",
            "namespace": "default",
            "labels": {"kubernetes.io/service-name": "web"},
        },
        "addressType": "IPv4",
        "endpoints": [{"addresses": [f"10.0.0.{i}"], "nodeName": n} for i, n in enumerate(nodes)],
        "ports": [{"name": "http", "port": 80}],
    }


def kept_nodes(obj: dict[str, Any]) -> list[str | None]:
    return [ep.get("nodeName") for ep in obj["endpoints"]]


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("a1", ["a1", "a2"]),
        ("a2", ["a1", "a2"]),
        ("b1", ["b1"]),
        ("loose1", ["loose1", "loose2"]),
        ("unknown", ["loose1", "loose2"]),
    ],
)
def test_scoped_slice_keeps_own_group(target: str, expected: list[str]) -> None:
    original = slice_("a1", "a2", "b1", "loose1", "loose2", None)
    out = filter_endpoint_slice(original, service(True), target, group_of)
    assert kept_nodes(out) == expected
    assert len(original["endpoints"]) == 6, "input untouched"


def test_unscoped_slice_passes() -> None:
    out = filter_endpoint_slice(slice_("a1", "b1"), service(False), "a1", group_of)
    assert kept_nodes(out) == ["a1", "b1"]
    assert kept_nodes(filter_endpoint_slice(slice_("a1", "b1"), None, "a1", group_of)) == ["a1", "b1"]


def test_endpoints_filtering() -> None:
    endpoints = {
        "kind": "Endpoints",
        "metadata": {"name": "web", "namespace": "default"},
        "subsets": [
            {
                "addresses": [{"ip": "1", "nodeName": "a1"}, {"ip": "2", "nodeName": "b1"}, {"ip": "3"}],
                "notReadyAddresses": [{"ip": "4", "nodeName": "a2"}],
                "ports": [{"port": 80}],
            },
            {"addresses": [{"ip": "5", "nodeName": "b1"}], "ports": [{"port": 81}]},
        ],
    }
    assert owning_service_name(endpoints) == "web"
    out = filter_endpoints(endpoints, service(True), "a2", group_of)
    assert out["subsets"] == [
        {
            "addresses": [{"ip": "1", "nodeName": "a1"}],
            "notReadyAddresses": [{"ip": "4", "nodeName": "a2"}],
            "ports": [{"port": 80}],
        }
    ]


def test_default_kubernetes_points_at_metaserver() -> None:
    kube = {
        "kind": "EndpointSlice",
        "metadata": {
            "name": "kubernetes",
            "namespace": "default",
            "labels": {"kubernetes.io/service-name": "kubernetes"},
        },
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["192.168.1.10", "192.168.1.11"]}, {"addresses": ["192.168.1.12"]}],
        "ports": [{"name": "https", "port": 6443, "protocol": "TCP"}],
    }
    out = filter_endpoint_slice(kube, None, "a1", group_of, metaserver_port=10550)
    assert out["endpoints"] == [{"addresses": ["127.0.0.1"]}]
    assert out["ports"] == [{"name": "https", "port": 10550, "protocol": "TCP"}]
    # Without a MetaServer port the slice is not rewritten.
    assert filter_endpoint_slice(kube, None, "a1", group_of)["endpoints"] == kube["endpoints"]


def test_default_kubernetes_endpoints() -> None:
    kube = {
        "kind": "Endpoints",
        "metadata": {"name": "kubernetes", "namespace": "default"},
        "subsets": [{"addresses": [{"ip": "10.1.1.1"}], "ports": [{"name": "https", "port": 6443}]}],
    }
    out = filter_endpoints(kube, None, "a1", group_of, metaserver_port=10551)
    assert out["subsets"] == [
        {"addresses": [{"ip": "127.0.0.1"}], "ports": [{"name": "https", "port": 10551}]}
    ]
