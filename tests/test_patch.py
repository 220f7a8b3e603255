"""kubeapi.patch: merge patch (RFC 7386), JSON patch (RFC 6902) and strategic merge patch."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from kubeapi.patch import (
    APPLY_PATCH,
    JSON_PATCH,
    MAX_JSON_PATCH_OPERATIONS,
    MERGE_PATCH,
    STRATEGIC_MERGE_LISTS,
    STRATEGIC_MERGE_PATCH,
    MergeList,
    PatchError,
    apply_json_patch,
    apply_merge_patch,
    apply_patch,
    apply_server_side,
    apply_strategic_merge_patch,
    patch_options_status,
    strategic_merge_lists,
    supported_patch_types,
)

# ------------------------------------------------------------------------------------------------
# RFC 7386: the examples of appendix A (where the patch is an object) plus Kubernetes shapes.

MERGE_CASES: list[tuple[str, Any, Any, Any]] = [
    ("replace value", {"a": "b"}, {"a": "c"}, {"a": "c"}),
    ("add key", {"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
    ("null deletes", {"a": "b"}, {"a": None}, {}),
    ("null deletes one of two", {"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
    ("scalar replaces array", {"a": ["b"]}, {"a": "c"}, {"a": "c"}),
    ("array replaces scalar", {"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
    ("nested merge with delete", {"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
    ("array replaced whole", {"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
    ("existing null kept", {"e": None}, {"a": 1}, {"e": None, "a": 1}),
    ("nested nulls dropped on add", {}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
    ("delete missing key", {"a": 1}, {"b": None}, {"a": 1}),
    ("object replaces scalar", {"a": 1}, {"a": {"b": 2}}, {"a": {"b": 2}}),
    (
        "labels",
        {"metadata": {"name": "x", "labels": {"app": "a", "tier": "web"}}},
        {"metadata": {"labels": {"tier": None, "env": "prod"}}},
        {"metadata": {"name": "x", "labels": {"app": "a", "env": "prod"}}},
    ),
    (
        "status of a Device (what cloudcore sends)",
        {
            "spec": {"nodeName": "n1"},
            "status": {"twins": [{"propertyName": "t", "reported": {"value": "1"}}]},
        },
        {"status": {"twins": [{"propertyName": "t", "reported": {"value": "2"}}]}},
        {
            "spec": {"nodeName": "n1"},
            "status": {"twins": [{"propertyName": "t", "reported": {"value": "2"}}]},
        },
    ),
    ("empty patch", {"a": 1}, {}, {"a": 1}),
]


@pytest.mark.parametrize(("name", "obj", "patch", "want"), MERGE_CASES, ids=[c[0] for c in MERGE_CASES])
def test_merge_patch(name: str, obj: Any, patch: Any, want: Any) -> None:
    before, patch_before = copy.deepcopy(obj), copy.deepcopy(patch)
    assert apply_merge_patch(obj, patch) == want
    assert obj == before and patch == patch_before, "inputs must not be mutated"


@pytest.mark.parametrize("patch", [["c", "d"], "x", None, 3])
def test_merge_patch_must_be_object(patch: Any) -> None:
    with pytest.raises(PatchError) as err:
        apply_merge_patch({"a": 1}, patch)
    assert err.value.code == 400
    assert "merge patch must be a JSON object" in err.value.message


def test_merge_patch_result_shares_nothing_with_patch() -> None:
    patch = {"a": {"b": [1, 2]}}
    result = apply_merge_patch({}, patch)
    result["a"]["b"].append(3)
    assert patch == {"a": {"b": [1, 2]}}


# ------------------------------------------------------------------------------------------------
# RFC 6902: appendix A and the edges kube users hit.

JSON_PATCH_CASES: list[tuple[str, Any, Any, Any]] = [
    (
        "A.1 add member",
        {"foo": "bar"},
        [{"op": "add", "path": "/baz", "value": "qux"}],
        {"foo": "bar", "baz": "qux"},
    ),
    (
        "A.2 add array element",
        {"foo": ["bar", "baz"]},
        [{"op": "add", "path": "/foo/1", "value": "qux"}],
        {"foo": ["bar", "qux", "baz"]},
    ),
    ("A.3 remove member", {"baz": "qux", "foo": "bar"}, [{"op": "remove", "path": "/baz"}], {"foo": "bar"}),
    (
        "A.4 remove array element",
        {"foo": ["bar", "qux", "baz"]},
        [{"op": "remove", "path": "/foo/1"}],
        {"foo": ["bar", "baz"]},
    ),
    (
        "A.5 replace",
        {"baz": "qux", "foo": "bar"},
        [{"op": "replace", "path": "/baz", "value": "boo"}],
        {"baz": "boo", "foo": "bar"},
    ),
    (
        "A.6 move member",
        {"foo": {"bar": "baz", "waldo": "fred"}, "qux": {"corge": "grault"}},
        [{"op": "move", "from": "/foo/waldo", "path": "/qux/thud"}],
        {"foo": {"bar": "baz"}, "qux": {"corge": "grault", "thud": "fred"}},
    ),
    (
        "A.7 move array element",
        {"foo": ["all", "grass", "cows", "eat"]},
        [{"op": "move", "from": "/foo/1", "path": "/foo/3"}],
        {"foo": ["all", "cows", "eat", "grass"]},
    ),
    (
        "A.8 test success",
        {"baz": "qux", "foo": ["a", 2, "c"]},
        [{"op": "test", "path": "/baz", "value": "qux"}, {"op": "test", "path": "/foo/1", "value": 2}],
        {"baz": "qux", "foo": ["a", 2, "c"]},
    ),
    (
        "A.10 add nested member",
        {"foo": "bar"},
        [{"op": "add", "path": "/child", "value": {"grandchild": {}}}],
        {"foo": "bar", "child": {"grandchild": {}}},
    ),
    (
        "A.11 unrecognised members ignored",
        {"foo": "bar"},
        [{"op": "add", "path": "/baz", "value": "qux", "xyz": 123}],
        {"foo": "bar", "baz": "qux"},
    ),
    (
        "A.14 escape ordering",
        {"/": 9, "~1": 10},
        [{"op": "test", "path": "/~01", "value": 10}],
        {"/": 9, "~1": 10},
    ),
    (
        "A.16 add array value",
        {"foo": ["bar"]},
        [{"op": "add", "path": "/foo/-", "value": ["abc", "def"]}],
        {"foo": ["bar", ["abc", "def"]]},
    ),
    ("add to end with -", {"a": [1]}, [{"op": "add", "path": "/a/-", "value": 2}], {"a": [1, 2]}),
    ("add at length", {"a": [1]}, [{"op": "add", "path": "/a/1", "value": 2}], {"a": [1, 2]}),
    ("add replaces member", {"a": 1}, [{"op": "add", "path": "/a", "value": 2}], {"a": 2}),
    ("add root replaces document", {"a": 1}, [{"op": "add", "path": "", "value": {"b": 2}}], {"b": 2}),
    ("replace root", {"a": 1}, [{"op": "replace", "path": "", "value": {"c": 3}}], {"c": 3}),
    ("slash escape", {}, [{"op": "add", "path": "/a~1b", "value": 1}], {"a/b": 1}),
    (
        "annotation key with slash",
        {"metadata": {"annotations": {"kubectl.kubernetes.io/x": "1"}}},
        [{"op": "remove", "path": "/metadata/annotations/kubectl.kubernetes.io~1x"}],
        {"metadata": {"annotations": {}}},
    ),
    ("tilde escape", {}, [{"op": "add", "path": "/a~0b", "value": 1}], {"a~b": 1}),
    ("empty key", {}, [{"op": "add", "path": "/", "value": 1}], {"": 1}),
    (
        "copy",
        {"a": {"b": [1]}},
        [{"op": "copy", "from": "/a", "path": "/c"}],
        {"a": {"b": [1]}, "c": {"b": [1]}},
    ),
    ("copy to array end", {"a": [1, 2]}, [{"op": "copy", "from": "/a/0", "path": "/a/-"}], {"a": [1, 2, 1]}),
    ("move to itself", {"a": 1}, [{"op": "move", "from": "/a", "path": "/a"}], {"a": 1}),
    ("test number int/float", {"a": 1}, [{"op": "test", "path": "/a", "value": 1.0}], {"a": 1}),
    ("test null", {"a": None}, [{"op": "test", "path": "/a", "value": None}], {"a": None}),
    (
        "test object order-free",
        {"a": {"x": 1, "y": 2}},
        [{"op": "test", "path": "/a", "value": {"y": 2, "x": 1}}],
        {"a": {"x": 1, "y": 2}},
    ),
    ("test whole document", {"a": 1}, [{"op": "test", "path": "", "value": {"a": 1}}], {"a": 1}),
    (
        "kubectl scale style",
        {"spec": {"replicas": 1}},
        [
            {"op": "test", "path": "/spec/replicas", "value": 1},
            {"op": "replace", "path": "/spec/replicas", "value": 3},
        ],
        {"spec": {"replicas": 3}},
    ),
    ("no operations", {"a": 1}, [], {"a": 1}),
]


@pytest.mark.parametrize(
    ("name", "obj", "ops", "want"), JSON_PATCH_CASES, ids=[c[0] for c in JSON_PATCH_CASES]
)
def test_json_patch(name: str, obj: Any, ops: Any, want: Any) -> None:
    before = copy.deepcopy(obj)
    assert apply_json_patch(obj, ops) == want
    assert obj == before


JSON_PATCH_ERRORS: list[tuple[str, Any, Any, int, str]] = [
    (
        "A.9 test failure",
        {"baz": "qux"},
        [{"op": "test", "path": "/baz", "value": "bar"}],
        422,
        'operation 0 ({"op":"test","path":"/baz","value":"bar"}): testing value /baz failed: test failed: '
        'have "qux", want "bar"',
    ),
    (
        "A.12 add to nonexistent target",
        {"foo": "bar"},
        [{"op": "add", "path": "/baz/bat", "value": "qux"}],
        422,
        'add operation does not apply: doc is missing path: "/baz"',
    ),
    (
        "A.15 string is not number",
        {"/": 9, "~1": 10},
        [{"op": "test", "path": "/~01", "value": "10"}],
        422,
        "testing value /~01 failed",
    ),
    ("test true is not 1", {"a": 1}, [{"op": "test", "path": "/a", "value": True}], 422, "test failed"),
    ("test false is not 0", {"a": 0}, [{"op": "test", "path": "/a", "value": False}], 422, "test failed"),
    (
        "remove missing",
        {"a": 1},
        [{"op": "remove", "path": "/b"}],
        422,
        'remove operation does not apply: doc is missing path: "/b"',
    ),
    (
        "replace missing",
        {"a": 1},
        [{"op": "replace", "path": "/spec/x", "value": 1}],
        422,
        'replace operation does not apply: doc is missing path: "/spec"',
    ),
    ("remove root", {"a": 1}, [{"op": "remove", "path": ""}], 422, "cannot remove the whole document"),
    (
        "index out of range",
        {"a": [1]},
        [{"op": "add", "path": "/a/5", "value": 1}],
        422,
        'array index 5 out of range (length 1) in JSON pointer "/a/5"',
    ),
    ("remove past end", {"a": [1]}, [{"op": "remove", "path": "/a/1"}], 422, "array index 1 out of range"),
    (
        "leading zero index",
        {"a": [1, 2]},
        [{"op": "remove", "path": "/a/01"}],
        422,
        'invalid array index "01"',
    ),
    ("negative index", {"a": [1, 2]}, [{"op": "remove", "path": "/a/-1"}], 422, 'invalid array index "-1"'),
    ("dash only for add", {"a": [1]}, [{"op": "remove", "path": "/a/-"}], 422, 'invalid array index "-"'),
    (
        "step into scalar",
        {"a": 1},
        [{"op": "add", "path": "/a/b", "value": 1}],
        422,
        'add operation does not apply: "/a" is a number, not an object or array',
    ),
    (
        "move into own child",
        {"a": {"b": 1}},
        [{"op": "move", "from": "/a", "path": "/a/c"}],
        422,
        'cannot move "/a" into its own child',
    ),
    ("move from missing", {}, [{"op": "move", "from": "/x", "path": "/y"}], 422, 'doc is missing path: "/x"'),
    ("copy from missing", {}, [{"op": "copy", "from": "/x", "path": "/y"}], 422, 'doc is missing path: "/x"'),
    ("move without from", {}, [{"op": "move", "path": "/y"}], 422, 'operation 0 (move /y) has no "from"'),
    ("unknown op", {}, [{"op": "frob", "path": "/a"}], 422, 'operation 0 has unknown op "frob"'),
    ("missing op", {}, [{"path": "/a"}], 422, 'operation 0 has no "op"'),
    ("missing path", {}, [{"op": "add", "value": 1}], 422, 'operation 0 (add) has no "path"'),
    ("missing value", {}, [{"op": "add", "path": "/a"}], 422, 'operation 0 (add /a) has no "value"'),
    (
        "pointer without slash",
        {},
        [{"op": "add", "path": "a", "value": 1}],
        422,
        'operation 0: JSON pointer "a" must be empty or start with "/"',
    ),
    ("bad escape", {}, [{"op": "add", "path": "/a~2", "value": 1}], 422, "has an invalid escape"),
    (
        "path not a string",
        {},
        [{"op": "add", "path": 3, "value": 1}],
        422,
        "'path' must be a string JSON pointer",
    ),
    ("not a list", {}, {"op": "add"}, 400, "a JSON patch must be an array of operations, got object"),
    ("operation not an object", {}, ["add"], 400, "operation 0 must be a JSON object, got string"),
    (
        "second operation named",
        {"a": 1},
        [{"op": "remove", "path": "/a"}, {"op": "remove", "path": "/a"}],
        422,
        "operation 1 (",
    ),
]


@pytest.mark.parametrize(
    ("name", "obj", "ops", "code", "message"), JSON_PATCH_ERRORS, ids=[c[0] for c in JSON_PATCH_ERRORS]
)
def test_json_patch_errors(name: str, obj: Any, ops: Any, code: int, message: str) -> None:
    before = copy.deepcopy(obj)
    with pytest.raises(PatchError) as err:
        apply_json_patch(obj, ops)
    assert err.value.code == code
    assert message in err.value.message
    assert obj == before, "a failed patch must not change the object"


def test_json_patch_too_many_operations() -> None:
    ops = [{"op": "test", "path": "", "value": {}}] * (MAX_JSON_PATCH_OPERATIONS + 1)
    with pytest.raises(PatchError) as err:
        apply_json_patch({}, ops)
    assert err.value.code == 413
    assert err.value.message == "The allowed maximum operations in a JSON patch is 10000, got 10001"
    assert err.value.status()["reason"] == "RequestEntityTooLarge"


def test_json_patch_failure_is_atomic() -> None:
    obj = {"a": 1}
    with pytest.raises(PatchError):
        apply_json_patch(
            obj, [{"op": "add", "path": "/b", "value": 2}, {"op": "test", "path": "/a", "value": 9}]
        )
    assert obj == {"a": 1}


# ------------------------------------------------------------------------------------------------
# Strategic merge patch


def pod(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": spec}


POD = strategic_merge_lists("", "v1", "Pod")
DEPLOYMENT = strategic_merge_lists("apps", "v1", "Deployment")
SERVICE = strategic_merge_lists("", "v1", "Service")
NODE = strategic_merge_lists("", "v1", "Node")
assert POD is not None and DEPLOYMENT is not None and SERVICE is not None and NODE is not None

C = "containers"
SMP_CASES: list[tuple[str, Any, Any, Any, Any]] = [
    (
        "labels merge, null deletes",
        POD,
        {"metadata": {"labels": {"a": "1", "b": "2"}}},
        {"metadata": {"labels": {"b": None, "c": "3"}}},
        {"metadata": {"labels": {"a": "1", "c": "3"}}},
    ),
    (
        "container merged by name",
        POD,
        pod(containers=[{"name": "a", "image": "x:1", "args": ["-v"]}, {"name": "b", "image": "y"}]),
        {"spec": {C: [{"name": "a", "image": "x:2"}]}},
        pod(containers=[{"name": "a", "image": "x:2", "args": ["-v"]}, {"name": "b", "image": "y"}]),
    ),
    (
        "new container goes before the live ones (as in Kubernetes)",
        POD,
        pod(containers=[{"name": "a"}, {"name": "b"}]),
        {"spec": {C: [{"name": "new", "image": "z"}]}},
        pod(containers=[{"name": "new", "image": "z"}, {"name": "a"}, {"name": "b"}]),
    ),
    (
        "patch and live elements interleave",
        POD,
        pod(containers=[{"name": "a"}, {"name": "b"}, {"name": "c"}]),
        {"spec": {C: [{"name": "b", "image": "2"}, {"name": "d"}]}},
        pod(containers=[{"name": "a"}, {"name": "b", "image": "2"}, {"name": "d"}, {"name": "c"}]),
    ),
    (
        "patch order wins over live order",
        POD,
        pod(containers=[{"name": "a"}, {"name": "b"}]),
        {"spec": {C: [{"name": "b", "x": 1}, {"name": "a", "x": 2}]}},
        pod(containers=[{"name": "b", "x": 1}, {"name": "a", "x": 2}]),
    ),
    (
        "$patch delete removes element",
        POD,
        pod(containers=[{"name": "a"}, {"name": "b"}]),
        {"spec": {C: [{"name": "a", "$patch": "delete"}]}},
        pod(containers=[{"name": "b"}]),
    ),
    (
        "$patch replace replaces list",
        POD,
        pod(containers=[{"name": "a", "image": "1"}, {"name": "b"}]),
        {"spec": {C: [{"name": "c"}, {"$patch": "replace"}]}},
        pod(containers=[{"name": "c"}]),
    ),
    (
        "$patch replace on map",
        POD,
        {"metadata": {"labels": {"a": "1"}}},
        {"metadata": {"labels": {"$patch": "replace", "b": "2"}}},
        {"metadata": {"labels": {"b": "2"}}},
    ),
    (
        "$patch delete on map empties it",
        POD,
        {"metadata": {"labels": {"a": "1"}, "name": "p"}},
        {"metadata": {"labels": {"$patch": "delete"}}},
        {"metadata": {"labels": {}, "name": "p"}},
    ),
    (
        "$patch merge on map is a merge",
        POD,
        {"metadata": {"labels": {"a": "1"}}},
        {"metadata": {"labels": {"$patch": "merge", "b": "2"}}},
        {"metadata": {"labels": {"a": "1", "b": "2"}}},
    ),
    (
        "env merged by name",
        POD,
        pod(containers=[{"name": "a", "env": [{"name": "X", "value": "1"}, {"name": "Y", "value": "2"}]}]),
        {"spec": {C: [{"name": "a", "env": [{"name": "Y", "value": "3"}]}]}},
        pod(containers=[{"name": "a", "env": [{"name": "X", "value": "1"}, {"name": "Y", "value": "3"}]}]),
    ),
    (
        "env var deleted",
        POD,
        pod(containers=[{"name": "a", "env": [{"name": "X", "value": "1"}, {"name": "Y", "value": "2"}]}]),
        {"spec": {C: [{"name": "a", "env": [{"name": "X", "$patch": "delete"}]}]}},
        pod(containers=[{"name": "a", "env": [{"name": "Y", "value": "2"}]}]),
    ),
    (
        "env valueFrom replaced by value with null",
        POD,
        pod(
            containers=[{"name": "a", "env": [{"name": "X", "valueFrom": {"fieldRef": {"fieldPath": "x"}}}]}]
        ),
        {"spec": {C: [{"name": "a", "env": [{"name": "X", "value": "v", "valueFrom": None}]}]}},
        pod(containers=[{"name": "a", "env": [{"name": "X", "value": "v"}]}]),
    ),
    (
        "ports merged by containerPort",
        POD,
        pod(
            containers=[
                {"name": "a", "ports": [{"containerPort": 80, "name": "http"}, {"containerPort": 443}]}
            ]
        ),
        {"spec": {C: [{"name": "a", "ports": [{"containerPort": 80, "name": "web"}]}]}},
        pod(
            containers=[
                {"name": "a", "ports": [{"containerPort": 80, "name": "web"}, {"containerPort": 443}]}
            ]
        ),
    ),
    (
        "volumeMounts merged by mountPath",
        POD,
        pod(containers=[{"name": "a", "volumeMounts": [{"mountPath": "/d", "name": "v1"}]}]),
        {"spec": {C: [{"name": "a", "volumeMounts": [{"mountPath": "/d", "readOnly": True}]}]}},
        pod(
            containers=[{"name": "a", "volumeMounts": [{"mountPath": "/d", "name": "v1", "readOnly": True}]}]
        ),
    ),
    (
        "initContainers merged by name",
        POD,
        pod(initContainers=[{"name": "i", "image": "1"}]),
        {"spec": {"initContainers": [{"name": "i", "image": "2"}]}},
        pod(initContainers=[{"name": "i", "image": "2"}]),
    ),
    (
        "volumes merged by name with $retainKeys",
        POD,
        pod(volumes=[{"name": "v", "emptyDir": {}}, {"name": "w", "secret": {"secretName": "s"}}]),
        {
            "spec": {
                "volumes": [{"name": "v", "$retainKeys": ["name", "configMap"], "configMap": {"name": "c"}}]
            }
        },
        pod(
            volumes=[{"name": "v", "configMap": {"name": "c"}}, {"name": "w", "secret": {"secretName": "s"}}]
        ),
    ),
    (
        "imagePullSecrets merged by name",
        POD,
        pod(imagePullSecrets=[{"name": "a"}]),
        {"spec": {"imagePullSecrets": [{"name": "b"}]}},
        pod(imagePullSecrets=[{"name": "b"}, {"name": "a"}]),
    ),
    (
        "tolerations are replaced (no merge key)",
        POD,
        pod(tolerations=[{"key": "a", "operator": "Exists"}]),
        {"spec": {"tolerations": [{"key": "b", "operator": "Exists"}]}},
        pod(tolerations=[{"key": "b", "operator": "Exists"}]),
    ),
    (
        "args are replaced",
        POD,
        pod(containers=[{"name": "a", "args": ["1", "2"]}]),
        {"spec": {C: [{"name": "a", "args": ["3"]}]}},
        pod(containers=[{"name": "a", "args": ["3"]}]),
    ),
    (
        "pod conditions merged by type",
        POD,
        {
            "status": {
                "conditions": [
                    {"type": "Ready", "status": "False"},
                    {"type": "Initialized", "status": "True"},
                ]
            }
        },
        {"status": {"conditions": [{"type": "Ready", "status": "True"}]}},
        {
            "status": {
                "conditions": [{"type": "Ready", "status": "True"}, {"type": "Initialized", "status": "True"}]
            }
        },
    ),
    (
        "podIPs merged by ip",
        POD,
        {"status": {"podIPs": [{"ip": "10.0.0.1"}]}},
        {"status": {"podIPs": [{"ip": "fd00::1"}]}},
        {"status": {"podIPs": [{"ip": "fd00::1"}, {"ip": "10.0.0.1"}]}},
    ),
    (
        "finalizers are a set",
        POD,
        {"metadata": {"finalizers": ["a", "b"]}},
        {"metadata": {"finalizers": ["b", "c"]}},
        {"metadata": {"finalizers": ["a", "b", "c"]}},
    ),
    (
        "$deleteFromPrimitiveList",
        POD,
        {"metadata": {"finalizers": ["a", "b", "c"]}},
        {"metadata": {"$deleteFromPrimitiveList/finalizers": ["b", "x"]}},
        {"metadata": {"finalizers": ["a", "c"]}},
    ),
    (
        "$deleteFromPrimitiveList on missing list",
        POD,
        {"metadata": {}},
        {"metadata": {"$deleteFromPrimitiveList/finalizers": ["b"]}},
        {"metadata": {}},
    ),
    (
        "$setElementOrder of primitives",
        POD,
        {"metadata": {"finalizers": ["a", "b"]}},
        {"metadata": {"$setElementOrder/finalizers": ["b", "c", "a"], "finalizers": ["c"]}},
        {"metadata": {"finalizers": ["b", "c", "a"]}},
    ),
    (
        "ownerReferences merged by uid",
        POD,
        {"metadata": {"ownerReferences": [{"uid": "1", "name": "rs", "controller": True}]}},
        {"metadata": {"ownerReferences": [{"uid": "1", "controller": False}]}},
        {"metadata": {"ownerReferences": [{"uid": "1", "name": "rs", "controller": False}]}},
    ),
    (
        "$setElementOrder keeps the applied order (what kubectl apply sends)",
        POD,
        pod(containers=[{"name": "a"}, {"name": "b"}]),
        {
            "spec": {
                "$setElementOrder/containers": [{"name": "a"}, {"name": "b"}, {"name": "c"}],
                C: [{"name": "c"}],
            }
        },
        pod(containers=[{"name": "a"}, {"name": "b"}, {"name": "c"}]),
    ),
    (
        "$setElementOrder without the list reorders live",
        POD,
        pod(containers=[{"name": "a"}, {"name": "b"}]),
        {"spec": {"$setElementOrder/containers": [{"name": "b"}, {"name": "a"}]}},
        pod(containers=[{"name": "b"}, {"name": "a"}]),
    ),
    (
        "$setElementOrder keeps server-only elements in place",
        POD,
        pod(containers=[{"name": "a"}, {"name": "side"}, {"name": "b"}]),
        {
            "spec": {
                "$setElementOrder/containers": [{"name": "a"}, {"name": "b"}],
                C: [{"name": "b", "image": "i"}],
            }
        },
        pod(containers=[{"name": "a"}, {"name": "side"}, {"name": "b", "image": "i"}]),
    ),
    (
        "$setElementOrder with a deleted element",
        POD,
        pod(containers=[{"name": "a"}, {"name": "b"}]),
        {"spec": {"$setElementOrder/containers": [{"name": "b"}], C: [{"name": "a", "$patch": "delete"}]}},
        pod(containers=[{"name": "b"}]),
    ),
    (
        "deployment strategy switched with $retainKeys",
        DEPLOYMENT,
        {"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}},
        {"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate", "rollingUpdate": None}}},
        {"spec": {"strategy": {"type": "Recreate"}}},
    ),
    (
        "deployment template containers",
        DEPLOYMENT,
        {"spec": {"template": {"spec": {C: [{"name": "a", "image": "1"}, {"name": "b", "image": "1"}]}}}},
        {"spec": {"template": {"spec": {C: [{"name": "b", "image": "2"}]}}}},
        {"spec": {"template": {"spec": {C: [{"name": "a", "image": "1"}, {"name": "b", "image": "2"}]}}}},
    ),
    (
        "kubectl rollout restart",
        DEPLOYMENT,
        {"spec": {"replicas": 1, "template": {"metadata": {"labels": {"app": "x"}}}}},
        {"spec": {"template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": "t"}}}}},
        {
            "spec": {
                "replicas": 1,
                "template": {
                    "metadata": {
                        "labels": {"app": "x"},
                        "annotations": {"kubectl.kubernetes.io/restartedAt": "t"},
                    }
                },
            }
        },
    ),
    (
        "deployment conditions by type",
        DEPLOYMENT,
        {"status": {"conditions": [{"type": "Available", "status": "False"}]}},
        {"status": {"conditions": [{"type": "Available", "status": "True"}, {"type": "Progressing"}]}},
        {"status": {"conditions": [{"type": "Available", "status": "True"}, {"type": "Progressing"}]}},
    ),
    (
        "service ports merged by port",
        SERVICE,
        {"spec": {"ports": [{"port": 80, "targetPort": 8080}, {"port": 443}]}},
        {"spec": {"ports": [{"port": 80, "targetPort": 9090}]}},
        {"spec": {"ports": [{"port": 80, "targetPort": 9090}, {"port": 443}]}},
    ),
    (
        "service selector is a map",
        SERVICE,
        {"spec": {"selector": {"app": "a", "tier": "t"}}},
        {"spec": {"selector": {"tier": None}}},
        {"spec": {"selector": {"app": "a"}}},
    ),
    (
        "node addresses by type, conditions by type",
        NODE,
        {
            "status": {
                "addresses": [{"type": "InternalIP", "address": "1"}],
                "conditions": [{"type": "Ready"}],
            }
        },
        {
            "status": {
                "addresses": [{"type": "InternalIP", "address": "2"}],
                "conditions": [{"type": "Ready", "x": 1}],
            }
        },
        {
            "status": {
                "addresses": [{"type": "InternalIP", "address": "2"}],
                "conditions": [{"type": "Ready", "x": 1}],
            }
        },
    ),
    (
        "node taints are replaced",
        NODE,
        {"spec": {"taints": [{"key": "a", "effect": "NoSchedule"}]}},
        {"spec": {"taints": []}},
        {"spec": {"taints": []}},
    ),
    (
        "node podCIDRs are a set",
        NODE,
        {"spec": {"podCIDRs": ["10.0.0.0/24"]}},
        {"spec": {"podCIDRs": ["10.0.0.0/24", "fd00::/64"]}},
        {"spec": {"podCIDRs": ["10.0.0.0/24", "fd00::/64"]}},
    ),
    (
        "new list taken from patch without directives",
        POD,
        pod(),
        {"spec": {C: [{"name": "a", "image": "x", "env": [{"name": "X", "value": None}]}]}},
        pod(containers=[{"name": "a", "image": "x", "env": [{"name": "X"}]}]),
    ),
    (
        "new map drops nulls and directives",
        POD,
        {},
        {"metadata": {"labels": {"$patch": "replace", "a": "1", "b": None}}},
        {"metadata": {"labels": {"a": "1"}}},
    ),
    ("null for missing key", POD, {"a": 1}, {"b": None}, {"a": 1}),
    ("type change replaces", POD, {"spec": {"x": [1]}}, {"spec": {"x": {"y": 1}}}, {"spec": {"x": {"y": 1}}}),
    (
        "merge list emptied by patch list of deletes",
        POD,
        pod(containers=[{"name": "a"}]),
        {"spec": {C: [{"name": "a", "$patch": "delete"}]}},
        pod(containers=[]),
    ),
    ("top-level $patch delete", POD, {"a": 1}, {"$patch": "delete"}, {}),
    (
        "$setElementOrder with $deleteFromPrimitiveList",
        POD,
        {"metadata": {"finalizers": ["a", "b", "c"]}},
        {
            "metadata": {
                "$setElementOrder/finalizers": ["c", "a"],
                "$deleteFromPrimitiveList/finalizers": ["b"],
            }
        },
        {"metadata": {"finalizers": ["c", "a"]}},
    ),
    (
        "merge key compared as JSON numbers",
        POD,
        pod(containers=[{"name": "a", "ports": [{"containerPort": 80, "name": "x"}]}]),
        {"spec": {C: [{"name": "a", "ports": [{"containerPort": 80.0, "protocol": "TCP"}]}]}},
        pod(containers=[{"name": "a", "ports": [{"containerPort": 80, "name": "x", "protocol": "TCP"}]}]),
    ),
    (
        "merge list over a null live value",
        POD,
        {"spec": {C: None}},
        {"spec": {C: [{"name": "a"}]}},
        {"spec": {C: [{"name": "a"}]}},
    ),
    (
        "item-level $patch replace replaces the whole list",
        POD,
        pod(containers=[{"name": "a"}, {"name": "b"}]),
        {"spec": {C: [{"name": "a", "$patch": "replace", "image": "x"}, {"name": "c"}]}},
        pod(containers=[{"name": "c"}]),
    ),
    (
        "configmap data",
        strategic_merge_lists("", "v1", "ConfigMap"),
        {"data": {"a": "1", "b": "2"}},
        {"data": {"b": None, "c": "3"}},
        {"data": {"a": "1", "c": "3"}},
    ),
]


@pytest.mark.parametrize(("name", "lists", "obj", "patch", "want"), SMP_CASES, ids=[c[0] for c in SMP_CASES])
def test_strategic_merge_patch(name: str, lists: Any, obj: Any, patch: Any, want: Any) -> None:
    before, patch_before = copy.deepcopy(obj), copy.deepcopy(patch)
    assert apply_strategic_merge_patch(obj, patch, lists) == want
    assert obj == before and patch == patch_before


SMP_ERRORS: list[tuple[str, Any, Any, int, str]] = [
    (
        "element without merge key",
        pod(containers=[{"name": "a"}]),
        {"spec": {C: [{"image": "nginx"}]}},
        422,
        'map: {"image":"nginx"} does not contain declared merge key: name',
    ),
    (
        "delete without merge key",
        pod(containers=[{"name": "a"}]),
        {"spec": {C: [{"$patch": "delete"}]}},
        422,
        'map: {"$patch":"delete"} does not contain declared merge key: name',
    ),
    (
        "unknown list directive",
        pod(containers=[]),
        {"spec": {C: [{"name": "a", "$patch": "frob"}]}},
        400,
        "unknown patch type",
    ),
    (
        "merge directive in list",
        pod(containers=[]),
        {"spec": {C: [{"$patch": "merge"}]}},
        400,
        "merging lists cannot",
    ),
    (
        "unknown map directive",
        {},
        {"metadata": {"$patch": "frob"}},
        400,
        'unknown patch type: "frob" in map: {}',
    ),
    ("lists of lists", {}, {"metadata": {"finalizers": [["a"]]}}, 422, "lists of lists are not supported"),
    (
        "mixed element types",
        {"metadata": {"finalizers": ["a"]}},
        {"metadata": {"finalizers": [{"x": 1}]}},
        422,
        "types don't match",
    ),
    (
        "retainKeys misses a patched field",
        {},
        {"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate", "rollingUpdate": {}}}},
        400,
        "invalid patch format of retainKeys",
    ),
    (
        "retainKeys not a list",
        {},
        {"spec": {"$retainKeys": "type"}},
        400,
        "invalid patch format of retainKeys",
    ),
    (
        "setElementOrder not a list",
        {},
        {"spec": {"$setElementOrder/containers": {"name": "a"}}},
        400,
        "invalid patch format of setElementOrder list",
    ),
    (
        "setElementOrder disagrees with patch",
        pod(containers=[{"name": "a"}, {"name": "b"}]),
        {
            "spec": {
                "$setElementOrder/containers": [{"name": "a"}, {"name": "b"}],
                C: [{"name": "b"}, {"name": "a"}],
            }
        },
        422,
        "doesn't match $setElementOrder list",
    ),
    (
        "setElementOrder misses a patch element",
        pod(containers=[{"name": "a"}]),
        {"spec": {"$setElementOrder/containers": [{"name": "a"}], C: [{"name": "z"}]}},
        422,
        "doesn't match $setElementOrder list",
    ),
    (
        "deleteFromPrimitiveList not a list",
        {"metadata": {"finalizers": ["a"]}},
        {"metadata": {"$deleteFromPrimitiveList/finalizers": "a"}},
        400,
        "invalid patch format of primitive list",
    ),
    (
        "unknown directive key",
        {},
        {"spec": {"$frob": 1}},
        400,
        "unknown strategic merge patch directive '$frob' at spec",
    ),
    ("patch not an object", {}, [1], 400, "a strategic merge patch must be a JSON object, got array"),
]


@pytest.mark.parametrize(
    ("name", "obj", "patch", "code", "message"), SMP_ERRORS, ids=[c[0] for c in SMP_ERRORS]
)
def test_strategic_merge_patch_errors(name: str, obj: Any, patch: Any, code: int, message: str) -> None:
    with pytest.raises(PatchError) as err:
        apply_strategic_merge_patch(obj, patch, DEPLOYMENT if "strategy" in json.dumps(patch) else POD)
    assert err.value.code == code, err.value.message
    assert message in err.value.message


def test_kubectl_apply_three_way_patch() -> None:
    """The patch `kubectl apply` computes after a change to an applied Deployment."""
    live = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "web",
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{old}"},
            "labels": {"app": "web"},
        },
        "spec": {
            "replicas": 1,
            "template": {
                "spec": {
                    C: [
                        {"name": "app", "image": "nginx:1", "env": [{"name": "A", "value": "1"}]},
                        {"name": "sidecar", "image": "busybox"},
                    ]
                }
            },
        },
    }
    patch = {
        "metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{new}"}},
        "spec": {
            "replicas": 2,
            "template": {
                "spec": {
                    "$setElementOrder/containers": [{"name": "app"}, {"name": "sidecar"}],
                    C: [
                        {
                            "$setElementOrder/env": [{"name": "A"}, {"name": "B"}],
                            "env": [{"name": "B", "value": "2"}],
                            "image": "nginx:2",
                            "name": "app",
                        }
                    ],
                }
            },
        },
    }
    result = apply_strategic_merge_patch(live, patch, DEPLOYMENT)
    assert result["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"] == "{new}"
    assert result["spec"]["replicas"] == 2
    assert result["spec"]["template"]["spec"][C] == [
        {
            "name": "app",
            "image": "nginx:2",
            "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
        },
        {"name": "sidecar", "image": "busybox"},
    ]


def test_custom_merge_list_table() -> None:
    lists = {"spec.items": MergeList("id"), "spec.items[].tags": MergeList(None)}
    obj = {"spec": {"items": [{"id": 1, "tags": ["a"]}, {"id": 2}]}}
    patch = {"spec": {"items": [{"id": 1, "tags": ["b"]}]}}
    assert apply_strategic_merge_patch(obj, patch, lists) == {
        "spec": {"items": [{"id": 1, "tags": ["b", "a"]}, {"id": 2}]}
    }


def test_merge_list_table_covers_the_served_builtin_kinds() -> None:
    for gvk in [
        ("", "v1", "Namespace"),
        ("", "v1", "Node"),
        ("", "v1", "Pod"),
        ("", "v1", "ConfigMap"),
        ("", "v1", "Secret"),
        ("", "v1", "Service"),
        ("", "v1", "Endpoints"),
        ("", "v1", "Event"),
        ("discovery.k8s.io", "v1", "EndpointSlice"),
        ("apps", "v1", "Deployment"),
        ("coordination.k8s.io", "v1", "Lease"),
        ("apiextensions.k8s.io", "v1", "CustomResourceDefinition"),
    ]:
        table = STRATEGIC_MERGE_LISTS[gvk]
        assert table["metadata.finalizers"] == MergeList(None)
        assert table["metadata.ownerReferences"] == MergeList("uid")
    assert strategic_merge_lists("devices.kubeedge.io", "v1beta1", "Device") is None
    deployment = STRATEGIC_MERGE_LISTS[("apps", "v1", "Deployment")]
    assert deployment["spec.template.spec.containers[].env"] == MergeList("name")
    assert deployment["spec.template.spec.volumes"] == MergeList("name", retain_keys=True)


# ------------------------------------------------------------------------------------------------
# Dispatch on content type


def test_apply_patch_dispatch() -> None:
    obj = {"metadata": {"name": "x", "labels": {"a": "1"}}, "spec": {C: [{"name": "a"}]}}
    assert apply_patch(MERGE_PATCH, obj, b'{"metadata":{"labels":{"a":null}}}', merge_lists=None) == {
        "metadata": {"name": "x", "labels": {}},
        "spec": {C: [{"name": "a"}]},
    }
    assert (
        apply_patch(
            JSON_PATCH + "; charset=utf-8",
            obj,
            '[{"op":"replace","path":"/metadata/name","value":"y"}]',
            merge_lists=None,
        )["metadata"]["name"]
        == "y"
    )
    smp = apply_patch(STRATEGIC_MERGE_PATCH, obj, b'{"spec":{"containers":[{"name":"b"}]}}', merge_lists=POD)
    assert smp["spec"][C] == [{"name": "b"}, {"name": "a"}]


@pytest.mark.parametrize(
    ("content_type", "body", "merge_lists", "code", "message"),
    [
        (
            STRATEGIC_MERGE_PATCH,
            b"{}",
            None,
            415,
            "the body of the request was in an unknown format - accepted media types include: "
            "application/json-patch+json, application/merge-patch+json",
        ),
        (
            "text/plain",
            b"{}",
            POD,
            415,
            "accepted media types include: application/json-patch+json, application/merge-patch+json, "
            "application/strategic-merge-patch+json, application/apply-patch+yaml",
        ),
        (APPLY_PATCH, b"kind: [unclosed", POD, 400, "error decoding YAML: "),
        (APPLY_PATCH, b"kind: Pod", POD, 400, "the apply configuration must set apiVersion"),
        (MERGE_PATCH, b"{not json", None, 400, "error decoding patch: "),
        (MERGE_PATCH, b"\xff\xfe", None, 400, "error decoding patch: "),
        (
            JSON_PATCH,
            b'[{"op":"replace","path":"","value":[1]}]',
            None,
            422,
            "must be a JSON object, got array",
        ),
    ],
)
def test_apply_patch_errors(
    content_type: str, body: bytes, merge_lists: Any, code: int, message: str
) -> None:
    with pytest.raises(PatchError) as err:
        apply_patch(content_type, {"a": 1}, body, merge_lists=merge_lists)
    assert err.value.code == code
    assert message in err.value.message
    status = err.value.status()
    assert status["code"] == code
    assert status["kind"] == "Status" and status["status"] == "Failure"
    assert status["message"] == err.value.message


def test_status_reasons() -> None:
    assert PatchError("x", 400).status()["reason"] == "BadRequest"
    assert PatchError("x").status()["reason"] == "Invalid"
    assert PatchError("x", 415).status()["reason"] == "UnsupportedMediaType"


def test_supported_patch_types() -> None:
    assert supported_patch_types(True) == [JSON_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH, APPLY_PATCH]
    assert supported_patch_types(False) == [JSON_PATCH, MERGE_PATCH, APPLY_PATCH]


# ------------------------------------------------------------------------------------------------
# Server-side apply (simplified: no field ownership)

CR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "spec": {
            "type": "object",
            "properties": {
                "ports": {
                    "type": "array",
                    "x-kubernetes-list-type": "map",
                    "x-kubernetes-list-map-keys": ["port", "protocol"],
                    "items": {
                        "type": "object",
                        "properties": {
                            "port": {"type": "integer"},
                            "protocol": {"type": "string"},
                            "name": {"type": "string"},
                        },
                    },
                },
                "tags": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
                "args": {"type": "array", "items": {"type": "string"}},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            },
        }
    },
}

SSA_CASES: list[tuple[str, Any, Any, Any, Any, Any]] = [
    (
        "new object",
        None,
        None,
        None,
        {"apiVersion": "v1", "kind": "X", "a": 1},
        {"apiVersion": "v1", "kind": "X", "a": 1},
    ),
    (
        "maps merge, config wins, absent fields stay",
        {"apiVersion": "v1", "kind": "X", "spec": {"a": 1, "b": 2}, "status": {"s": 1}},
        None,
        None,
        {"apiVersion": "v1", "kind": "X", "spec": {"a": 9}},
        {"apiVersion": "v1", "kind": "X", "spec": {"a": 9, "b": 2}, "status": {"s": 1}},
    ),
    (
        "null removes",
        {"apiVersion": "v1", "kind": "X", "spec": {"a": 1, "b": 2}},
        None,
        None,
        {"apiVersion": "v1", "kind": "X", "spec": {"b": None}},
        {"apiVersion": "v1", "kind": "X", "spec": {"a": 1}},
    ),
    (
        "built-in containers by name",
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "spec": {"template": {"spec": {C: [{"name": "a", "image": "1", "tty": True}]}}},
        },
        DEPLOYMENT,
        None,
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "spec": {"template": {"spec": {C: [{"name": "a", "image": "2"}, {"name": "b", "image": "3"}]}}},
        },
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "spec": {
                "template": {
                    "spec": {C: [{"name": "a", "image": "2", "tty": True}, {"name": "b", "image": "3"}]}
                }
            },
        },
    ),
    (
        "built-in finalizers as a set",
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"finalizers": ["a"]}},
        POD,
        None,
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"finalizers": ["b", "a"]}},
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"finalizers": ["a", "b"]}},
    ),
    (
        "CRD list-map keys, set and atomic lists",
        {
            "apiVersion": "x/v1",
            "kind": "X",
            "spec": {
                "ports": [{"port": 80, "protocol": "TCP", "name": "http"}, {"port": 80, "protocol": "UDP"}],
                "tags": ["a"],
                "args": ["1", "2"],
                "labels": {"k": "v"},
            },
        },
        None,
        CR_SCHEMA,
        {
            "apiVersion": "x/v1",
            "kind": "X",
            "spec": {
                "ports": [{"port": 80, "protocol": "UDP", "name": "dns"}, {"port": 443, "protocol": "TCP"}],
                "tags": ["b"],
                "args": ["3"],
                "labels": {"l": "w"},
            },
        },
        {
            "apiVersion": "x/v1",
            "kind": "X",
            "spec": {
                "ports": [
                    {"port": 80, "protocol": "TCP", "name": "http"},
                    {"port": 80, "protocol": "UDP", "name": "dns"},
                    {"port": 443, "protocol": "TCP"},
                ],
                "tags": ["a", "b"],
                "args": ["3"],
                "labels": {"k": "v", "l": "w"},
            },
        },
    ),
]


@pytest.mark.parametrize(
    ("name", "live", "lists", "schema", "applied", "want"), SSA_CASES, ids=[c[0] for c in SSA_CASES]
)
def test_apply_server_side(name: str, live: Any, lists: Any, schema: Any, applied: Any, want: Any) -> None:
    before = copy.deepcopy(live)
    assert apply_server_side(live, applied, merge_lists=lists, schema=schema) == want
    assert live == before


@pytest.mark.parametrize(
    ("applied", "message"),
    [
        ([1], "an apply configuration must be a JSON or YAML object, got array"),
        ({"kind": "X"}, "the apply configuration must set apiVersion"),
        ({"apiVersion": "v1", "kind": ""}, "the apply configuration must set kind"),
        (
            {"apiVersion": "x/v1", "kind": "X", "spec": {"ports": ["80"]}},
            "spec.ports: elements of an associative list must be objects, got string",
        ),
    ],
)
def test_apply_server_side_errors(applied: Any, message: str) -> None:
    with pytest.raises(PatchError) as err:
        apply_server_side({}, applied, schema=CR_SCHEMA)
    assert message in err.value.message


def test_apply_patch_server_side_yaml_body() -> None:
    body = "apiVersion: x/v1\nkind: X\nspec:\n  tags: [b]\n"
    result = apply_patch(APPLY_PATCH, {"spec": {"tags": ["a"]}}, body, merge_lists=None, schema=CR_SCHEMA)
    assert result == {"apiVersion": "x/v1", "kind": "X", "spec": {"tags": ["a", "b"]}}


def test_patch_options_status() -> None:
    assert patch_options_status(APPLY_PATCH, "kubectl", None) is None
    assert patch_options_status(MERGE_PATCH, None, None) is None
    status = patch_options_status(APPLY_PATCH + "; charset=utf-8", "", None)
    assert status is not None and status["code"] == 422
    assert status["message"] == (
        'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply patch'
    )
    assert status["details"]["causes"] == [
        {
            "reason": "FieldValueRequired",
            "message": "Required value: is required for apply patch",
            "field": "fieldManager",
        }
    ]
    forced = patch_options_status(MERGE_PATCH, "m", "true")
    assert forced is not None
    assert forced["message"].endswith("force: Forbidden: may not be specified for non-apply patch")
