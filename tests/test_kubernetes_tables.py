"""The tables Kubernetes defines (built-in schemas, strategic-merge lists, embedded structs): generated
by ``python -m kubeapi.generate`` from kube-apiserver's OpenAPI (fresh: tests/test_codegen.py), agreeing
with the ``+patchStrategy``/``+patchMergeKey`` tags of Kubernetes' protobuf definitions. (That the
committed spec is what a real kube-apiserver publishes is checked in tests/realk8s/test_api_parity.py.)"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from kubeapi import generate
from kubeapi.builtins import builtin_types
from kubeapi.patch import STRATEGIC_MERGE_LISTS, MergeList

needs_protos = pytest.mark.skipif(
    not generate.PROTO_ROOT.is_dir(), reason=f"no Kubernetes protos in {generate.PROTO_ROOT}"
)


def test_every_served_kind_has_its_tables() -> None:
    from kubeapi import _generated_schemas

    for t in builtin_types():
        gvk = (t.group, t.version, t.kind)
        assert gvk in _generated_schemas.DEFINITIONS and gvk in STRATEGIC_MERGE_LISTS, gvk
        assert STRATEGIC_MERGE_LISTS[gvk]["metadata.ownerReferences"] == MergeList("uid")
    assert ("autoscaling", "v1", "Scale") in _generated_schemas.DEFINITIONS


def test_merge_lists_from_the_spec() -> None:
    pod = STRATEGIC_MERGE_LISTS[("", "v1", "Pod")]
    assert pod["spec.containers"] == MergeList("name")
    assert pod["spec.containers[].ports"] == MergeList("containerPort")
    assert pod["spec.volumes"] == MergeList("name", retain_keys=True)
    assert pod["metadata.finalizers"] == MergeList(None)
    # Lists the hand-kept table had missed.
    assert pod["status.containerStatuses[].volumeMounts"] == MergeList("mountPath")
    assert pod["status.resourceClaimStatuses"] == MergeList("name", retain_keys=True)
    deployment = STRATEGIC_MERGE_LISTS[("apps", "v1", "Deployment")]
    assert deployment["spec.template.spec.initContainers[].env"] == MergeList("name")
    assert "spec.template.spec.containers[].args" not in deployment  # replaced, not merged
    crd = STRATEGIC_MERGE_LISTS[("apiextensions.k8s.io", "v1", "CustomResourceDefinition")]
    # JSONSchemaProps refers to itself: the walk stops there instead of recursing forever.
    assert [p for p in crd if "x-kubernetes-validations" in p] == [
        "spec.versions[].schema.openAPIV3Schema.x-kubernetes-validations"
    ]


def _spec(schemas: dict[str, Any]) -> dict[str, Any]:
    return {"info": {"version": "v0"}, "components": {"schemas": schemas}}


def test_a_merged_list_of_objects_needs_a_merge_key() -> None:
    schemas = {
        "T": {"type": "object", "properties": {"items": {"type": "array", "items": {"$ref": "#/x/I"}}}},
        "I": {"type": "object", "properties": {"name": {"type": "string"}}},
    }
    schemas["T"]["properties"]["items"]["x-kubernetes-patch-strategy"] = "merge"
    with pytest.raises(generate.GenerationError, match="without a merge key"):
        generate.merge_lists("T", schemas)
    schemas["T"]["properties"]["items"]["x-kubernetes-patch-merge-key"] = "name"
    assert generate.merge_lists("T", schemas) == {"items": ("name", False)}


def test_a_kind_missing_from_the_spec_says_to_fetch() -> None:
    with pytest.raises(generate.GenerationError, match="--fetch"):
        generate.definitions_by_kind({}, [("", "v1", "Pod")])


@needs_protos
def test_patch_metadata_agrees_with_the_protobuf_tags() -> None:
    spec = generate.load_spec()
    assert generate.proto_disagreements(spec) == []
    broken = copy.deepcopy(spec)
    containers = broken["components"]["schemas"]["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"]
    containers["x-kubernetes-patch-merge-key"] = "image"
    del broken["components"]["schemas"]["io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"]["properties"][
        "finalizers"
    ]["x-kubernetes-patch-strategy"]
    assert generate.proto_disagreements(broken) == [
        "io.k8s.api.core.v1.PodSpec.containers: OpenAPI {'patchStrategy': 'merge', "
        "'patchMergeKey': 'image'}, proto {'patchStrategy': 'merge', 'patchMergeKey': 'name'}",
        "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta.finalizers: OpenAPI {'patchStrategy': None, "
        "'patchMergeKey': None}, proto {'patchStrategy': 'merge', 'patchMergeKey': None}",
    ]


def test_embedded_structs_are_read_from_the_definitions() -> None:
    """A message field the definition lacks is an embedded struct when the definition has all of its
    fields; otherwise the protos and the spec disagree, and generation says which field."""
    from k8sproto.api import core_v1_pb2

    message = core_v1_pb2.DESCRIPTOR.message_types_by_name["ConfigMapEnvSource"]
    flattened = {"io.k8s.api.core.v1.ConfigMapEnvSource": {"properties": {"name": {}, "optional": {}}}}
    assert generate.inline_fields(flattened, [message]) == [
        ("k8s.io.api.core.v1.ConfigMapEnvSource", "localObjectReference")
    ]
    assert generate.inline_fields({}, [message]) == []  # no definition: a kind not served
    lost = {"io.k8s.api.core.v1.ConfigMapEnvSource": {"properties": {"optional": {}}}}
    with pytest.raises(generate.GenerationError, match=r"ConfigMapEnvSource\.localObjectReference"):
        generate.inline_fields(lost, [message])
