"""A containerd of its own for each edge node that `kubeshore up` runs (and for the tests and
benchmarks of edged): its own state directory, CRI socket, CNI bridge and subnet, and the local images
an offline machine needs, built from busybox-static: ``localhost/busybox:latest``, the sandbox image
``localhost/pause:latest`` and ``localhost/kubeshore-http:latest`` (busybox's httpd answering on 8080);
and ``localhost/kubeshore-mapper:latest``, busybox plus this machine's Python and kubeshore's mappers
(``up._pythonroot``). ``python -m up.containerd mapper-image`` prints its archive, built if needed.

:func:`cleanup` removes what a node's containerd leaves behind once it is stopped: its shims and
containers (by PID), their network namespaces and mounts, its bridge, and the node's cgroup root
(:func:`cgroup_root`, the ``cgroupRoot`` its edged puts Pod cgroups under). See
``../shared/containerd/README.md`` for the recipe this follows.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from kubeshore import cgroups
from up import _pythonroot

TOOLS = ("containerd", "runc", "ctr", "umoci", "skopeo", "ip")
BUSYBOX = "localhost/busybox:latest"
PAUSE = "localhost/pause:latest"
HTTP = "localhost/kubeshore-http:latest"
MAPPER = "localhost/kubeshore-mapper:latest"
CNI_BIN = Path("/usr/lib/cni")
PACKAGES = "containerd runc containernetworking-plugins busybox-static umoci skopeo iproute2"


def missing() -> str | None:
    """Why this machine cannot run Pods, or None when it can."""
    if os.geteuid() != 0:
        return "not root (containerd and its pod network need root)"
    lacking = [t for t in TOOLS if shutil.which(t) is None and not Path(f"/usr/sbin/{t}").exists()]
    if _busybox() is None:
        lacking.append("busybox (busybox-static)")
    if not (CNI_BIN / "bridge").exists():
        lacking.append("CNI plugins (containernetworking-plugins)")
    if lacking:
        return f"missing {', '.join(lacking)} (Debian: apt-get install {PACKAGES})"
    return None


def _busybox() -> Path | None:
    for p in (Path("/bin/busybox"), Path("/usr/bin/busybox")):
        if p.exists():
            return p
    return None


def _image(
    out: Path,
    ref: str,
    entrypoint: list[str],
    fill: Callable[[Path], None] | None = None,
    env: tuple[str, ...] = ("PATH=/bin",),
    key: str = "",
) -> Path:
    """An OCI archive of busybox with ``entrypoint``, tagged ``ref``, and what ``fill`` adds to its root
    filesystem; built once per ``key``, then reused (archives of other keys are removed)."""
    stem = ref.split("/")[-1].replace(":", "-")
    tar = out / (f"{stem}-{key}.tar" if key else f"{stem}.tar")
    if tar.exists():
        return tar
    busybox = _busybox()
    assert busybox is not None
    with tempfile.TemporaryDirectory(prefix="img-", dir=out) as d:
        w = Path(d)

        def run(*argv: str) -> None:
            subprocess.run(argv, cwd=w, check=True, capture_output=True, timeout=120)

        run("umoci", "init", "--layout", "oci")
        run("umoci", "new", "--image", "oci:latest")
        run("umoci", "unpack", "--image", "oci:latest", "bundle")
        root = w / "bundle" / "rootfs"
        (root / "bin").mkdir(parents=True, exist_ok=True)
        shutil.copy2(busybox, root / "bin" / "busybox")
        applets = subprocess.run([str(busybox), "--list"], capture_output=True, text=True, check=True).stdout
        for a in applets.split():
            if a != "busybox":
                with contextlib.suppress(FileExistsError):
                    (root / "bin" / a).symlink_to("busybox")
        for sub in ("tmp", "etc", "proc", "sys", "dev", "www", "var"):
            (root / sub).mkdir(exist_ok=True)
        (root / "tmp").chmod(0o1777)
        if fill is not None:
            fill(root)
        run("umoci", "repack", "--image", "oci:latest", "bundle")
        args = ["umoci", "config", "--image", "oci:latest"]
        for e in env:
            args += ["--config.env", e]
        for e in entrypoint:
            args += ["--config.entrypoint", e]
        run(*args)
        tmp = out / f".{tar.name}.{os.getpid()}"
        run("skopeo", "--insecure-policy", "copy", "oci:oci:latest", f"oci-archive:{tmp}:{ref}")
        tmp.replace(tar)
    if key:
        for stale in out.glob(f"{stem}-*.tar"):
            if stale != tar:
                stale.unlink(missing_ok=True)
    return tar


def _cache(cache: Path | None) -> Path:
    bb = _busybox()
    assert bb is not None, "busybox-static is not installed"
    digest = hashlib.sha256(f"{bb.stat().st_size}:{bb.stat().st_mtime_ns}:3".encode()).hexdigest()[:12]
    home = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    out = cache or home / "kubeshore" / f"images-{digest}"
    out.mkdir(parents=True, exist_ok=True)
    return out


def build_mapper_image(cache: Path | None = None) -> Path:
    """``localhost/kubeshore-mapper:latest``: busybox, this machine's Python and kubeshore with the
    ``[mapper]`` extra (``up._pythonroot``); rebuilt only when one of those changes. Its entrypoint is
    the ``kubeshore`` command, so a Pod's ``args`` are ``[mapper, run, virtual, ...]``."""
    out = _cache(cache)
    # Two builds at once (two nodes, two test modules) must not both pay for it: one waits.
    with open(out / ".mapper.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        key = _pythonroot.digest()
        return _image(
            out, MAPPER, ["/usr/local/bin/kubeshore"], fill=_pythonroot.fill, env=_pythonroot.ENV, key=key
        )


def build_images(cache: Path | None = None) -> list[Path]:
    """The local images as OCI archives, built once per machine (and busybox build)."""
    out = _cache(cache)
    http = (
        'echo "hello from ${SITE:-the edge} ($(hostname))" > /www/index.html; exec httpd -f -p 8080 -h /www'
    )
    return [
        _image(out, BUSYBOX, ["/bin/sh"]),
        _image(out, PAUSE, ["/bin/sh", "-c", 'trap "exit 0" TERM; while :; do sleep 3600 & wait $!; done']),
        _image(out, HTTP, ["/bin/sh", "-c", http]),
    ]


class NodeRuntime:
    """The files of one node's containerd under ``root``; ``argv`` runs it, ``endpoint`` is its CRI."""

    def __init__(self, root: Path, bridge: str, subnet: str) -> None:
        self.root = root
        self.bridge = bridge[:15]  # Linux interface names
        self.subnet = subnet

    @property
    def socket(self) -> Path:
        return self.root / "containerd.sock"

    @property
    def endpoint(self) -> str:
        return f"unix://{self.socket}"

    @property
    def cgroup_root(self) -> str:
        return cgroup_root(self.root)

    @property
    def join_flags(self) -> tuple[str, ...]:
        """`kubeshore join`'s flags for a node whose edged runs its Pods on this containerd."""
        return ("--remote-runtime-endpoint", self.endpoint, "--cgroup-root", self.cgroup_root)

    @property
    def argv(self) -> list[str]:
        return ["containerd", "--config", str(self.root / "config.toml")]

    def write_config(self) -> None:
        r = self.root
        (r / "net.d").mkdir(parents=True, exist_ok=True, mode=0o700)
        (r / "bridge").write_text(self.bridge + "\n")
        (r / "net.d" / "10-kubeshore.conflist").write_text(
            f"""{{
  "cniVersion": "1.0.0",
  "name": "kubeshore-{self.bridge}",
  "plugins": [{{
    "type": "bridge", "bridge": "{self.bridge}", "isGateway": true, "ipMasq": false,
    "ipam": {{"type": "host-local", "ranges": [[{{"subnet": "{self.subnet}"}}]], "dataDir": "{r / "ipam"}"}}
  }}]
}}
"""
        )
        (r / "config.toml").write_text(
            f"""version = 2
root = "{r / "root"}"
state = "{r / "state"}"
[grpc]
  address = "{self.socket}"
[plugins."io.containerd.internal.v1.opt"]
  path = "{r / "opt"}"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{PAUSE}"
  # Required where the process has no CAP_SYS_RESOURCE (containers, CI): runc fails otherwise.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{CNI_BIN}"
    conf_dir = "{r / "net.d"}"
"""
        )

    def serving(self) -> bool:
        return self.socket.exists()

    def import_images(self, tars: list[Path] | None = None) -> None:
        """Import the local images (``build_images``), or ``tars``, where this node's CRI sees them."""
        for tar in build_images() if tars is None else tars:
            subprocess.run(
                ["ctr", "-a", str(self.socket), "-n", "k8s.io", "images", "import", str(tar)],
                check=True,
                capture_output=True,
                timeout=120,
            )


def _shims(root: Path) -> list[int]:
    needle = str(root).encode()
    pids = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            with contextlib.suppress(OSError):
                cmd = (p / "cmdline").read_bytes()
                if b"containerd-shim" in cmd and needle in cmd:
                    pids.append(int(p.name))
    return pids


def container_pids(root: Path) -> list[int]:
    """PIDs of the processes in the containers of the containerd under ``root`` (its shims' children)."""
    shims = set(_shims(root))
    out = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                if int((p / "stat").read_text().rsplit(")", 1)[1].split()[1]) in shims:
                    out.append(int(p.name))
    return out


def _netns_of(pids: list[int]) -> set[Path]:
    """The named network namespaces (``/var/run/netns/*``) those processes are in."""
    inodes = set()
    for pid in pids:
        with contextlib.suppress(OSError):
            inodes.add(os.stat(f"/proc/{pid}/ns/net").st_ino)
    d = Path("/var/run/netns")
    found = set()
    if d.is_dir():
        for ns in d.iterdir():
            with contextlib.suppress(OSError):
                if ns.stat().st_ino in inodes:
                    found.add(ns)
    return found


def cgroup_root(root: Path) -> str:
    """The cgroup root (edged's ``cgroupRoot``) of the Pods run by the containerd under ``root``: one of
    its own per node and per data directory, so :func:`cleanup` can remove all of it and nothing else."""
    digest = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:8]
    return f"/kubeshore-{root.name}-{digest}"


