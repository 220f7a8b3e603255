"""Pod cgroups: where edged puts a Pod's containers, and their removal once nothing runs in them.

runc creates a Pod's parent cgroups (``<cgroupRoot>/kubepods/pod<uid>``) and removes only a container's
own cgroup, and only on a clean delete; the parents stay in every hierarchy for ever unless someone
removes them. edged removes a Pod's once its sandbox is gone (as the kubelet's pod container manager),
and ``kubeshore up`` (``up.containerd.cleanup``) removes a node's whole cgroup root once its shims are
gone. Removal is ``rmdir`` only, deepest first, of cgroups without processes: a cgroup that still has
one is left (and named), never emptied by killing.
"""

from __future__ import annotations

import os
from pathlib import Path

_MOUNTS = Path("/proc/self/mounts")
DEFAULT_ROOT = "/"  # the kubelet's cgroupRoot when KubeEdge's edgecore.yaml leaves it empty


def normalize_root(root: str) -> str:
    """``root`` as an absolute cgroup path without a trailing slash (``/`` for the top); ``ValueError``
    names what is wrong with it."""
    if root in ("", "/"):
        return "/"
    if not root.startswith("/"):
        raise ValueError(f"cgroupRoot {root!r} is not an absolute cgroup path (such as /kubeshore)")
    parts = [p for p in root.split("/") if p]
    if any(p in (".", "..") for p in parts):
        raise ValueError(f"cgroupRoot {root!r} must not hold '.' or '..'")
    return "/" + "/".join(parts)


def _systemd_escape(part: str) -> str:
    # systemd slice names use '-' for nesting, so the kubelet turns a name's own dashes into underscores.
    return part.replace("-", "_")


def pod_cgroup(root: str, driver: str, uid: str) -> tuple[str, str]:
    """(cgroup parent as CRI takes it, the directory relative to each hierarchy) of a Pod's cgroup:
    ``<root>/kubepods/pod<uid>`` for cgroupfs; for systemd the kubelet's slice names
    (``<root>-kubepods-pod<uid>.slice``, nested as ``<root>.slice/<root>-kubepods.slice/...``)."""
    parts = [p for p in normalize_root(root).split("/") if p] + ["kubepods", f"pod{uid}"]
    if driver != "systemd":
        path = "/" + "/".join(parts)
        return path, path.lstrip("/")
    escaped = [_systemd_escape(p) for p in parts]
    slices = ["-".join(escaped[: i + 1]) + ".slice" for i in range(len(escaped))]
    return slices[-1], "/".join(slices)


def hierarchies() -> list[Path]:
    """The mount points of every cgroup hierarchy (v1 controllers, named ones, and the v2 unified one)."""
    found: list[Path] = []
    try:
        lines = _MOUNTS.read_text().splitlines()
    except OSError:
        return found
    for line in lines:
        fields = line.split()
        if len(fields) >= 3 and fields[2] in ("cgroup", "cgroup2"):
            mount = Path(fields[1].replace("\\040", " "))
            if mount not in found:
                found.append(mount)
    return found


def remove_tree(relative: str, bases: list[Path] | None = None) -> list[str]:
    """rmdir ``relative`` (a cgroup path such as ``kubeshore-x/kubepods/pod<uid>``) and everything below
    it, deepest first, in every hierarchy; cgroups that still hold a process are left. Returns what could
    not be removed and why (empty: nothing of it is left anywhere)."""
    rel = relative.strip("/")
    if not rel or any(p in (".", "..") for p in rel.split("/")):
        raise ValueError(f"refusing to remove cgroup {relative!r}: not a cgroup below a hierarchy's top")
    left: list[str] = []
    for base in hierarchies() if bases is None else bases:
        top = base / rel
        if not top.is_dir():
            continue
        for dirpath, _, _ in os.walk(top, topdown=False):
            d = Path(dirpath)
            try:
                if (d / "cgroup.procs").read_text().strip():
                    left.append(f"{d}: has processes")
                    continue
                d.rmdir()
            except FileNotFoundError:
                pass
            except OSError as exc:
                left.append(f"{d}: {exc.strerror or exc}")
    return left
