"""The full kubeshore stack as real processes, for end-to-end tests driven from kubectl: cloudcore,
``kubeshore token create`` + ``kubeshore join`` for one edge node, edgecore, and any further process
(mappers). Every process runs in its own session so it can be killed with -9.

Two backends: standalone cloudcore with its embedded API server, or (given a :class:`ControlPlane`) the
real control plane, with cloudcore and ``kubeshore nodegroup-controller`` run on the host as docs/install.md
says: CRDs and deploy/'s ServiceAccounts and RBAC applied by the admin, each process holding a token of its
ServiceAccount. Their API calls are recorded (``api-<name>.jsonl``) to check that RBAC against."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml
from _peers import ControlPlane, Kubectl, http_get, parse_metrics

from up import processes

BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[1]
# sitecustomize that records every request the kubernetes client makes (KUBESHORE_API_TRACE=file).
API_TRACE_DIR = Path(__file__).resolve().parent / "_apitrace"


# What a check may raise while the system is still converging (kubectl exits, half-written files).
_NOT_YET = (OSError, subprocess.SubprocessError, ValueError, KeyError, IndexError, TypeError, sqlite3.Error)


def wait_for(check: Callable[[], Any], within: float = 30.0, what: str = "condition") -> Any:
    """Poll ``check`` (blocking) until it returns something truthy; kubectl errors count as not yet."""
    deadline = time.monotonic() + within
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
            if last:
                return last
        except _NOT_YET as exc:
            last = exc
        time.sleep(0.2)
    raise AssertionError(f"{what} not reached within {within}s (last: {last!r})")


class Processes(processes.Processes):
    """The one supervisor (``up.processes``) for the tests: named processes under ``tmp``, run there and
    logging to ``tmp/<name>.log``; ``stop_all`` kills every group with -9. A bare command name is one of
    this venv's."""

    def __init__(self, tmp: Path) -> None:
        super().__init__(tmp, cwd=tmp)
        self.tmp = tmp

    def start(
        self, name: str, *argv: str, env: Mapping[str, str] | None = None, cwd: Path | None = None
    ) -> subprocess.Popen[bytes]:
        exe = argv[0] if "/" in argv[0] else str(BIN / argv[0])
        return super().start(name, exe, *argv[1:], env=env, cwd=cwd)


def start_apiserver(procs: processes.Processes, data_dir: Path, *flags: str, name: str = "apiserver") -> str:
    """``kubeshore apiserver --port 0`` (the embedded API server alone) as ``name`` under ``procs``; returns
    its URL once it serves, failing with its log if it exits first."""
    log = procs.log_path(name)
    offset = log.stat().st_size if log.exists() else 0  # a restart appends: read only this run's lines
    proc = procs.start(
        name, sys.executable, "-m", "kubeshore.cli", "apiserver", "--data-dir", str(data_dir), "--port", "0",
        *flags,
    )  # fmt: skip

    def serving() -> str | None:
        if proc.poll() is not None:
            raise AssertionError(f"{name} exited with {proc.returncode}:\n{procs.log(name)[-2000:]}")
        with log.open("rb") as f:
            f.seek(offset)
            found = f.read().decode(errors="replace").partition("serving on ")[2]
        return found.split(";")[0] if ";" in found else None

    url: str = wait_for(serving, 60, f"{name} serving")
    return url


