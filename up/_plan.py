"""What `kubeshore up` starts, where everything lives in the data directory, and in which order.

Layout of ``DIR`` (default ``./.kubeshore``)::

    up.json            what runs now (supervisor pid, services, phase)
    ports.json         the ports chosen on the first run, reused on every later run
    logs/<name>.log    one log per service and per one-shot command
    cloud/             cloudcore's data dir: the embedded API server's store, CA, admin.kubeconfig
    nodes/<node>/      `kubeshore join`'s data dir: edgecore.yaml, the edge store, mosquitto.conf
    nodes/<node>/dmi/  the DMI socket and the mappers' sockets (all a mapper Pod mounts of the node)
    nodes/<node>/mqtt/ the broker's users (edgecore, mapper, app: <user>.password), its hashed
                       password file and ACL (docs/security.md)

Everything is owner-only (0700 directories, 0600 files): it holds the CA key, Secrets and passwords.
    nodegroups.yaml    two NodeGroups, written when the examples bring none
    examples-applied   present once examples/ was applied (a resume does not apply it again)

The ports are chosen free once and kept because the edge configuration written by `join` names them;
that is what lets a second `kubeshore up` resume where the first stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import hashlib
import json
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import yaml

from kubeshore import filemodes
from up import _mapperpods, containerd
from up._kubectl import Kubectl
from up.processes import ProcessFailed, Service, Supervisor

NODES: tuple[str, ...] = ("edge-1", "edge-2")
# The node of examples/device-modbus-thermostat.yaml: a Modbus TCP simulator and the Modbus mapper run there.
MODBUS_NODE = "edge-2"
# The example's placeholder address, pointed at the simulator by `kubeshore up`.
EXAMPLE_MODBUS_IP = "192.168.10.20"
# The same groups as examples/nodegroups.yaml, for when kubeshore runs without the repository.
NODE_GROUPS: dict[str, str] = {"edge-1": "site-a", "edge-2": "site-b"}
QUICKSTART = Path(__file__).with_name("quickstart.yaml")
REPO_EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


# Who may do what on a node's broker (docs/security.md): edgecore owns the twin topics; mappers write
# reports and states and read results; applications (user "app") only read.
MQTT_USERS = ("edgecore", "mapper", "app")
MQTT_ACL = Path(__file__).with_name("mosquitto.acl")


class PlanError(Exception):
    """Something `kubeshore up` needs is missing or in the way; the message says what to do."""


# --- ports ------------------------------------------------------------------------------------------


@dataclass
class NodePorts:
    mqtt: int
    metaserver: int
    rest: int
    # 0 (any free port) for a ports.json written before edgecore served metrics
    metrics: int = 0
    # the Modbus simulator and the Modbus mapper's REST API (chosen when missing from ports.json)
    modbus: int = 0
    modbus_rest: int = 0


@dataclass
class Ports:
    apiserver: int
    websocket: int
    https: int
    metrics: int
    nodes: dict[str, NodePorts] = field(default_factory=dict)
    #: well-known ports that were taken when these were chosen: what -> (wanted, chosen)
    moved: dict[str, tuple[int, int]] = field(default_factory=dict)

    def all(self) -> dict[str, int]:
        out = {
            "apiserver": self.apiserver,
            "websocket": self.websocket,
            "https": self.https,
            "cloudcore metrics": self.metrics,
        }
        for node, p in self.nodes.items():
            out.update({f"{node} mqtt": p.mqtt, f"{node} metaserver": p.metaserver, f"{node} rest": p.rest})
            if p.metrics:
                out[f"{node} metrics"] = p.metrics
            if p.modbus:
                out[f"{node} modbus"] = p.modbus
            if p.modbus_rest:
                out[f"{node} modbus rest"] = p.modbus_rest
        return out


def free_ports(count: int) -> list[int]:
    """``count`` distinct ports free on 127.0.0.1 right now (held open together so none repeats)."""
    socks = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def preferred_ports(nodes: tuple[str, ...]) -> dict[str, int]:
    """KubeEdge's well-known ports (the n-th node's shifted by n), so the tour's commands work as
    written on a machine where they are free."""
    out = {"apiserver": 6443, "websocket": 10000, "https": 10002, "metrics": 9091}
    for i, node in enumerate(nodes):
        out[f"{node}.mqtt"] = 1884 + i  # 1883 is left to a system-wide mosquitto
        out[f"{node}.metaserver"] = 10550 + i
        out[f"{node}.rest"] = 7777 + i
        out[f"{node}.metrics"] = 10352 + i
        if node == MODBUS_NODE:
            out[f"{node}.modbus"] = 1502
            out[f"{node}.modbus_rest"] = 7787
    return out


def load_or_choose_ports(data_dir: Path, nodes: tuple[str, ...] = NODES, well_known: bool = True) -> Ports:
    path = data_dir / "ports.json"
    wanted = preferred_ports(nodes)
    if path.exists():
        raw = json.loads(path.read_text())
        loaded = Ports(
            apiserver=raw["apiserver"],
            websocket=raw["websocket"],
            https=raw["https"],
            metrics=raw["metrics"],
            nodes={n: NodePorts(**p) for n, p in raw["nodes"].items()},
        )
        # Ports added since this file was written (the Modbus simulator's): chosen now, kept after.
        missing = {
            f"{n}.{f}": wanted[f"{n}.{f}"]
            for n, p in loaded.nodes.items()
            for f in ("modbus", "modbus_rest")
            if not getattr(p, f) and f"{n}.{f}" in wanted
        }
        if not missing:
            return loaded
        taken = set(loaded.all().values())
        for key, port in _choose(missing, well_known, taken, loaded.moved).items():
            node, what = key.split(".")
            setattr(loaded.nodes[node], what, port)
        _save(path, loaded)
        return loaded
    moved: dict[str, tuple[int, int]] = {}
    chosen = _choose(wanted, well_known, set(), moved)
    ports = Ports(
        apiserver=chosen["apiserver"],
        websocket=chosen["websocket"],
        https=chosen["https"],
        metrics=chosen["metrics"],
    )
    for node in nodes:
        ports.nodes[node] = NodePorts(
            mqtt=chosen[f"{node}.mqtt"],
            metaserver=chosen[f"{node}.metaserver"],
            rest=chosen[f"{node}.rest"],
            metrics=chosen[f"{node}.metrics"],
            modbus=chosen.get(f"{node}.modbus", 0),
            modbus_rest=chosen.get(f"{node}.modbus_rest", 0),
        )
    ports.moved = moved if well_known else {}
    data_dir.mkdir(parents=True, exist_ok=True)
    _save(path, ports)
    return ports


def _choose(
    wanted: dict[str, int], well_known: bool, taken: set[int], moved: dict[str, tuple[int, int]]
) -> dict[str, int]:
    """A port for each key: the wanted one when free (and ``well_known``), else any free one."""
    spare = iter(free_ports(len(wanted)))
    chosen: dict[str, int] = {}
    for key, port in wanted.items():
        if not well_known or port_in_use(port) or port in taken:
            want = port
            port = next(spare)
            while port in wanted.values() or port in chosen.values() or port in taken:
                port = free_ports(1)[0]
            moved[key.replace(".", " ")] = (want, port)
        chosen[key] = port
    return chosen


def _save(path: Path, ports: Ports) -> None:
    saved = {k: v for k, v in vars(ports).items() if k not in ("nodes", "moved")}
    saved["nodes"] = {n: vars(p) for n, p in ports.nodes.items()}
    path.write_text(json.dumps(saved, indent=2))


# --- readiness checks ---------------------------------------------------------------------------------


async def tcp_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        async with asyncio.timeout(1.0):
            _, writer = await asyncio.open_connection(host, port)
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


async def http_ok(port: int, path: str, host: str = "127.0.0.1") -> bool:
    """A plain-HTTP GET answered with a 2xx status (enough for health and ping endpoints)."""
    try:
        async with asyncio.timeout(1.0):
            reader, writer = await asyncio.open_connection(host, port)
    except (OSError, TimeoutError):
        return False
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        await writer.drain()
        async with asyncio.timeout(2.0):
            status_line = await reader.readline()
    except (OSError, TimeoutError):
        return False
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    parts = status_line.split()
    return len(parts) >= 2 and parts[1].startswith(b"2")


# --- commands -----------------------------------------------------------------------------------------


def find_command(name: str) -> str | None:
    """A console script from the environment kubeshore runs in, else from PATH."""
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    return shutil.which(name)


def kubeshore_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "kubeshore.cli", *args]


CHILD_ENV = {"PYTHONUNBUFFERED": "1"}


# --- the plan -----------------------------------------------------------------------------------------


@dataclass
class Step:
    title: str
    run: Callable[[], Awaitable[None]]


@dataclass
class Plan:
    data_dir: Path
    ports: Ports
    examples: Path | None = REPO_EXAMPLES
    nodes: tuple[str, ...] = NODES
    ready_timeout: float = 60.0
    #: why Pods are not run (no root, no containerd...), or None: each node gets a containerd of its own
    pods_unavailable: str | None = field(default_factory=containerd.missing)
    #: how the mappers run: "pods", "processes", or "auto" (Pods where each node has a containerd)
    mappers: str = "auto"
    _image: asyncio.Task[Path] | None = field(default=None, repr=False)
    _imported: dict[str, asyncio.Task[None]] = field(default_factory=dict, repr=False)

    def mapper_mode(self) -> tuple[str, str]:
        """("pods" or "processes", why): said in the summary, the live view's data (up.json) and docs."""
        if self.mappers == "processes":
            return "processes", "chosen with --mappers=processes"
        why = None
        if self.pods_unavailable:
            why = f"Pods are not run on this machine: {self.pods_unavailable}"
        elif not _mapperpods.TEMPLATE.exists():
            why = f"no {_mapperpods.TEMPLATE} (kubeshore runs outside its repository)"
        else:
            for node in self.nodes:
                if self.joined(node) and self.dmi_socket(node).parent == self.node_dir(node):
                    why = (
                        f"{node} was joined with its DMI socket in its data directory, which holds its keys "
                        "and a mapper Pod must not mount; delete the nodes/ directory to join afresh"
                    )
                    break
        if why is None:
            return (
                "pods",
                "each node runs Pods on its own containerd (--mappers=processes for host processes)",
            )
        if self.mappers == "pods":
            raise PlanError(f"--mappers=pods: {why}")
        return "processes", why

    @property
    def cloud_dir(self) -> Path:
        return self.data_dir / "cloud"

    @property
    def kubeconfig(self) -> Path:
        return self.cloud_dir / "admin.kubeconfig"

    def node_dir(self, node: str) -> Path:
        return self.data_dir / "nodes" / node

    def edgecore_config(self, node: str) -> Path:
        return self.node_dir(node) / "edgecore.yaml"

    def dmi_socket(self, node: str) -> Path:
        """As the node's edgecore.yaml names it once joined (data dirs joined before the ``dmi/``
        directory keep theirs), else ``nodes/<node>/dmi/dmi.sock``."""
        if self.joined(node):
            with contextlib.suppress(OSError, yaml.YAMLError, AttributeError, TypeError):
                named = (yaml.safe_load(self.edgecore_config(node).read_text()).get("dmi") or {}).get(
                    "socket"
                )
                if named:
                    return Path(named)
        return self.node_dir(node) / "dmi" / "dmi.sock"

    def runtime(self, node: str) -> containerd.NodeRuntime:
        # Outside the node's data dir: edgecore keeps that owner-only, image layers need their modes.
        # Bridge and subnet from the data dir, so two platforms on one machine do not share a network.
        index = self.nodes.index(node) if node in self.nodes else len(self.nodes)
        h = int(hashlib.sha256(str(self.data_dir.resolve()).encode()).hexdigest()[:8], 16)
        subnet = f"10.{240 + h % 10}.{(h >> 8) % 200 + index}.0/24"
        return containerd.NodeRuntime(self.data_dir / "runtime" / node, f"ks{h % 65536:04x}-{index}", subnet)

    def containerd(self, node: str) -> Service:
        rt = self.runtime(node)

        async def ready() -> bool:
            return rt.serving()

        return Service(f"containerd-{node}", rt.argv, ready=ready)

    def mapper_socket(self, node: str, driver: str = "virtual") -> Path:
        return self.dmi_socket(node).parent / f"{driver}-mapper.sock"

    @property
    def examples_marker(self) -> Path:
        return self.data_dir / "examples-applied"

    def kubectl(self) -> Kubectl:
        return Kubectl(self.kubeconfig)

    def joined(self, node: str) -> bool:
        return self.edgecore_config(node).exists()

    # prerequisites --------------------------------------------------------------------------------

    def missing(self) -> list[str]:
        """Everything that must be installed first, each with how to get it."""
        out = []
        if shutil.which("mosquitto") is None and not Path("/usr/sbin/mosquitto").exists():
            out.append("mosquitto (the MQTT broker): apt-get install mosquitto, or run `make up` as root")
        elif shutil.which("mosquitto_passwd") is None:
            out.append("mosquitto_passwd (comes with mosquitto): apt-get install mosquitto")
        if not Kubectl.available():
            out.append("kubectl: install it from your distribution (kubernetes-client) or kubernetes.io")
        for name in ("cloudcore", "edgecore"):
            if find_command(name) is None:
                out.append(
                    f"{name}: not installed in this environment (pip install -e '.[all]' in the repository)"
                )
        return out

    def check_ports(self) -> None:
        busy = [f"{what} {port}" for what, port in self.ports.all().items() if port_in_use(port)]
        if busy:
            raise PlanError(
                "ports chosen for this data directory are taken by other programs: "
                + ", ".join(busy)
                + f"; stop them, or use another --data-dir (or delete {self.data_dir / 'ports.json'} "
                "and the nodes/ directory to join afresh)"
            )

    # services -------------------------------------------------------------------------------------

    def cloudcore(self) -> Service:
        argv = [
            find_command("cloudcore") or "cloudcore",
            "--standalone",
            "--data-dir",
            str(self.cloud_dir),
            "--bind",
            "127.0.0.1",
            "--apiserver-port",
            str(self.ports.apiserver),
            "--websocket-port",
            str(self.ports.websocket),
            "--https-port",
            str(self.ports.https),
            "--metrics-port",
            str(self.ports.metrics),
        ]
        kubectl = self.kubectl()

        async def ready() -> bool:
            return await tcp_open(self.ports.websocket) and await kubectl.api_ready()

        return Service("cloudcore", argv, env=CHILD_ENV, ready=ready, stop_last=True)

    def mqtt_dir(self, node: str) -> Path:
        return self.node_dir(node) / "mqtt"

    def mqtt_password_file(self, node: str, user: str) -> Path:
        return self.mqtt_dir(node) / f"{user}.password"

    def mqtt_credentials(self, node: str) -> None:
        """Each user's password (made once, kept for later runs), the broker's hashed password file
        and its ACL."""
        d = filemodes.private_dir(self.mqtt_dir(node))
        lines = []
        for user in MQTT_USERS:
            path = self.mqtt_password_file(node, user)
            if not path.exists():
                filemodes.write_private(path, secrets.token_urlsafe(24).encode())
            lines.append(f"{user}:{path.read_text().strip()}\n")
        passwd = d / "passwd"
        filemodes.write_private(passwd, "".join(lines).encode())
        # Hashed in place from a file: a password among the arguments would show in ps.
        done = subprocess.run(
            [shutil.which("mosquitto_passwd") or "mosquitto_passwd", "-U", str(passwd)],
            capture_output=True,
            text=True,
            timeout=30,
        )
        if done.returncode != 0:
            raise PlanError(
                f"mosquitto_passwd -U {passwd} failed: {done.stderr.strip() or done.stdout.strip()}"
            )
        filemodes.write_private(d / "acl", MQTT_ACL.read_bytes())

    def mosquitto(self, node: str) -> Service:
        conf = self.node_dir(node) / "mosquitto.conf"
        self.mqtt_credentials(node)
        filemodes.write_private(
            conf,
            (
                f"# written by kubeshore up: the MQTT broker of edge node {node}\n"
                # Run as this user (mosquitto started as root would switch to user mosquitto, which
                # cannot read the owner-only password file).
                f"user {getpass.getuser()}\n"
                f"listener {self.ports.nodes[node].mqtt} 127.0.0.1\n"
                "allow_anonymous false\n"
                f"password_file {self.mqtt_dir(node) / 'passwd'}\n"
                f"acl_file {self.mqtt_dir(node) / 'acl'}\n"
                "persistence false\n"
                # Otherwise small messages wait for the subscriber's delayed ACK: ~40 ms per twin document.
                "set_tcp_nodelay true\n"
            ).encode(),
        )
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        port = self.ports.nodes[node].mqtt

        async def ready() -> bool:
            return await tcp_open(port)

        return Service(f"mosquitto-{node}", [binary, "-c", str(conf)], ready=ready)

    def edgecore(self, node: str) -> Service:
        argv = [find_command("edgecore") or "edgecore", "--config", str(self.edgecore_config(node))]
        kubectl = self.kubectl()
        started: list[float] = []

        async def ready() -> bool:
            if not started:
                started.append(time.time())
            return await kubectl.node_ready(node, since=started[0])

        return Service(f"edgecore-{node}", argv, env=CHILD_ENV, cwd=self.node_dir(node), ready=ready)

    def mapper(self, node: str) -> Service:
        rest = self.ports.nodes[node].rest
        argv = kubeshore_argv(
            "mapper",
            "run",
            "virtual",
            "--edgecore-sock",
            str(self.dmi_socket(node)),
            "--socket",
            str(self.mapper_socket(node)),
            "--rest-port",
            str(rest),
        )

        async def ready() -> bool:
            return await http_ok(rest, "/readyz")

        return Service(f"mapper-{node}", argv, env=CHILD_ENV, cwd=self.node_dir(node), ready=ready)

    def modbus_simulator(self, node: str) -> Service:
        port = self.ports.nodes[node].modbus
        argv = [sys.executable, "-m", "mappers.modbus.simulator", "--port", str(port)]

        async def ready() -> bool:
            return await tcp_open(port)

        return Service(f"modbus-simulator-{node}", argv, env=CHILD_ENV, ready=ready)

    def modbus_config(self, node: str) -> dict[str, Any]:
        """The thermostat pushes its temperature to the node's broker, as user "mapper" (the password
        stays in an owner-only file or a Secret, not in the Device)."""
        password = self.mqtt_password_file(node, "mapper")
        if not password.exists():
            return {}
        return {"sinks": {"mqtt": {"username": "mapper", "password": password.read_text().strip()}}}

    def modbus_mapper(self, node: str) -> Service:
        rest = self.ports.nodes[node].modbus_rest
        password = self.mqtt_password_file(node, "mapper")
        config = self.node_dir(node) / "modbus-mapper.yaml"
        if password.exists():
            filemodes.write_private(config, yaml.safe_dump(self.modbus_config(node)).encode())
        argv = kubeshore_argv(
            "mapper", "run", "modbus",
            "--edgecore-sock", str(self.dmi_socket(node)),
            "--socket", str(self.mapper_socket(node, "modbus")),
            "--rest-port", str(rest),
            *(["--config", str(config)] if password.exists() else []),
        )  # fmt: skip

        async def ready() -> bool:
            return await http_ok(rest, "/readyz")

        return Service(f"modbus-mapper-{node}", argv, env=CHILD_ENV, cwd=self.node_dir(node), ready=ready)

    def mapper_image(self) -> asyncio.Task[Path]:
        """The mapper image, built once in a thread from the first call on (a few seconds the first time
        on a machine, then cached); awaited where a node imports it."""
        if self._image is None:
            self._image = asyncio.create_task(asyncio.to_thread(containerd.build_mapper_image))
        return self._image

    def mapper_imported(self, node: str) -> asyncio.Task[None]:
        """The mapper image imported into ``node``'s containerd: started as soon as that containerd
        serves, so that unpacking it overlaps the node's join and edgecore's start."""
        if node not in self._imported:

            async def run() -> None:
                tar = await self.mapper_image()
                await asyncio.to_thread(self.runtime(node).import_images, [tar])

            self._imported[node] = asyncio.create_task(run())
        return self._imported[node]

    async def mapper_pod(
        self, node: str, driver: str, rest: int, config: dict[str, Any] | None = None
    ) -> None:
        """Mapper ``driver`` of ``node`` as a Pod: the image imported into the node's containerd,
        deploy/04-mapper-virtual.yaml pinned to the node applied through the API (its configuration in
        a Secret when it holds credentials), then ready once it says it is registered with edgecore
        (``/readyz``; host network)."""
        await self.mapper_imported(node)
        docs = _mapperpods.manifests(
            _mapperpods.TEMPLATE, node=node, driver=driver, dmi_dir=self.dmi_socket(node).parent,
            rest_port=rest, socket_name=self.mapper_socket(node, driver).name, config=config,
            secret=bool(config), labels=_mapperpods.MANAGED,
        )  # fmt: skip
        kubectl = self.kubectl()
        await kubectl.run("apply", "-f", "-", stdin=yaml.safe_dump_all(docs).encode(), within=30)
        deadline = time.monotonic() + self.ready_timeout
        while not await http_ok(rest, "/readyz"):
            if time.monotonic() > deadline:
                raise ProcessFailed(
                    f"mapper {driver} Pod on {node} not serving on 127.0.0.1:{rest} within "
                    f"{self.ready_timeout:.0f} s: {await self._pod_problem(docs[1]['metadata']['name'])}"
                )
            await asyncio.sleep(0.3)

    async def _pod_problem(self, name: str) -> str:
        """What `kubectl get pod` would show of the Deployment's Pod: phase and container reasons."""
        try:
            pods = await self.kubectl().get_items("pods", "-l", f"app.kubernetes.io/name={name}")
        except Exception as exc:
            return f"its Pod cannot be read ({exc})"
        if not pods:
            return "no Pod was created for it"
        st = pods[0].get("status") or {}
        reasons = [
            f"{state}: {detail.get('reason', '')} {detail.get('message', '')}".strip()
            for cs in st.get("containerStatuses") or []
            for state, detail in (cs.get("state") or {}).items()
            if state != "running" and isinstance(detail, dict)
        ]
        return f"Pod {pods[0]['metadata']['name']} {st.get('phase', '?')}" + (
            f" ({'; '.join(reasons)})" if reasons else ""
        )

    async def remove_mapper_pods(self) -> None:
        """Mapper Pods an earlier run made (with --mappers=pods): they would hold the sockets and ports
        the host processes need."""
        selector = ",".join(f"{k}={v}" for k, v in _mapperpods.MANAGED.items())
        await self.kubectl().run(
            "delete", "deployments,configmaps,secrets", "-l", selector, "--ignore-not-found", "--wait=false"
        )
        # Their containers stop before the processes bind the same ports.
        deadline = time.monotonic() + 60
        while await self.kubectl().get_items("pods", "-l", selector):
            if time.monotonic() > deadline:
                raise ProcessFailed("mapper Pods of an earlier run did not stop within 60 s")
            await asyncio.sleep(0.5)

    async def point_thermostat_at_simulator(self) -> None:
        """The example thermostat names a placeholder address (and a broker on 1883): on this machine
        it is the simulator and the node's broker. Patched only while it still names the placeholder."""
        try:
            out = await self.kubectl().run("get", "device", "thermostat-1", "-o", "json", within=20)
        except Exception:
            return  # not applied, or deleted by the user
        device = json.loads(out)
        spec = device.get("spec") or {}
        config = (spec.get("protocol") or {}).get("configData") or {}
        if config.get("ip") != EXAMPLE_MODBUS_IP:
            return
        node = str(spec.get("nodeName") or MODBUS_NODE)
        if node not in self.ports.nodes:
            return
        ops: list[dict[str, Any]] = [
            {"op": "test", "path": "/spec/protocol/configData/ip", "value": EXAMPLE_MODBUS_IP},
            {"op": "replace", "path": "/spec/protocol/configData/ip", "value": "127.0.0.1"},
            {"op": "add", "path": "/spec/protocol/configData/port", "value": self.ports.nodes[node].modbus},
        ]
        for i, prop in enumerate(spec.get("properties") or []):
            if ((prop.get("pushMethod") or {}).get("mqtt") or {}).get("address"):
                # The node's broker, on a topic its ACL lets mappers publish (KubeEdge's data topic).
                topic = f"$ke/events/device/default/thermostat-1/data/{prop.get('name')}"
                ops.append(
                    {"op": "replace", "path": f"/spec/properties/{i}/pushMethod/mqtt/topic", "value": topic}
                )
                address = f"tcp://127.0.0.1:{self.ports.nodes[node].mqtt}"
                ops.append(
                    {
                        "op": "replace",
                        "path": f"/spec/properties/{i}/pushMethod/mqtt/address",
                        "value": address,
                    }
                )
        await self.kubectl().run("patch", "device", "thermostat-1", "--type=json", "-p", json.dumps(ops))

    def join_argv(self, node: str) -> list[str]:
        """`kubeshore join` of ``node``; the token goes in its environment (``join_env``), where other
        users cannot read it, unlike arguments."""
        p = self.ports.nodes[node]
        return kubeshore_argv(
            "join",
            "--cloudcore",
            f"127.0.0.1:{self.ports.websocket}",
            "--https-port",
            str(self.ports.https),
            "--node-name",
            node,
            "--data-dir",
            str(self.node_dir(node)),
            "--metaserver-port",
            str(p.metaserver),
            "--metrics-port",
            str(p.metrics),
            "--mqtt-url",
            f"tcp://127.0.0.1:{p.mqtt}",
            "--mqtt-username",
            "edgecore",
            "--mqtt-password-file",
            str(self.mqtt_password_file(node, "edgecore")),
            "--dmi-socket",
            str(self.dmi_socket(node)),
            *(() if self.pods_unavailable else self.runtime(node).join_flags),
        )

    def examples_kinds(self) -> set[tuple[str, str]]:
        """(kind, name) of every object in the examples directory."""
        found: set[tuple[str, str]] = set()
        if self.examples is None or not self.examples.is_dir():
            return found
        for path in sorted(self.examples.glob("*.y*ml")):
            for doc in yaml.safe_load_all(path.read_text()):
                if isinstance(doc, dict):
                    found.add((str(doc.get("kind")), str((doc.get("metadata") or {}).get("name"))))
        return found

    def nodegroups_manifest(self) -> Path:
        """Two NodeGroups, one node each; used when the examples bring none."""
        docs = []
        for group in sorted(set(NODE_GROUPS.values())):
            members = [n for n in self.nodes if NODE_GROUPS.get(n) == group]
            docs.append(
                "apiVersion: apps.kubeedge.io/v1alpha1\nkind: NodeGroup\n"
                f"metadata:\n  name: {group}\n  labels:\n    app.kubernetes.io/managed-by: kubeshore-up\n"
                f"spec:\n  nodes: [{', '.join(members)}]\n"
            )
        path = self.data_dir / "nodegroups.yaml"
        path.write_text("---\n".join(docs))
        return path

    # the steps ------------------------------------------------------------------------------------

    def steps(self, sup: Supervisor) -> list[Step]:
        token: dict[str, str] = {}

        async def start(service: Service, within: float | None = None) -> None:
            await sup.start(service)
            await sup.wait_ready(service.name, within or self.ready_timeout)

        async def create_token() -> None:
            out = await sup.run_once(
                "token",
                kubeshore_argv("token", "create", "--data-dir", str(self.cloud_dir)),
                secret_stdout=True,
            )
            lines = [line.strip() for line in out.splitlines() if line.strip()]
            if not lines:
                raise ProcessFailed("kubeshore token create printed no token")
            token["value"] = lines[-1]

        def join(node: str) -> Callable[[], Awaitable[None]]:
            async def run() -> None:
                if "value" not in token:
                    await create_token()
                filemodes.private_dir(self.node_dir(node))
                self.mqtt_credentials(node)
                await sup.run_once(
                    f"join-{node}", self.join_argv(node), env={"KUBESHORE_JOIN_TOKEN": token["value"]}
                )

            return run

        kinds = self.examples_kinds()

        async def apply_groups() -> None:
            await self.kubectl().run("apply", "-f", str(self.nodegroups_manifest()))

        async def apply_examples() -> None:
            assert self.examples is not None
            await self.kubectl().run("apply", "-f", str(self.examples), within=60)
            if ("DeviceModel", "virtual-thermometer") in kinds:
                await self.kubectl().run("apply", "-f", str(QUICKSTART), within=30)
            if self.pods_unavailable and any(kind == "EdgeApplication" for kind, _ in kinds):
                # Say on the object (the live view shows it) why its Pods stay Pending.
                await self.kubectl().run(
                    "annotate", "edgeapplications", "--all", "--overwrite",
                    f"kubeshore.io/note=Pods are not run on this machine: {self.pods_unavailable}",
                )  # fmt: skip
            self.examples_marker.write_text(f"{self.examples}\n")

        async def start_containerd(node: str) -> None:
            rt = self.runtime(node)
            rt.root.mkdir(parents=True, exist_ok=True, mode=0o700)
            rt.write_config()
            await start(self.containerd(node))
            if pods:
                self.mapper_imported(node)  # built and imported meanwhile; the mapper step waits for it
            # Built once per machine (~1 s), imported into each node's containerd (~0.2 s).
            await asyncio.to_thread(rt.import_images)

        pods = self.mapper_mode()[0] == "pods"
        steps = [Step("cloudcore with the embedded API server", partial(start, self.cloudcore(), 90.0))]
        if self.pods_unavailable is None:
            for node in self.nodes:
                steps.append(Step(f"containerd of {node} (Pods)", partial(start_containerd, node)))
        if not pods and any(self.joined(n) for n in self.nodes):
            steps.append(Step("no mapper Pods of an earlier run", self.remove_mapper_pods))
        for node in self.nodes:
            if not self.joined(node):
                steps.append(Step(f"join {node}", join(node)))
        modbus = ("DeviceModel", "modbus-thermostat") in kinds and MODBUS_NODE in self.nodes
        for node in self.nodes:
            steps.append(Step(f"MQTT broker of {node}", partial(start, self.mosquitto(node))))
            steps.append(Step(f"edgecore {node} (until Ready)", partial(start, self.edgecore(node))))
            rest = self.ports.nodes[node].rest
            if pods:
                run = partial(self.mapper_pod, node, "virtual", rest)
                steps.append(Step(f"virtual mapper on {node} (Pod)", run))
            else:
                steps.append(Step(f"virtual mapper on {node}", partial(start, self.mapper(node))))
            if modbus and node == MODBUS_NODE:
                simulator = self.modbus_simulator(node)
                steps.append(Step(f"Modbus thermostat simulator on {node}", partial(start, simulator)))
                if pods:
                    # The password was made when the broker was planned above; it goes in a Secret.
                    run = partial(
                        self.mapper_pod,
                        node,
                        "modbus",
                        self.ports.nodes[node].modbus_rest,
                        self.modbus_config(node),
                    )
                    steps.append(Step(f"Modbus mapper on {node} (Pod)", run))
                else:
                    steps.append(Step(f"Modbus mapper on {node}", partial(start, self.modbus_mapper(node))))
        # Only once: applying them again on a resume would undo what the user changed since.
        if kinds and not self.examples_marker.exists():
            steps.append(Step(f"examples from {self.examples}", apply_examples))
        if not any(kind == "NodeGroup" for kind, _ in kinds):
            steps.append(Step("node groups", apply_groups))
        if modbus:
            steps.append(Step("thermostat-1 pointed at the simulator", self.point_thermostat_at_simulator))
        return steps


def describe(plan: Plan) -> dict[str, Any]:
    """What a user needs to reach everything (printed by `up`, kept in up.json)."""
    mode, why = plan.mapper_mode()
    return {
        "kubeconfig": str(plan.kubeconfig),
        "mappers": mode,
        "mappers_reason": why,
        "apiserver": f"https://127.0.0.1:{plan.ports.apiserver}",
        "cloudcore": f"127.0.0.1:{plan.ports.websocket}",
        "cloudcore_metrics": f"http://127.0.0.1:{plan.ports.metrics}/metrics",
        "nodes": {
            node: {
                "mqtt": f"127.0.0.1:{p.mqtt}",
                "mqtt_app_password_file": str(plan.mqtt_password_file(node, "app")),
                "metaserver": f"http://127.0.0.1:{p.metaserver}",
                "mapper_rest": f"http://127.0.0.1:{p.rest}",
                **({"modbus_mapper_rest": f"http://127.0.0.1:{p.modbus_rest}"} if p.modbus_rest else {}),
                "edgecore_metrics": f"http://127.0.0.1:{p.metrics}/metrics",
                "dmi_socket": str(plan.dmi_socket(node)),
            }
            for node, p in plan.ports.nodes.items()
        },
    }
