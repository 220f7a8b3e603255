from typing import Any

from nodegroup._templates import render

DEPLOYMENT = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "web"},
    "spec": {
        "replicas": 1,
        "selector": {"matchLabels": {"app": "web"}},
        "template": {"spec": {"containers": [{"name": "app", "image": "nginx:1.25"}]}},
    },
}
SERVICE = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {"name": "web"},
    "spec": {"ports": [{"port": 80}]},
}
CONFIGMAP = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}, "data": {"k": "v"}}


def edge_app(
    manifests: list[Any], groups: list[dict[str, Any]], labels: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    return {
        "metadata": {"name": "app", "namespace": "prod"},
        "spec": {
            "workloadTemplate": {"manifests": manifests},
            "workloadScope": {"targetNodeGroups": groups, "targetNodeLabels": labels or []},
        },
    }


def test_render_per_target() -> None:
    out = render(
        edge_app(
            [DEPLOYMENT, SERVICE, CONFIGMAP],
            [{"name": "east", "overriders": {"replicas": 3}}, {"name": "west"}],
            [{"labelSelector": {"matchLabels": {"zone": "z1"}}}],
        )
    )
    assert out.problems == []
    names = [(g.ordinal, g.manifest["kind"], g.manifest["metadata"]["name"]) for g in out.generated]
    assert names[:2] == [(0, "Deployment", "web-east"), (0, "Deployment", "web-west")]
    assert names[2][2].startswith("web-ls-")
    assert names[3:] == [(1, "Service", "web"), (2, "ConfigMap", "cfg")]
    assert out.generated[0].manifest["spec"]["replicas"] == 3
    assert out.generated[1].manifest["spec"]["replicas"] == 1
    assert all(g.manifest["metadata"]["namespace"] == "prod" for g in out.generated)
    svc = out.generated[3].manifest
    assert svc["metadata"]["annotations"] == {"apps.kubeedge.io/service-topology": "range-nodegroup"}


def test_bad_input_is_reported_and_the_rest_rendered() -> None:
    bad_env = {"envOverriders": [{"containerName": "missing", "operator": "add", "value": []}]}
    out = render(
        edge_app(
            [DEPLOYMENT, {"kind": "Thing"}, "text", SERVICE],
            [{"name": "east", "overriders": bad_env}, {"name": "west"}],
        )
    )
    assert [g.manifest["metadata"]["name"] for g in out.generated] == ["web-west", "web"]
    assert [(p.ordinal, p.name) for p in out.problems] == [(0, "web-east"), (1, None), (2, None)]
    assert "container 'missing' not found" in out.problems[0].message
    assert "node group 'east'" in out.problems[0].message
    assert "has no apiVersion" in out.problems[1].message
    assert "not an object" in out.problems[2].message


def test_invalid_target_spoils_only_itself() -> None:
    out = render(
        edge_app(
            [DEPLOYMENT],
            [
                {"name": "east", "overriders": {"replicas": "many"}},
                {
                    "name": "west",
                    "overriders": {"imageOverriders": [{"component": "Size", "operator": "add"}]},
                },
                {"name": "north"},
            ],
            [{"labelSelector": {}}],
        )
    )
    assert [g.manifest["metadata"]["name"] for g in out.generated] == ["web-north"]
    by_name = {p.name: p.message for p in out.problems}
    assert "overriders.replicas" in by_name["web-east"]
    assert "imageOverriders.0.component" in by_name["web-west"]
    assert "labelSelector.matchLabels" in by_name[None]


def test_example_edgeapplication_renders() -> None:
    import pathlib

    import yaml

    example = yaml.safe_load(
        (pathlib.Path(__file__).parents[2] / "examples" / "edgeapplication.yaml").read_text()
    )
    out = render(example)
    assert out.problems == []
    by_name = {g.manifest["metadata"]["name"]: g.manifest for g in out.generated}
    site_a, site_b = by_name["hello-edge-site-a"], by_name["hello-edge-site-b"]
    container_a = site_a["spec"]["template"]["spec"]["containers"][0]
    container_b = site_b["spec"]["template"]["spec"]["containers"][0]
    assert site_a["spec"]["replicas"] == 2 and container_a["image"] == "localhost/kubeshore-http:latest"
    assert container_a["env"] == [{"name": "SITE", "value": "a"}]
    assert site_b["spec"]["replicas"] == 1 and container_b["env"] == [{"name": "SITE", "value": "b"}]
    assert container_b["resources"] == {"limits": {"cpu": "250m", "memory": "64Mi"}}
    assert by_name["hello-edge"]["kind"] == "Service"
