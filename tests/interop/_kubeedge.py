"""Running KubeEdge's own parts (cloudcore, edgecore, the virtual mapper) as processes, for the interop
lane. Processes go through ``tests/_stack.Processes`` (the one supervisor: own session, kill -9,
``<name>.log``); ports come from ``tests/_peers.free_port``; the real control plane is
``tests/_peers.ControlPlane``, as in the realk8s lane."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from kubeshore import cgroups
from tests._peers import Kubectl, free_port, wait_port
from tests._stack import BIN, Processes, Stack, wait_for

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared"


def apply_kubeedge_crds(kube: Kubectl) -> None:
    """KubeEdge's own CRDs (``../shared/kubeedge/crds``), applied and established."""
    kube.kubectl("apply", "--server-side", "-R", "-f", str(SHARED / "kubeedge" / "crds"))
    wait_for(
        lambda: "devicestatuses.devices.kubeedge.io" in kube.kubectl("get", "crd", "-o", "name"),
        60,
        "KubeEdge CRDs established",
    )


def node_ready(kube: Kubectl, node: str) -> str | None:
    """The status of ``node``'s Ready condition ("True", "False", "Unknown"), None without one."""
    obj = kube.get("node", node)
    for c in obj.get("status", {}).get("conditions") or []:
        if c.get("type") == "Ready":
            return str(c.get("status"))
    return None


class _Peer:
    """One of KubeEdge's processes, run by ``procs`` under ``name``."""

    procs: Processes
    name: str

    def kill(self) -> None:
        self.procs.kill9(self.name)

    def log(self) -> str:
        return self.procs.log(self.name)


class KubeEdgeCloud(_Peer):
    """KubeEdge's cloudcore (``recipes/cloudcore-config.sh``) on free ports under ``root``."""

    def __init__(self, procs: Processes, kubeedge_bin: Path, recipes: Path, root: Path, kubeconfig: str):
        self.procs = procs
        self.exe = str(kubeedge_bin / "cloudcore")
        self.recipes = recipes
        self.root = root
        self.kubeconfig = kubeconfig
        self.ws_port = free_port()
        self.https_port = free_port()
        self.monitor_port = free_port()
        subprocess.run(
            ["bash", str(recipes / "cloudcore-config.sh"), str(root), kubeconfig,
             str(self.ws_port), str(self.https_port), str(self.monitor_port)],
            check=True, timeout=30,
        )  # fmt: skip
        self.name = "ke-cloudcore"

    def start(self) -> None:
        self.procs.start(self.name, self.exe, "--config", str(self.root / "cloudcore.yaml"), "-v=4")
        wait_port(self.ws_port, 120)
        wait_port(self.https_port, 60)

    def token(self) -> str:
        """The join token KubeEdge keeps in Secret ``kubeedge/tokensecret``."""
        data = Kubectl(self.kubeconfig).kubectl(
            "-n", "kubeedge", "get", "secret", "tokensecret", "-o", "jsonpath={.data.tokendata}"
        )
        if not data:
            raise subprocess.SubprocessError("Secret kubeedge/tokensecret holds no token yet")
        return base64.b64decode(data).decode()


