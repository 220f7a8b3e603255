from typing import Any

import pytest

from nodegroup._naming import BELONGING_TO_LABEL
from nodegroup._overriders import OverrideError, Target, stamp_deployment


def deployment(**pod_spec: Any) -> dict[str, Any]:
    spec = {"containers": [{"name": "app", "image": "docker.io/library/nginx:1.25"}], **pod_spec}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}}, "template": {"spec": spec}},
    }


def image_of(manifest: dict[str, Any], index: int = 0) -> str:
    return str(manifest["spec"]["template"]["spec"]["containers"][index]["image"])


def container(manifest: dict[str, Any], index: int = 0) -> dict[str, Any]:
    result: dict[str, Any] = manifest["spec"]["template"]["spec"]["containers"][index]
    return result


@pytest.mark.parametrize(
    ("component", "operator", "value", "expected"),
    [
        ("Registry", "replace", "registry.cn:5000", "registry.cn:5000/library/nginx:1.25"),
        ("Registry", "remove", "", "library/nginx:1.25"),
        ("Registry", "add", ".cn", "docker.io.cn/library/nginx:1.25"),
        ("Repository", "replace", "team/web", "docker.io/team/web:1.25"),
        ("Repository", "add", "-edge", "docker.io/library/nginx-edge:1.25"),
        ("Tag", "replace", "1.26", "docker.io/library/nginx:1.26"),
        ("Tag", "add", "-alpine", "docker.io/library/nginx:1.25-alpine"),
        ("Tag", "remove", "", "docker.io/library/nginx"),
        ("Tag", "replace", "sha256:" + "c" * 64, "docker.io/library/nginx@sha256:" + "c" * 64),
    ],
)
def test_image_overriders(component: str, operator: str, value: str, expected: str) -> None:
    rule = {"component": component, "operator": operator, "value": value}
    out = stamp_deployment(deployment(), Target(group="g", overriders={"imageOverriders": [rule]}))
    assert image_of(out) == expected


def test_image_predicate_touches_only_its_path() -> None:
    template = deployment()
    template["spec"]["template"]["spec"]["containers"].append({"name": "side", "image": "busybox:1"})
    rule = {
        "predicate": {"path": "/spec/template/spec/containers/1/image"},
        "component": "Tag",
        "operator": "replace",
        "value": "2",
    }
    out = stamp_deployment(template, Target(group="g", overriders={"imageOverriders": [rule]}))
    assert image_of(out, 0) == "docker.io/library/nginx:1.25"
    assert image_of(out, 1) == "busybox:2"


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"component": "Tag", "operator": "replace", "value": "bad tag"}, "neither a valid tag"),
        ({"component": "Repository", "operator": "replace", "value": "Upper"}, "lowercase"),
        ({"component": "Size", "operator": "replace", "value": "x"}, "unknown component"),
        ({"component": "Tag", "operator": "upsert", "value": "x"}, "unknown operator"),
        (
            {
                "predicate": {"path": "/spec/template/spec/containers/5/image"},
                "component": "Tag",
                "operator": "replace",
                "value": "x",
            },
            "not an index",
        ),
    ],
)
def test_bad_image_overriders(rule: dict[str, Any], message: str) -> None:
    with pytest.raises(OverrideError, match=message):
        stamp_deployment(deployment(), Target(group="g", overriders={"imageOverriders": [rule]}))


def test_malformed_template_image_is_reported() -> None:
    template = deployment()
    container(template)["image"] = "Not/Valid"
    rule = {"component": "Tag", "operator": "replace", "value": "1"}
    with pytest.raises(OverrideError, match="node group 'g'"):
        stamp_deployment(template, Target(group="g", overriders={"imageOverriders": [rule]}))


def test_group_selector_is_added_not_replaced() -> None:
    template = deployment(nodeSelector={"disk": "ssd"})
    out = stamp_deployment(template, Target(group="beijing"))
    assert out["metadata"]["name"] == "web-beijing"
    assert out["spec"]["template"]["spec"]["nodeSelector"] == {"disk": "ssd", BELONGING_TO_LABEL: "beijing"}
    assert template["spec"]["template"]["spec"]["nodeSelector"] == {"disk": "ssd"}, "template untouched"


def test_label_target_joins_every_affinity_term() -> None:
    affinity = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "arch", "operator": "In", "values": ["arm64"]}]},
                    {"matchExpressions": [{"key": "arch", "operator": "In", "values": ["amd64"]}]},
                ]
            }
        }
    }
    out = stamp_deployment(
        deployment(affinity=affinity, nodeSelector={"disk": "ssd"}), Target(match_labels={"zone": "edge"})
    )
    assert out["metadata"]["name"].startswith("web-ls-")
    pod = out["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"disk": "ssd"}
    terms = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
        "nodeSelectorTerms"
    ]
    assert len(terms) == 2
    for term in terms:
        assert {"key": "zone", "operator": "In", "values": ["edge"]} in term["matchExpressions"]
        assert len(term["matchExpressions"]) == 2


