"""A Pod's spec as CRI asks for it: sandbox and container configs, environment, mounts, limits.

Pure functions over the Pod (a JSON dict as the cloud sent it) and what it references (ConfigMaps,
Secrets), so they can be tested without a runtime. Names of labels follow the kubelet's, so tools that
know containerd under Kubernetes (``crictl``) show edged's pods the same way.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cri.v1 import api_pb2 as cri
from kubeapi.quantity import millicores, to_bytes
from kubeshore import cgroups

Obj = dict[str, Any]

POD_NAME = "io.kubernetes.pod.name"
POD_NAMESPACE = "io.kubernetes.pod.namespace"
POD_UID = "io.kubernetes.pod.uid"
CONTAINER_NAME = "io.kubernetes.container.name"
NODE_LABEL = "kubeshore.io/node"  # which edge node owns a sandbox, so nodes sharing a runtime never collide
INIT_ANNOTATION = "kubeshore.io/init-container"

_PROTOCOLS = {"TCP": cri.TCP, "UDP": cri.UDP, "SCTP": cri.SCTP}
_CPU_PERIOD = 100_000  # µs, the kubelet's CFS period


class SpecError(ValueError):
    """The Pod asks for something this node cannot give it (a missing key, a bad quantity)."""


@dataclass
class References:
    """The ConfigMaps and Secrets of a Pod's namespace that it names, as the edge store holds them."""

    configmaps: dict[str, Obj] = field(default_factory=dict)
    secrets: dict[str, Obj] = field(default_factory=dict)


def referenced_names(pod: Obj) -> tuple[set[str], set[str]]:
    """Names of the ConfigMaps and Secrets a Pod uses (env, envFrom, volumes, projected sources)."""
    cms: set[str] = set()
    secrets: set[str] = set()
    spec = pod.get("spec") or {}
    for c in (spec.get("initContainers") or []) + (spec.get("containers") or []):
        for e in c.get("env") or []:
            vf = e.get("valueFrom") or {}
            if "configMapKeyRef" in vf:
                cms.add(vf["configMapKeyRef"].get("name", ""))
            if "secretKeyRef" in vf:
                secrets.add(vf["secretKeyRef"].get("name", ""))
        for ef in c.get("envFrom") or []:
            if "configMapRef" in ef:
                cms.add(ef["configMapRef"].get("name", ""))
            if "secretRef" in ef:
                secrets.add(ef["secretRef"].get("name", ""))
    for v in spec.get("volumes") or []:
        if "configMap" in v:
            cms.add(v["configMap"].get("name", ""))
        if "secret" in v:
            secrets.add(v["secret"].get("secretName", ""))
        for src in (v.get("projected") or {}).get("sources") or []:
            if "configMap" in src:
                cms.add(src["configMap"].get("name", ""))
            if "secret" in src:
                secrets.add(src["secret"].get("name", ""))
    cms.discard("")
    secrets.discard("")
    return cms, secrets


def secret_data(secret: Obj) -> dict[str, bytes]:
    import base64

    out = {k: base64.b64decode(v) for k, v in (secret.get("data") or {}).items()}
    out.update({k: v.encode() for k, v in (secret.get("stringData") or {}).items()})
    return out


def configmap_data(cm: Obj) -> dict[str, bytes]:
    import base64

    out = {k: str(v).encode() for k, v in (cm.get("data") or {}).items()}
    out.update({k: base64.b64decode(v) for k, v in (cm.get("binaryData") or {}).items()})
    return out


def field_value(pod: Obj, path: str, host_ip: str = "", pod_ip: str = "") -> str:
    """A downward-API ``fieldRef.fieldPath`` of the Pod."""
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    simple = {
        "metadata.name": meta.get("name", ""),
        "metadata.namespace": meta.get("namespace", ""),
        "metadata.uid": meta.get("uid", ""),
        "spec.nodeName": spec.get("nodeName", ""),
        "spec.serviceAccountName": spec.get("serviceAccountName", ""),
        "status.hostIP": host_ip,
        "status.hostIPs": host_ip,
        "status.podIP": pod_ip,
        "status.podIPs": pod_ip,
    }
    if path in simple:
        return str(simple[path])
    m = re.fullmatch(r"metadata\.(labels|annotations)\['([^']*)'\]", path)
    if m:
        return str((meta.get(m.group(1)) or {}).get(m.group(2), ""))
    if path in ("metadata.labels", "metadata.annotations"):
        items = sorted((meta.get(path.split(".")[1]) or {}).items())
        return "\n".join(f'{k}="{v}"' for k, v in items)
    raise SpecError(f"unsupported fieldRef.fieldPath {path!r}")