class KubeEdgeEdge(_Peer):
    """KubeEdge's edgecore (``edgecore --defaultconfig`` + ``recipes/edgecore-config.py``) under ``root``,
    edged off (:meth:`enable_edged` turns it on), MQTT at ``mqtt``, its DMI socket at ``root/dmi.sock``."""

    def __init__(
        self,
        procs: Processes,
        kubeedge_bin: Path,
        recipes: Path,
        root: Path,
        *,
        node: str,
        websocket: str,
        https: str,
        token: str,
        mqtt: str,
    ) -> None:
        self.procs = procs
        self.exe = str(kubeedge_bin / "edgecore")
        self.root = root
        self.node = node
        self.name = f"ke-edgecore-{node}"
        self.config = root / "edgecore.yaml"
        self.cgroup_root: CgroupRoot | None = None
        root.mkdir(parents=True, exist_ok=True)
        default = root / "default.yaml"
        default.write_text(
            subprocess.run([self.exe, "--defaultconfig"], capture_output=True, text=True, check=True).stdout
        )
        subprocess.run(
            [sys.executable, str(recipes / "edgecore-config.py"), str(default), str(self.config), str(root),
             node, websocket, https, token, mqtt, str(free_port())],
            check=True, timeout=30,
        )  # fmt: skip

    @classmethod
    def on_kubeshore(
        cls, stack: Stack, kubeedge_bin: Path, recipes: Path, root: Path, *, node: str, mqtt: str
    ) -> KubeEdgeEdge:
        """KubeEdge's edgecore for ``stack``'s (standalone) cloudcore, joined with a fresh
        ``kubeshore token create`` token, as a KubeEdge user would; not started."""
        token = subprocess.run(
            [str(BIN / "kubeshore"), "token", "create", "--data-dir", str(stack.tmp / "cloud")],
            capture_output=True, text=True, check=True, timeout=60,
        ).stdout.strip()  # fmt: skip
        ports = stack.ports
        return cls(
            stack, kubeedge_bin, recipes, root, node=node, websocket=f"127.0.0.1:{ports['websocketPort']}",
            https=f"127.0.0.1:{ports['httpsPort']}", token=token, mqtt=mqtt,
        )  # fmt: skip

    @property
    def dmi_socket(self) -> Path:
        return self.root / "dmi.sock"

    def configure(self, **edgehub: Any) -> None:
        """Override ``modules.edgeHub`` keys (e.g. ``heartbeat``)."""
        cfg = yaml.safe_load(self.config.read_text())
        cfg["modules"]["edgeHub"].update(edgehub)
        self.config.write_text(yaml.safe_dump(cfg, sort_keys=False))

    def enable_edged(self, runtime_endpoint: str, sandbox_image: str) -> None:
        """Turn on KubeEdge's edged (its embedded kubelet) on the CRI runtime at ``runtime_endpoint``, kept
        to this run on a machine others share: every path under ``root``, its read-only port (where edged
        polls the kubelet's ``/healthz/syncloop`` before it takes Pods) on a free 127.0.0.1 port, and its
        QoS and pod cgroups under a cgroup of its own (:class:`CgroupRoot`). :meth:`start` then runs it
        in a mount namespace of its own, :meth:`cleanup` removes the cgroup once the runtime is stopped."""
        self.cgroup_root = CgroupRoot(f"kebench-{self.node}-{os.getpid()}")
        self.read_only_port = free_port()
        cfg = yaml.safe_load(self.config.read_text())
        edged = cfg["modules"]["edged"]
        edged.update(enable=True, rootDirectory=str(self.root / "kubelet"), podSandboxImage=sandbox_image)
        edged["tailoredKubeletConfig"].update(
            containerRuntimeEndpoint=runtime_endpoint,
            imageServiceEndpoint=runtime_endpoint,
            cgroupDriver="cgroupfs",
            cgroupRoot=self.cgroup_root.path,
            address="127.0.0.1",
            readOnlyPort=self.read_only_port,
            podLogsDir=str(self.root / "pod-logs"),
            staticPodPath=str(self.root / "manifests"),
            volumePluginDir=str(self.root / "volume-plugins"),
        )
        self.config.write_text(yaml.safe_dump(cfg, sort_keys=False))

    def start(self, verbosity: int | None = 4) -> None:
        """Run it; ``verbosity`` is klog's ``-v`` (None: edgecore's default, as a user runs it)."""
        argv = [self.exe, "--config", str(self.config)] + (
            [f"-v={verbosity}"] if verbosity is not None else []
        )
        if self.cgroup_root is None:
            self.procs.start(self.name, *argv)
            return
        self.cgroup_root.create()
        # The kubelet's device-plugin socket is fixed at /var/lib/kubelet/device-plugins: a tmpfs over
        # /var/lib in a mount namespace of its own keeps it (and the kubelet's own mounts) off the host.
        # PATH without the sbin directories: the kubelet then finds no iptables and adds no KUBE-* chains
        # to the shared host's tables (it logs that and goes on; containerd's CNI networks the Pods).
        script = 'mount -t tmpfs -o mode=0755,size=4m kubelet-lib /var/lib && exec "$0" "$@"'
        self.procs.start(
            self.name, "/usr/bin/unshare", "--mount", "--propagation", "private", "/bin/sh", "-c", script,
            *argv, env={"PATH": "/usr/local/bin:/usr/bin:/bin"},
        )  # fmt: skip

    def cleanup(self) -> None:
        """Remove the cgroup :meth:`enable_edged` made (after the runtime has stopped its containers)."""
        if self.cgroup_root is not None:
            self.cgroup_root.remove()