def test_label_target_without_affinity() -> None:
    out = stamp_deployment(deployment(), Target(match_labels={"b": "2", "a": "1"}))
    terms = out["spec"]["template"]["spec"]["affinity"]["nodeAffinity"][
        "requiredDuringSchedulingIgnoredDuringExecution"
    ]["nodeSelectorTerms"]
    assert terms == [
        {
            "matchExpressions": [
                {"key": "a", "operator": "In", "values": ["1"]},
                {"key": "b", "operator": "In", "values": ["2"]},
            ]
        }
    ]


ENV = [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]


@pytest.mark.parametrize(
    ("operator", "value", "expected"),
    [
        ("add", [{"name": "C", "value": "3"}], [*ENV, {"name": "C", "value": "3"}]),
        ("remove", [{"name": "A"}], [{"name": "B", "value": "2"}]),
        (
            "replace",
            [{"name": "B", "value": "9"}, {"name": "D", "value": "4"}],
            [{"name": "A", "value": "1"}, {"name": "B", "value": "9"}, {"name": "D", "value": "4"}],
        ),
    ],
)
def test_env_overriders(operator: str, value: list[dict[str, str]], expected: list[dict[str, str]]) -> None:
    template = deployment()
    container(template)["env"] = list(ENV)
    rule = {"containerName": "app", "operator": operator, "value": value}
    out = stamp_deployment(template, Target(group="g", overriders={"envOverriders": [rule]}))
    assert container(out)["env"] == expected


@pytest.mark.parametrize("key", ["command", "args"])
@pytest.mark.parametrize(
    ("start", "operator", "value", "expected"),
    [
        (None, "add", ["-v"], ["-v"]),
        (["run", "-v"], "add", ["-x"], ["run", "-v", "-x"]),
        (["run", "-v", "-x"], "remove", ["-v"], ["run", "-x"]),
    ],
)
def test_command_and_args(
    key: str, start: list[str] | None, operator: str, value: list[str], expected: list[str]
) -> None:
    template = deployment()
    if start is not None:
        container(template)[key] = start
    rule = {"containerName": "app", "operator": operator, "value": value}
    out = stamp_deployment(template, Target(group="g", overriders={f"{key}Overriders": [rule]}))
    assert container(out)[key] == expected


def test_resources_and_replicas() -> None:
    resources = {"limits": {"cpu": "500m"}, "requests": {"memory": "64Mi"}}
    overriders = {"replicas": 3, "resourcesOverriders": [{"containerName": "app", "value": resources}]}
    out = stamp_deployment(deployment(), Target(group="g", overriders=overriders))
    assert out["spec"]["replicas"] == 3
    assert container(out)["resources"] == resources


@pytest.mark.parametrize(
    "overriders",
    [
        {"envOverriders": [{"containerName": "nope", "operator": "add", "value": []}]},
        {"commandOverriders": [{"containerName": "nope", "operator": "add", "value": ["x"]}]},
        {"argsOverriders": [{"containerName": "nope", "operator": "remove", "value": ["x"]}]},
        {"resourcesOverriders": [{"containerName": "nope", "value": {}}]},
    ],
)
def test_missing_container_is_an_error(overriders: dict[str, Any]) -> None:
    with pytest.raises(OverrideError, match=r"container 'nope' not found \(containers: 'app'\)"):
        stamp_deployment(deployment(), Target(group="g", overriders=overriders))


def test_every_problem_is_reported_at_once() -> None:
    overriders = {
        "replicas": -1,
        "envOverriders": [{"containerName": "nope", "operator": "add", "value": []}],
    }
    with pytest.raises(OverrideError) as err:
        stamp_deployment(deployment(), Target(group="g", overriders=overriders))
    assert "replicas" in str(err.value) and "nope" in str(err.value)


def test_order_image_before_command() -> None:
    # Order matters when a later overrider reads what an earlier one wrote; name comes first so the
    # image predicate path and container lookups all act on the stamped copy.
    overriders = {
        "replicas": 2,
        "imageOverriders": [{"component": "Tag", "operator": "replace", "value": "2"}],
        "commandOverriders": [{"containerName": "app", "operator": "add", "value": ["serve"]}],
    }
    out = stamp_deployment(deployment(), Target(group="g", overriders=overriders))
    assert (out["metadata"]["name"], out["spec"]["replicas"], image_of(out), container(out)["command"]) == (
        "web-g",
        2,
        "docker.io/library/nginx:2",
        ["serve"],
    )
