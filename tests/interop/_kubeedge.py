"""Running KubeEdge's own parts (cloudcore, edgecore, the virtual mapper) as processes, for the interop
lane. Processes go through ``tests/_stack.Processes`` (the one supervisor: own session, kill -9,
``<name>.log``); ports come from ``tests/_peers.free_port``; the real control plane is
``tests/_peers.ControlPlane``, as in the realk8s lane."""

from __future__ import annotations

import base64
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

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