def _resource_value(container: Obj, ref: Obj) -> str:
    res = ref.get("resource", "")
    kind, _, name = res.partition(".")
    value = ((container.get("resources") or {}).get(kind) or {}).get(name)
    if value is None:
        return "0"
    divisor = ref.get("divisor") or "1"
    if name == "cpu":
        return str(-(-millicores(value) // millicores(divisor)))
    return str(-(-to_bytes(value) // to_bytes(divisor)))


_VAR = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)|\$\$")


def expand(text: str, env: dict[str, str]) -> str:
    """The kubelet's ``$(VAR)`` expansion; ``$$`` escapes, unknown references stay as they are."""

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        return env.get(m.group(1), m.group(0))

    return _VAR.sub(sub, text)


def environment(pod: Obj, container: Obj, refs: References, host_ip: str, pod_ip: str) -> dict[str, str]:
    """A container's environment, in the kubelet's order: envFrom, then env (later wins)."""
    env: dict[str, str] = {}
    for ef in container.get("envFrom") or []:
        prefix = ef.get("prefix", "")
        if "configMapRef" in ef:
            ref = ef["configMapRef"]
            cm = refs.configmaps.get(ref.get("name", ""))
            if cm is None:
                if ref.get("optional"):
                    continue
                raise SpecError(f'configmap "{ref.get("name")}" not found')
            # As the kubelet: the environment takes a ConfigMap's ``data`` only, never ``binaryData``.
            env.update({prefix + k: str(v) for k, v in (cm.get("data") or {}).items()})
        if "secretRef" in ef:
            ref = ef["secretRef"]
            sec = refs.secrets.get(ref.get("name", ""))
            if sec is None:
                if ref.get("optional"):
                    continue
                raise SpecError(f'secret "{ref.get("name")}" not found')
            env.update({prefix + k: v.decode(errors="replace") for k, v in secret_data(sec).items()})
    for e in container.get("env") or []:
        name = e.get("name", "")
        if "value" in e or "valueFrom" not in e:
            env[name] = expand(str(e.get("value", "")), env)
            continue
        vf = e["valueFrom"]
        if "configMapKeyRef" in vf:
            ref = vf["configMapKeyRef"]
            data = (refs.configmaps.get(ref.get("name", "")) or {}).get("data") or {}
            if ref.get("key") not in data:
                if ref.get("optional"):
                    continue
                raise SpecError(f"couldn't find key {ref.get('key')} in ConfigMap {ref.get('name')}")
            env[name] = str(data[ref["key"]])
        elif "secretKeyRef" in vf:
            ref = vf["secretKeyRef"]
            sdata = secret_data(refs.secrets.get(ref.get("name", "")) or {})
            if ref.get("key") not in sdata:
                if ref.get("optional"):
                    continue
                raise SpecError(f"couldn't find key {ref.get('key')} in Secret {ref.get('name')}")
            env[name] = sdata[ref["key"]].decode(errors="replace")
        elif "fieldRef" in vf:
            env[name] = field_value(pod, vf["fieldRef"].get("fieldPath", ""), host_ip, pod_ip)
        elif "resourceFieldRef" in vf:
            env[name] = _resource_value(container, vf["resourceFieldRef"])
    return env


def volume_dir(pod_dir: Path, name: str) -> Path:
    return pod_dir / "volumes" / name


def mounts(pod: Obj, container: Obj, pod_dir: Path) -> list[cri.Mount]:
    volumes = {v.get("name"): v for v in (pod.get("spec") or {}).get("volumes") or []}
    out = []
    for vm in container.get("volumeMounts") or []:
        vol = volumes.get(vm.get("name"))
        if vol is None:
            raise SpecError(f'volumeMount "{vm.get("name")}" names no volume of the pod')
        if "hostPath" in vol:
            host = Path(vol["hostPath"].get("path", "/"))
            if vol["hostPath"].get("type") in ("DirectoryOrCreate",) and not host.exists():
                host.mkdir(parents=True)
                host.chmod(0o755)  # as the kubelet makes it, whatever edgecore's umask
        else:
            host = volume_dir(pod_dir, vol["name"])
        if vm.get("subPath"):
            host = host / vm["subPath"]
        out.append(
            cri.Mount(
                container_path=vm.get("mountPath", ""),
                host_path=str(host),
                readonly=bool(vm.get("readOnly"))
                or any(k in vol for k in ("configMap", "secret", "projected", "downwardAPI")),
            )
        )
    return out


def resources(container: Obj) -> cri.LinuxContainerResources:
    res = container.get("resources") or {}
    limits = res.get("limits") or {}
    requests = res.get("requests") or {}
    out = cri.LinuxContainerResources()
    try:
        cpu_request = requests.get("cpu", limits.get("cpu"))
        out.cpu_shares = max(2, millicores(cpu_request) * 1024 // 1000) if cpu_request is not None else 2
        if "cpu" in limits:
            out.cpu_period = _CPU_PERIOD
            out.cpu_quota = max(1000, millicores(limits["cpu"]) * _CPU_PERIOD // 1000)
        if "memory" in limits:
            out.memory_limit_in_bytes = to_bytes(limits["memory"])
    except ValueError as exc:
        raise SpecError(f'container "{container.get("name")}": {exc}') from exc
    return out


def _namespace_options(pod: Obj) -> cri.NamespaceOption:
    spec = pod.get("spec") or {}
    return cri.NamespaceOption(
        network=cri.NODE if spec.get("hostNetwork") else cri.POD,
        pid=cri.NODE
        if spec.get("hostPID")
        else (cri.POD if spec.get("shareProcessNamespace") else cri.CONTAINER),
        ipc=cri.NODE if spec.get("hostIPC") else cri.POD,
    )


def sandbox_config(
    pod: Obj, node: str, attempt: int, log_dir: Path, cgroup_driver: str, cgroup_root: str = "/"
) -> cri.PodSandboxConfig:
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    uid = meta.get("uid", "")
    ports = []
    for c in spec.get("containers") or []:
        for p in c.get("ports") or []:
            if p.get("hostPort"):
                ports.append(
                    cri.PortMapping(
                        protocol=_PROTOCOLS.get(p.get("protocol", "TCP"), cri.TCP),
                        container_port=int(p.get("containerPort", 0)),
                        host_port=int(p["hostPort"]),
                        host_ip=p.get("hostIP", ""),
                    )
                )
    labels = {str(k): str(v) for k, v in (meta.get("labels") or {}).items()}
    labels.update(
        {
            POD_NAME: meta.get("name", ""),
            POD_NAMESPACE: meta.get("namespace", ""),
            POD_UID: uid,
            NODE_LABEL: node,
        }
    )
    parent, _ = cgroups.pod_cgroup(cgroup_root, cgroup_driver, uid)
    return cri.PodSandboxConfig(
        metadata=cri.PodSandboxMetadata(
            name=meta.get("name", ""), uid=uid, namespace=meta.get("namespace", ""), attempt=attempt
        ),
        # runc refuses a hostname without a private UTS namespace, which host networking shares.
        hostname="" if spec.get("hostNetwork") else (spec.get("hostname") or meta.get("name", ""))[:63],
        log_directory=str(log_dir),
        port_mappings=ports,
        labels=labels,
        annotations={str(k): str(v) for k, v in (meta.get("annotations") or {}).items()},
        linux=cri.LinuxPodSandboxConfig(
            cgroup_parent=parent,
            security_context=cri.LinuxSandboxSecurityContext(namespace_options=_namespace_options(pod)),
        ),
    )


def container_config(
    pod: Obj,
    container: Obj,
    attempt: int,
    env: dict[str, str],
    pod_dir: Path,
    *,
    init: bool = False,
) -> cri.ContainerConfig:
    meta = pod.get("metadata") or {}
    name = container.get("name", "")
    security = container.get("securityContext") or {}
    sc = cri.LinuxContainerSecurityContext(
        namespace_options=_namespace_options(pod), privileged=bool(security.get("privileged"))
    )
    if "runAsUser" in security:
        sc.run_as_user.value = int(security["runAsUser"])
    annotations = {INIT_ANNOTATION: "true"} if init else {}
    return cri.ContainerConfig(
        metadata=cri.ContainerMetadata(name=name, attempt=attempt),
        image=cri.ImageSpec(image=container.get("image", "")),
        command=[expand(str(a), env) for a in container.get("command") or []],
        args=[expand(str(a), env) for a in container.get("args") or []],
        working_dir=container.get("workingDir", ""),
        envs=[cri.KeyValue(key=k, value=v) for k, v in env.items()],
        mounts=mounts(pod, container, pod_dir),
        labels={
            CONTAINER_NAME: name,
            POD_NAME: meta.get("name", ""),
            POD_NAMESPACE: meta.get("namespace", ""),
            POD_UID: meta.get("uid", ""),
        },
        annotations=annotations,
        log_path=f"{name}/{attempt}.log",
        stdin=bool(container.get("stdin")),
        tty=bool(container.get("tty")),
        linux=cri.LinuxContainerConfig(resources=resources(container), security_context=sc),
    )
