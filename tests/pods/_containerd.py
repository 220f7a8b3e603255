"""A real containerd for tests and benchmarks: its own state directory, socket, CNI bridge and subnet,
and locally built images (no registry here): ``localhost/busybox:latest`` (busybox-static, whose
``httpd`` serves HTTP) and ``localhost/pause:latest`` (the sandbox image).

Everything it creates is removed by :meth:`Containerd.stop`: the containerd and shim processes (by
PID), the mounts under its directory, the bridge. See ``../shared/containerd/README.md`` for the recipe.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

TOOLS = ("containerd", "runc", "ctr", "umoci", "skopeo", "ip")
BUSYBOX = "localhost/busybox:latest"
PAUSE = "localhost/pause:latest"
CNI_BIN = Path("/usr/lib/cni")


def _netns() -> list[str]:
    d = Path("/var/run/netns")
    return [p.name for p in d.iterdir()] if d.is_dir() else []


def missing() -> str | None:
    """Why real Pods cannot run on this machine, or None when they can."""
    if os.geteuid() != 0:
        return "not root"
    lacking = [t for t in TOOLS if shutil.which(t) is None and not Path(f"/usr/sbin/{t}").exists()]
    if not Path("/bin/busybox").exists() and not Path("/usr/bin/busybox").exists():
        lacking.append("busybox-static")
    if not (CNI_BIN / "bridge").exists():
        lacking.append("containernetworking-plugins")
    if lacking:
        return "missing " + ", ".join(lacking)
    return None


def _busybox() -> Path:
    for p in (Path("/bin/busybox"), Path("/usr/bin/busybox")):
        if p.exists():
            return p
    raise FileNotFoundError("busybox")


def _image(out: Path, ref: str, entrypoint: list[str]) -> Path:
    """An OCI archive of busybox with ``entrypoint``, tagged ``ref``."""
    tar = out / (ref.split("/")[-1].replace(":", "-") + ".tar")
    if tar.exists():
        return tar
    with tempfile.TemporaryDirectory(prefix="img-", dir=out) as d:
        w = Path(d)

        def run(*argv: str) -> None:
            subprocess.run(argv, cwd=w, check=True, capture_output=True, timeout=120)

        run("umoci", "init", "--layout", "oci")
        run("umoci", "new", "--image", "oci:latest")
        run("umoci", "unpack", "--image", "oci:latest", "bundle")
        root = w / "bundle" / "rootfs"
        (root / "bin").mkdir(parents=True, exist_ok=True)
        shutil.copy2(_busybox(), root / "bin" / "busybox")
        applets = subprocess.run(
            [str(_busybox()), "--list"], capture_output=True, text=True, check=True
        ).stdout.split()
        for a in applets:
            if a != "busybox":
                with contextlib.suppress(FileExistsError):
                    (root / "bin" / a).symlink_to("busybox")
        for sub in ("tmp", "etc", "proc", "sys", "dev", "www", "var"):
            (root / sub).mkdir(exist_ok=True)
        (root / "tmp").chmod(0o1777)
        run("umoci", "repack", "--image", "oci:latest", "bundle")
        args = ["umoci", "config", "--image", "oci:latest", "--config.env", "PATH=/bin"]
        for e in entrypoint:
            args += ["--config.entrypoint", e]
        run(*args)
        tmp = out / f".{tar.name}.{os.getpid()}"
        run("skopeo", "--insecure-policy", "copy", "oci:oci:latest", f"oci-archive:{tmp}:{ref}")
        tmp.replace(tar)
    return tar


def build_images(cache: Path | None = None) -> list[Path]:
    """The busybox and pause images as OCI archives, built once per machine (and busybox build)."""
    bb = _busybox()
    digest = hashlib.sha256(f"{bb.stat().st_size}:{bb.stat().st_mtime_ns}:2".encode()).hexdigest()[:12]
    out = (
        cache
        or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "kubeshore" / f"images-{digest}"
    )
    out.mkdir(parents=True, exist_ok=True)
    return [
        _image(out, BUSYBOX, ["/bin/sh"]),
        _image(out, PAUSE, ["/bin/sh", "-c", 'trap "exit 0" TERM; while :; do sleep 3600 & wait $!; done']),
    ]


class Containerd:
    """containerd under ``root`` with a CNI bridge of its own; ``endpoint`` is its CRI socket URL."""

    def __init__(self, root: Path) -> None:
        self.root = root
        # A short unique bridge name and a /24 of 10.x: the pod network this run creates and removes.
        tag = f"{os.getpid() % 10000:04d}{random.randrange(100):02d}"
        self.bridge = f"ksb{tag}"
        self.subnet_octets = (random.randrange(200, 250), random.randrange(1, 250))
        self.proc: subprocess.Popen[bytes] | None = None
        self._netns_before: set[str] = set()

    @property
    def socket(self) -> Path:
        return self.root / "containerd.sock"

    @property
    def endpoint(self) -> str:
        return f"unix://{self.socket}"

    @property
    def subnet(self) -> str:
        a, b = self.subnet_octets
        return f"10.{a}.{b}.0/24"

    def start(self) -> None:
        r = self.root
        self._netns_before = set(_netns())
        (r / "net.d").mkdir(parents=True, exist_ok=True)
        (r / "net.d" / "10-kubeshore.conflist").write_text(
            f"""{{
  "cniVersion": "1.0.0",
  "name": "kubeshore-{self.bridge}",
  "plugins": [{{
    "type": "bridge", "bridge": "{self.bridge}", "isGateway": true, "ipMasq": false,
    "ipam": {{"type": "host-local", "ranges": [[{{"subnet": "{self.subnet}"}}]],
             "dataDir": "{r / "ipam"}"}}
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
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{CNI_BIN}"
    conf_dir = "{r / "net.d"}"
"""
        )
        log = open(r / "containerd.log", "ab")  # noqa: SIM115 - the process keeps it
        self.proc = subprocess.Popen(
            ["containerd", "--config", str(r / "config.toml")],
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
        deadline = time.monotonic() + 30
        while not self.socket.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"containerd did not start: {(r / 'containerd.log').read_text()[-2000:]}")
            time.sleep(0.05)
        for tar in build_images():
            subprocess.run(
                ["ctr", "-a", str(self.socket), "-n", "k8s.io", "images", "import", str(tar)],
                check=True,
                capture_output=True,
                timeout=120,
            )

    def _shims(self) -> list[int]:
        """PIDs of the shims this containerd started (their command line names its state directory)."""
        pids = []
        needle = str(self.root).encode()
        for p in Path("/proc").iterdir():
            if not p.name.isdigit():
                continue
            with contextlib.suppress(OSError):
                cmd = (p / "cmdline").read_bytes()
                if b"containerd-shim" in cmd and needle in cmd:
                    pids.append(int(p.name))
        return pids

    def container_pids(self) -> list[int]:
        """PIDs of processes inside this containerd's containers (children of its shims)."""
        shims = set(self._shims())
        out = []
        for p in Path("/proc").iterdir():
            if p.name.isdigit():
                with contextlib.suppress(OSError, ValueError, IndexError):
                    ppid = int((p / "stat").read_text().rsplit(")", 1)[1].split()[1])
                    if ppid in shims:
                        out.append(int(p.name))
        return out

    def pod_pids(self, uid: str) -> set[int]:
        """PIDs of the processes of one Pod: those in its cgroup (``/kubepods/pod<uid>``, edged's parent)."""
        needle = f"/kubepods/pod{uid}"
        out = set()
        for p in Path("/proc").iterdir():
            if p.name.isdigit():
                with contextlib.suppress(OSError):
                    if needle in (p / "cgroup").read_text():
                        out.add(int(p.name))
        return out

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        for _ in range(3):
            pids = self.container_pids() + self._shims()
            if not pids:
                break
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.2)
        mounts = []
        with open("/proc/self/mounts") as f:
            for line in f:
                target = line.split()[1].replace("\\040", " ")
                if target.startswith(str(self.root)):
                    mounts.append(target)
        for target in sorted(mounts, key=len, reverse=True):
            subprocess.run(["umount", "-l", target], capture_output=True, timeout=30)
        # Network namespaces containerd created during this run (it removes them itself when sandboxes
        # are stopped; these are what a killed containerd left), then the bridge.
        for name in sorted(set(_netns()) - self._netns_before):
            if name.startswith("cni-"):
                subprocess.run(["umount", f"/var/run/netns/{name}"], capture_output=True, timeout=10)
                with contextlib.suppress(OSError):
                    Path(f"/var/run/netns/{name}").unlink()
        subprocess.run(["ip", "link", "del", self.bridge], capture_output=True, timeout=10)
