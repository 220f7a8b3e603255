"""Running KubeEdge's own parts (cloudcore, edgecore, the virtual mapper) and a real Kubernetes control
plane as processes, for the interop lane. Processes go through ``tests/_stack.Processes`` (own session,
kill -9, ``<name>.log``); ports come from ``tests/_peers.free_port``."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from tests._peers import free_port, wait_port
from tests._stack import Processes, wait_for

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared"
KUBE_NAMES = ("kube-apiserver", "kube-controller-manager", "kube-scheduler")


def kubernetes_bin() -> Path | None:
    """kube-apiserver, kube-controller-manager and kube-scheduler, unpacked once per machine from
    ``../shared/kubernetes/bin`` (or ``KUBE_BIN_DIR``); None when they are not there."""
    src = Path(os.environ.get("KUBE_BIN_DIR") or SHARED / "kubernetes" / "bin")
    if all(os.access(src / n, os.X_OK) for n in KUBE_NAMES):
        return src
    if not all((src / f"{n}.xz").is_file() for n in KUBE_NAMES):
        return None
    stamp = "-".join(str((src / f"{n}.xz").stat().st_size) for n in KUBE_NAMES)
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "kubeshore" / f"k8s-{stamp}"
    cache.mkdir(parents=True, exist_ok=True)
    for n in KUBE_NAMES:
        out = cache / n
        if out.exists():
            continue
        tmp = cache / f".{n}.{os.getpid()}"
        with open(tmp, "wb") as f:
            subprocess.run(["xz", "-dc", str(src / f"{n}.xz")], stdout=f, check=True)
        tmp.chmod(0o755)
        tmp.replace(out)
    return cache


class ControlPlane:
    """etcd + kube-apiserver + kube-controller-manager + kube-scheduler from ``run-control-plane.sh``,
    under ``root``; stopped by the PIDs the script recorded."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.kubeconfig = str(root / "admin.kubeconfig")

    def start(self) -> None:
        binaries = kubernetes_bin()
        if binaries is None:
            raise RuntimeError(f"no Kubernetes binaries in {SHARED / 'kubernetes' / 'bin'}")
        script = SHARED / "kubernetes" / "run-control-plane.sh"
        env = {**os.environ, "KUBE_BIN_DIR": str(binaries)}
        with open(self.root.parent / f"{self.root.name}.log", "ab") as log:
            done = subprocess.run(
                ["bash", str(script), str(self.root)], env=env, stdout=log, stderr=log, timeout=300
            )
        if done.returncode != 0:
            self.stop()
            raise RuntimeError(f"run-control-plane.sh failed; see {self.root.parent / self.root.name}.log")

    def stop(self) -> None:
        stop = self.root / "stop.sh"
        if stop.exists():
            subprocess.run(["sh", str(stop)], timeout=60, check=False, env={**os.environ, "STOP_GRACE": "2"})

    def kubectl(self, *args: str, stdin: str | None = None, check: bool = True) -> str:
        out = subprocess.run(
            ["kubectl", "--kubeconfig", self.kubeconfig, *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
        )
        if check and out.returncode != 0:
            raise subprocess.SubprocessError(f"kubectl {' '.join(args)}: {out.stderr.strip()}")
        return out.stdout

    def apply(self, manifest: str) -> None:
        self.kubectl("apply", "-f", "-", stdin=manifest)

    def get(self, *args: str) -> dict[str, Any]:
        """``kubectl get ARGS -o json`` as a dict."""
        out: dict[str, Any] = json.loads(self.kubectl("get", *args, "-o", "json"))
        return out

    def apply_kubeedge_crds(self) -> None:
        self.kubectl("apply", "--server-side", "-R", "-f", str(SHARED / "kubeedge" / "crds"))
        wait_for(
            lambda: "devicestatuses.devices.kubeedge.io" in self.kubectl("get", "crd", "-o", "name"),
            60,
            "KubeEdge CRDs established",
        )


def node_ready(kube: Any, node: str) -> str | None:
    """The status of ``node``'s Ready condition ("True", "False", "Unknown"), None without one;
    ``kube`` is anything with ``kubectl(...)`` (a ControlPlane or a tests._stack.Stack)."""
    obj = json.loads(kube.kubectl("get", "node", node, "-o", "json"))
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
        out = subprocess.run(
            ["kubectl", "--kubeconfig", self.kubeconfig, "-n", "kubeedge", "get", "secret", "tokensecret",
             "-o", "jsonpath={.data.tokendata}"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        if out.returncode != 0 or not out.stdout:
            raise subprocess.SubprocessError(out.stderr)
        return base64.b64decode(out.stdout).decode()


class KubeEdgeEdge(_Peer):
    """KubeEdge's edgecore (``edgecore --defaultconfig`` + ``recipes/edgecore-config.py``) under ``root``,
    edged off, MQTT at ``mqtt``, its DMI socket at ``root/dmi.sock``."""

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

    @property
    def dmi_socket(self) -> Path:
        return self.root / "dmi.sock"

    def configure(self, **edgehub: Any) -> None:
        """Override ``modules.edgeHub`` keys (e.g. ``heartbeat``)."""
        cfg = yaml.safe_load(self.config.read_text())
        cfg["modules"]["edgeHub"].update(edgehub)
        self.config.write_text(yaml.safe_dump(cfg, sort_keys=False))

    def start(self) -> None:
        self.procs.start(self.name, self.exe, "--config", str(self.config), "-v=4")


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