def _remove_cgroups(root: Path, within: float = 10.0) -> list[str]:
    """rmdir the whole cgroup tree of ``root``'s node (its shims and containers are gone by now; their
    last exits may take a moment to leave the cgroups)."""
    deadline = time.monotonic() + within
    while True:
        left = cgroups.remove_tree(cgroup_root(root))
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.2)


def cleanup_all(runtimes: Path) -> None:
    """:func:`cleanup` for every node's containerd under ``runtimes`` (``DIR/runtime`` of `kubeshore up`)."""
    if runtimes.is_dir():
        for root in sorted(runtimes.iterdir()):
            cleanup(root)


def cleanup(root: Path) -> None:
    """Remove what the (stopped or killed) containerd under ``root`` left: shims and containers (by
    PID), their network namespaces, mounts under ``root``, the bridge it recorded and its node's cgroups."""
    if not root.is_dir():
        return
    namespaces = _netns_of(container_pids(root))
    for _ in range(5):
        pids = container_pids(root) + _shims(root)
        if not pids:
            break
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.2)
    for ns in namespaces:
        subprocess.run(["umount", str(ns)], capture_output=True, timeout=10)
        with contextlib.suppress(OSError):
            ns.unlink()
    mounts = []
    with open("/proc/self/mounts") as f:
        for line in f:
            target = line.split()[1].replace("\\040", " ")
            if target == str(root) or target.startswith(f"{root}/"):
                mounts.append(target)
    for target in sorted(mounts, key=len, reverse=True):
        subprocess.run(["umount", "-l", target], capture_output=True, timeout=30)
    bridge = root / "bridge"
    if bridge.exists():
        subprocess.run(["ip", "link", "del", bridge.read_text().strip()], capture_output=True, timeout=10)
    _remove_cgroups(root)


def main(argv: list[str] | None = None) -> int:
    """``python -m up.containerd mapper-image|images``: build (or find in the cache) the mapper image or
    the busybox-based ones and print their archives, for ``ctr -n k8s.io images import``."""
    import argparse

    p = argparse.ArgumentParser(prog="python -m up.containerd", description=main.__doc__)
    p.add_argument("what", choices=("mapper-image", "images"))
    args = p.parse_args(argv)
    # Building needs no root, only the tools (running the images does).
    lacking = [t for t in ("umoci", "skopeo", "ldd") if shutil.which(t) is None]
    lacking += [] if _busybox() else ["busybox"]
    if lacking:
        print(f"cannot build images: missing {', '.join(lacking)} (Debian: {PACKAGES})", file=sys.stderr)
        return 1
    tars = [build_mapper_image()] if args.what == "mapper-image" else build_images()
    print("\n".join(map(str, tars)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
