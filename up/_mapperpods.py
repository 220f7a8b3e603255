"""A node's mappers as Pods, made from the repository's KubeEdge-style manifest
(``deploy/04-mapper-virtual.yaml``: a ConfigMap with the mapper's configuration and a Deployment that
mounts edgecore's DMI directory by hostPath). :func:`manifests` keeps that manifest's shape (image,
host network, probe, resources, tolerations) and sets what differs per node: the node it is pinned to,
the driver, the DMI directory (mounted at its own path: edgecore dials the socket path the mapper
announces), the REST port, and extra configuration (in a Secret when it holds credentials).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

TEMPLATE = Path(__file__).resolve().parents[1] / "deploy" / "04-mapper-virtual.yaml"
CONFIG_DIR = "/etc/kubeshore-mapper"
#: labels of what `kubeshore up` applies for its mappers, to find (and remove) them again
MANAGED = {"app.kubernetes.io/managed-by": "kubeshore-up", "app.kubernetes.io/component": "mapper"}


class TemplateError(ValueError):
    """The manifest is not a ConfigMap + Deployment of one mapper container."""


def _merge(into: dict[str, Any], extra: dict[str, Any]) -> None:
    for k, v in extra.items():
        if isinstance(v, dict) and isinstance(into.get(k), dict):
            _merge(into[k], v)
        else:
            into[k] = v


def manifests(
    template: Path,
    *,
    node: str,
    driver: str,
    dmi_dir: Path,
    rest_port: int,
    socket_name: str | None = None,
    config: dict[str, Any] | None = None,
    secret: bool = False,
    labels: dict[str, str] | None = None,
) -> list[dict[str, Any]]:
    """The ConfigMap (or Secret, with ``secret``) and Deployment of mapper ``driver`` on ``node``."""
    docs = [d for d in yaml.safe_load_all(template.read_text()) if isinstance(d, dict)]
    kinds = {d.get("kind"): d for d in docs}
    if set(kinds) != {"ConfigMap", "Deployment"}:
        raise TemplateError(
            f"{template}: want one ConfigMap and one Deployment, found {sorted(map(str, kinds))}"
        )
    deploy = copy.deepcopy(kinds["Deployment"])
    name = f"mapper-{driver}-{node}"
    mapper_config = yaml.safe_load(kinds["ConfigMap"]["data"]["config.yaml"]) or {}
    socket = dmi_dir / (socket_name or f"{driver}-mapper.sock")
    # Named after its socket, as `kubeshore mapper run` names a mapper by default: edgecore keeps a
    # node's devices with the mapper registered first under a name, so a host process and a Pod of
    # the same mapper must register under one name.
    _merge(
        mapper_config,
        {
            "grpc_server": {"socket_path": str(socket)},
            "common": {"name": socket.stem, "edgecore_sock": str(dmi_dir / "dmi.sock")},
            "rest": {"port": rest_port},
        },
    )
    _merge(mapper_config, config or {})
    meta_labels = {"app.kubernetes.io/name": name, "app.kubernetes.io/part-of": "kubeshore", **(labels or {})}
    namespace = deploy["metadata"].get("namespace", "default")
    body = yaml.safe_dump(mapper_config, sort_keys=False)
    config_obj: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Secret" if secret else "ConfigMap",
        "metadata": {"name": name, "namespace": namespace, "labels": meta_labels},
        ("stringData" if secret else "data"): {"config.yaml": body},
    }
    if secret:
        config_obj["type"] = "Opaque"
    deploy["metadata"].update(name=name, labels=meta_labels)
    spec = deploy["spec"]
    spec["selector"] = {"matchLabels": {"app.kubernetes.io/name": name}}
    pod = spec["template"]
    pod["metadata"]["labels"] = meta_labels
    # Bound by name: nodes of one machine (`kubeshore up`) share the hostname label a selector would use.
    pod["spec"]["nodeName"] = node
    (pod["spec"].get("nodeSelector") or {}).pop("kubernetes.io/hostname", None)
    containers = pod["spec"]["containers"]
    if len(containers) != 1:
        raise TemplateError(f"{template}: want one mapper container, found {len(containers)}")
    c = containers[0]
    c["args"] = ["mapper", "run", driver, "--config", f"{CONFIG_DIR}/config.yaml"]
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        for how in ("httpGet", "tcpSocket"):
            if how in (c.get(probe) or {}):
                c[probe][how]["port"] = rest_port
    dmi_volume = _volume_at(c, pod["spec"], "/etc/kubeedge", template)
    dmi_volume["hostPath"] = {"path": str(dmi_dir), "type": "Directory"}
    config_volume = _volume_at(c, pod["spec"], CONFIG_DIR, template)
    for key in ("configMap", "secret"):
        config_volume.pop(key, None)
    if secret:
        config_volume["secret"] = {"secretName": name, "defaultMode": 0o400}
    else:
        config_volume["configMap"] = {"name": name}
    for mount in c.get("volumeMounts") or []:
        if mount["mountPath"] == "/etc/kubeedge":
            mount["mountPath"] = str(dmi_dir)
    return [config_obj, deploy]


def _volume_at(container: dict[str, Any], pod: dict[str, Any], path: str, template: Path) -> dict[str, Any]:
    """The pod volume the container mounts at ``path``."""
    for mount in container.get("volumeMounts") or []:
        if mount.get("mountPath") == path:
            for vol in pod.get("volumes") or []:
                if vol.get("name") == mount.get("name"):
                    found: dict[str, Any] = vol
                    return found
    raise TemplateError(f"{template}: the mapper container mounts nothing at {path}")
