"""A Pod's volumes on the node's disk, under ``<rootDirectory>/pods/<uid>/volumes/<name>``.

ConfigMap, Secret, projected and downward-API volumes are written the way the kubelet's atomic writer
does: the files live in a timestamped directory that the ``..data`` symlink points to, and each visible
name is a symlink through ``..data``. An update swaps ``..data`` in one rename, so a container reading
the mounted directory sees the old set of files or the new one, never a mix.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from edgecore.edged._podspec import (
    Obj,
    References,
    SpecError,
    configmap_data,
    field_value,
    secret_data,
    volume_dir,
)

_DATA = "..data"


def _items(data: dict[str, bytes], items: list[Obj] | None, mode: int) -> dict[str, tuple[bytes, int]]:
    if not items:
        return {k: (v, mode) for k, v in data.items()}
    out = {}
    for it in items:
        key = it.get("key", "")
        if key not in data:
            raise SpecError(f"configmap or secret has no key {key!r}")
        out[it.get("path") or key] = (data[key], int(it.get("mode", mode)))
    return out


def _keyed(
    kind: str, src: Obj, name: str, objects: dict[str, Obj], data: Callable[[Obj], dict[str, bytes]]
) -> dict[str, tuple[bytes, int]]:
    """The files of a ConfigMap or Secret volume (``items`` or every key); an optional one may be absent."""
    obj = objects.get(name)
    if obj is None:
        if src.get("optional"):
            return {}
        raise SpecError(f'{kind} "{name}" not found')
    return _items(data(obj), src.get("items"), int(src.get("defaultMode", 0o644)))


def payload(
    pod: Obj, volume: Obj, refs: References, host_ip: str = "", pod_ip: str = ""
) -> dict[str, tuple[bytes, int]]:
    """The files (path -> content, mode) of a ConfigMap, Secret, projected or downward-API volume."""
    if "configMap" in volume:
        src = volume["configMap"]
        return _keyed("configmap", src, src.get("name", ""), refs.configmaps, configmap_data)
    if "secret" in volume:
        src = volume["secret"]
        return _keyed("secret", src, src.get("secretName", ""), refs.secrets, secret_data)
    if "downwardAPI" in volume:
        src = volume["downwardAPI"]
        return _downward(pod, src.get("items") or [], int(src.get("defaultMode", 0o644)), host_ip, pod_ip)
    if "projected" in volume:
        src = volume["projected"]
        mode = int(src.get("defaultMode", 0o644))
        out: dict[str, tuple[bytes, int]] = {}
        for s in src.get("sources") or []:
            if "configMap" in s:
                out.update(payload(pod, {"configMap": {**s["configMap"], "defaultMode": mode}}, refs))
            elif "secret" in s:
                sec = dict(s["secret"])
                sec["secretName"] = sec.pop("name", "")
                out.update(payload(pod, {"secret": {**sec, "defaultMode": mode}}, refs))
            elif "downwardAPI" in s:
                out.update(_downward(pod, s["downwardAPI"].get("items") or [], mode, host_ip, pod_ip))
            # serviceAccountToken sources are not served: edge nodes issue no service-account tokens.
        return out
    return {}


def _downward(
    pod: Obj, items: list[Obj], mode: int, host_ip: str, pod_ip: str
) -> dict[str, tuple[bytes, int]]:
    out = {}
    for it in items:
        if "fieldRef" in it:
            value = field_value(pod, it["fieldRef"].get("fieldPath", ""), host_ip, pod_ip)
            out[it.get("path", "")] = (value.encode(), int(it.get("mode", mode)))
    return out


def _current(vol: Path) -> dict[str, tuple[bytes, int]]:
    data = vol / _DATA
    if not data.is_dir():
        return {}
    out = {}
    for p in data.rglob("*"):
        if p.is_file():
            out[str(p.relative_to(data))] = (p.read_bytes(), p.stat().st_mode & 0o777)
    return out


def write_atomically(vol: Path, files: dict[str, tuple[bytes, int]]) -> bool:
    """Make ``vol`` hold exactly ``files``; False when it already did."""
    # Modes are set, not left to the umask: edgecore runs with umask 077 (its own files are private),
    # while a container running as another user must read what its Pod mounts.
    vol.mkdir(parents=True, exist_ok=True)
    vol.chmod(0o755)
    if (vol / _DATA).exists() and _current(vol) == files:
        return False
    new = vol / f"..{time.time_ns()}"
    new.mkdir()
    new.chmod(0o755)
    for rel, (content, mode) in files.items():
        if rel.startswith("/") or ".." in Path(rel).parts:
            raise SpecError(f"volume item path {rel!r} must be relative and must not contain '..'")
        f = new / rel
        for d in reversed([p for p in f.relative_to(new).parents if p != Path(".")]):
            (new / d).mkdir(exist_ok=True)
            (new / d).chmod(0o755)
        f.write_bytes(content)
        f.chmod(mode)
    old = os.readlink(vol / _DATA) if (vol / _DATA).is_symlink() else None
    tmp = vol / "..data_tmp"
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    tmp.symlink_to(new.name)
    tmp.replace(vol / _DATA)
    top = {Path(rel).parts[0] for rel in files}
    for name in top:
        link = vol / name
        if not link.is_symlink():
            link.symlink_to(f"{_DATA}/{name}")
    for entry in vol.iterdir():
        if not entry.name.startswith("..") and entry.name not in top and entry.is_symlink():
            entry.unlink()
    if old:
        shutil.rmtree(vol / old, ignore_errors=True)
    return True


def prepare(pod: Obj, pod_dir: Path, refs: References, host_ip: str = "", pod_ip: str = "") -> bool:
    """Create or update every volume of the Pod on disk; True when a file volume changed."""
    changed = False
    for volume in (pod.get("spec") or {}).get("volumes") or []:
        name = volume.get("name", "")
        if "hostPath" in volume:
            continue
        vol = volume_dir(pod_dir, name)
        if any(k in volume for k in ("configMap", "secret", "projected", "downwardAPI")):
            changed |= write_atomically(vol, payload(pod, volume, refs, host_ip, pod_ip))
        else:
            # emptyDir, and what this node does not implement (persistent volumes) as an empty directory,
            # writable by any user of the Pod as the kubelet makes it
            vol.mkdir(parents=True, exist_ok=True)
            vol.chmod(0o777)
    return changed