def edged_missing() -> str | None:
    """Why KubeEdge's edged cannot run here as :meth:`KubeEdgeEdge.enable_edged` sets it up (beyond what
    a containerd needs), or None when it can."""
    done = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "true"], capture_output=True, text=True, timeout=30
    )
    if done.returncode != 0:
        return f"no mount namespace for KubeEdge's kubelet (unshare --mount: {done.stderr.strip()})"
    if not os.access("/sys/fs/cgroup", os.W_OK) and not any(
        os.access(h, os.W_OK) for h in cgroups.hierarchies()
    ):
        return "cgroups are not writable (KubeEdge's kubelet needs a cgroup root of its own)"
    return None


class CgroupRoot:
    """A cgroup of its own (``/NAME`` in every hierarchy) for the ``cgroupRoot`` of KubeEdge's kubelet.
    Under the default root (``/``) its pod cgroups would be ``/kubepods/...``, beside those of kubeshore's
    edged, and the kubelet's orphan clean-up kills the processes of every pod cgroup it does not know:
    other runs' Pods on this shared machine. Under its own root it sees only its own."""

    def __init__(self, name: str) -> None:
        self.path = f"/{name}"

    def create(self) -> None:
        for h in cgroups.hierarchies():
            d = h / self.path.lstrip("/")
            d.mkdir(exist_ok=True)
            # cgroup v1 cpuset: a new cgroup has no CPUs or memory nodes until given its parent's.
            for f in ("cpuset.cpus", "cpuset.mems"):
                if (d / f).exists() and not (d / f).read_text().strip():
                    (d / f).write_text((h / f).read_text())

    def remove(self, within: float = 30.0) -> None:
        """rmdir the tree bottom-up, retrying while the last processes in it exit."""
        deadline = time.monotonic() + within
        while cgroups.remove_tree(self.path) and time.monotonic() < deadline:
            time.sleep(0.2)


class VirtualMapper(_Peer):
    """KubeEdge's mapper-framework template with a counter driver (``bin/virtual-mapper``), registered with
    the edgecore at ``edgecore_sock`` for ``protocol``. Its log names what it did: ``LAB NewClient``,
    ``LAB SetDeviceData``, ``LAB StopDevice``."""

    def __init__(
        self,
        procs: Processes,
        kubeedge_bin: Path,
        recipes: Path,
        root: Path,
        edgecore_sock: Path,
        protocol: str = "virtual-lab",
    ) -> None:
        self.procs = procs
        self.exe = str(kubeedge_bin / "virtual-mapper")
        self.root = root
        self.name = f"ke-mapper-{root.name}"
        self.http_port = free_port()
        subprocess.run(
            ["bash", str(recipes / "mapper-config.sh"), str(root), str(edgecore_sock), str(self.http_port),
             protocol],
            check=True, timeout=30,
        )  # fmt: skip

    def start(self) -> None:
        # The template removes and recreates its socket; a stale one from a killed run is harmless.
        self.procs.start(self.name, self.exe, "--config-file", str(self.root / "config.yaml"), "--v", "3")