class Stack(Processes, Kubectl):
    """cloudcore + one joined edge node (``edge-1``) under ``tmp``; ``broker`` is the MQTT URL.
    With ``cluster``, cloudcore runs against that real control plane instead of standalone."""

    def __init__(self, tmp: Path, broker: str, cluster: ControlPlane | None = None) -> None:
        super().__init__(tmp)
        Kubectl.__init__(self, cluster.kubeconfig if cluster else str(tmp / "cloud" / "admin.kubeconfig"))
        self.broker = broker
        self.cluster = cluster
        self.ports: dict[str, Any] = {}
        self.edge_dir = tmp / "edge-1"
        self._installed = False

    @property
    def backend(self) -> str:
        return "realk8s" if self.cluster else "embedded"

    def install(self) -> None:
        """As the cluster's admin: the CRDs, the kubeedge namespace and the ServiceAccounts and RBAC of
        deploy/ (docs/install.md, "cloud side on the host")."""
        self.kubectl(
            "apply", "-f", str(REPO / "crds"), "-f", str(REPO / "deploy" / "00-namespace.yaml"),
            "-f", str(REPO / "deploy" / "01-cloudcore-rbac.yaml"),
            "-f", str(REPO / "deploy" / "03-nodegroup-controller-rbac.yaml"),
        )  # fmt: skip
        self.kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")
        self._installed = True

    def service_account_kubeconfig(self, account: str) -> Path:
        """A kubeconfig holding a fresh token of ServiceAccount ``kubeedge/<account>``, written with the
        commands docs/install.md gives."""
        assert self.cluster is not None
        token = self.kubectl("create", "token", account, "-n", "kubeedge", "--duration=2h").strip()
        path = self.tmp / f"{account}.kubeconfig"
        ca = str(self.cluster.dir / "pki" / "ca.crt")
        for args in (
            ["set-cluster", "cluster", f"--server={self.cluster.server}", f"--certificate-authority={ca}",
             "--embed-certs"],
            ["set-credentials", account, f"--token={token}"],
            ["set-context", "default", "--cluster=cluster", f"--user={account}"],
            ["use-context", "default"],
        ):  # fmt: skip
            subprocess.run(
                ["kubectl", "config", f"--kubeconfig={path}", *args],
                capture_output=True,
                check=True,
                timeout=30,
            )
        path.chmod(0o600)
        return path

    def _traced(self, name: str) -> dict[str, str]:
        return {
            "PYTHONPATH": os.pathsep.join([str(API_TRACE_DIR), os.environ.get("PYTHONPATH", "")]),
            "KUBESHORE_API_TRACE": str(self.tmp / f"api-{name}.jsonl"),
        }

    def start_cloudcore(self, *, same_ports: bool = False, **config: Any) -> None:
        """Start cloudcore; ``config`` holds extra config-file keys (camelCase), e.g. flush intervals;
        ``same_ports``: on the ports of the previous start (a restart its nodes reconnect to)."""
        data = self.tmp / "cloud"
        extra: list[str] = []
        if config:
            path = self.tmp / "cloudcore.yaml"
            path.write_text(yaml.safe_dump(config))
            extra = ["--config", str(path)]
        ports = {"websocketPort": 0, "httpsPort": 0, "metricsPort": 0}
        if same_ports:
            ports = {k: self.ports[k] for k in ports}
        extra += [arg for k, v in ports.items() for arg in ("--" + k.removesuffix("Port") + "-port", str(v))]
        state = data / "cloudcore.json"
        state.unlink(missing_ok=True)
        if self.cluster is None:
            api_port = self.ports["apiserverPort"] if same_ports else 0
            self.start(
                "cloudcore", str(BIN / "cloudcore"), "--standalone", "--data-dir", str(data),
                "--bind", "127.0.0.1", "--apiserver-port", str(api_port), "--log-format", "json", *extra,
            )  # fmt: skip
        else:
            if not self._installed:
                self.install()
            self.start(
                "cloudcore", str(BIN / "cloudcore"),
                "--kubeconfig", str(self.service_account_kubeconfig("cloudcore")), "--data-dir", str(data),
                "--bind", "127.0.0.1", "--log-format", "json", *extra,
                env=self._traced("cloudcore"),
            )  # fmt: skip
        wait_for(state.exists, 60, "cloudcore.json")
        self.ports = json.loads(state.read_text())

    def start_nodegroup_controller(self) -> None:
        """On the real cluster, ``kubeshore nodegroup-controller`` with its ServiceAccount's token
        (standalone cloudcore runs the controllers in-process)."""
        if self.cluster is None:
            return
        self.start(
            "nodegroup-controller", str(BIN / "kubeshore"), "nodegroup-controller",
            "--kubeconfig", str(self.service_account_kubeconfig("nodegroup-controller")),
            "--resync-seconds", "10", "--log-format", "json",
            env=self._traced("nodegroup-controller"),
        )  # fmt: skip

    def join_edge(
        self, name: str = "edge-1", data_dir: Path | None = None, extra: tuple[str, ...] = ()
    ) -> Path:
        """Join node ``name`` (files under ``data_dir``, default ``edge_dir``; ``extra``: more join flags);
        returns its edgecore.yaml."""
        data_dir = data_dir or self.edge_dir
        where = ["--kubeconfig", self.kubeconfig] if self.cluster else ["--data-dir", str(self.tmp / "cloud")]
        token = subprocess.run(
            [str(BIN / "kubeshore"), "token", "create", *where],
            capture_output=True, text=True, check=True, timeout=60,
        ).stdout.strip()  # fmt: skip
        subprocess.run(
            [str(BIN / "kubeshore"), "join", "--cloudcore", f"127.0.0.1:{self.ports['websocketPort']}",
             "--https-port", str(self.ports["httpsPort"]), "--token", token, "--node-name", name,
             "--data-dir", str(data_dir), "--metaserver-port", "0", "--metrics-port", "0",
             "--mqtt-url", self.broker,
             "--dmi-socket", str(data_dir / "dmi.sock"), *extra],
            capture_output=True, text=True, check=True, timeout=60,
        )  # fmt: skip
        cfg_path = data_dir / "edgecore.yaml"
        cfg = yaml.safe_load(cfg_path.read_text())
        cfg["edgeHub"].update({"heartbeat": 1.0, "reconnectInitial": 0.2, "reconnectMax": 1.0})
        cfg_path.write_text(yaml.safe_dump(cfg))
        return cfg_path

    def start_edgecore(self, name: str = "edgecore", edge_dir: Path | None = None) -> None:
        self.start(
            name, str(BIN / "edgecore"), "--config", str((edge_dir or self.edge_dir) / "edgecore.yaml"),
            "--log-format", "json",
        )  # fmt: skip

    def scrape(self, component: str, path: str = "/metrics", edge_dir: Path | None = None) -> tuple[int, str]:
        """(status, body) of ``path`` on cloudcore's or an edgecore's (``edge_dir``) metrics port."""
        if component == "cloudcore":
            port = self.ports["metricsPort"]
        else:
            port = json.loads(((edge_dir or self.edge_dir) / "edgecore.json").read_text())["metricsPort"]
        return http_get(port, path)

    def samples(self, component: str, edge_dir: Path | None = None) -> dict[str, float]:
        """``/metrics`` of ``component`` as {"name{labels}": value}."""
        return parse_metrics(self.scrape(component, edge_dir=edge_dir)[1])

    def status(self, name: str, namespace: str = "default") -> dict[str, Any]:
        """``kubectl get devicestatus NAME -o json``."""
        return self.get("devicestatus", name, "-n", namespace)

    def reported(self, name: str, namespace: str = "default") -> dict[str, str]:
        """The reported twin values of a device, by property, as DeviceStatus shows them."""
        twins = self.status(name, namespace).get("status", {}).get("twins") or []
        return {t["propertyName"]: t.get("reported", {}).get("value") for t in twins}

    def state(self, name: str, namespace: str = "default") -> str | None:
        state: str | None = self.status(name, namespace).get("status", {}).get("state")
        return state

    def edge_rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Rows of a read-only query on edge-1's store (opened read-only: edgecore keeps writing it)."""
        db = sqlite3.connect(f"file:{self.edge_dir / 'edgecore.db'}?mode=ro", uri=True, timeout=5)
        try:
            return db.execute(sql, params).fetchall()
        finally:
            db.close()

    def conditions(self, kind: str, name: str) -> dict[str, dict[str, Any]]:
        """type -> condition of ``kubectl get KIND NAME``'s ``status.conditions``."""
        obj = json.loads(self.kubectl("get", kind, name, "-o", "json"))
        return {c["type"]: c for c in (obj.get("status") or {}).get("conditions") or []}

    def edge_objects(self, gvr: str) -> dict[str, dict[str, Any]]:
        """``namespace/name`` -> object of one kind (``core/v1/configmaps``) in edge-1's store."""
        rows = self.edge_rows("select value from meta_v2 where group_version_resource = ?", (gvr,))
        objs = [json.loads(value) for (value,) in rows]
        return {f"{o['metadata'].get('namespace', '')}/{o['metadata']['name']}": o for o in objs}
