"""Real protocol peers shared by the tests and benchmarks: free ports, a mosquitto broker, a real Kubernetes
control plane. Long-running ones run under the one supervisor, ``up.processes``."""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from up.processes import Processes, log_tail, start_ticks, stop_groups


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def http_get(port: int, path: str, timeout: float = 10.0) -> tuple[int, str]:
    """(status, body) of a plain GET on 127.0.0.1:``port`` — an error status is an answer, not a raise."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def wait_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        time.sleep(0.02)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port}")


def parse_metrics(text: str) -> dict[str, float]:
    """A Prometheus text exposition as {"name{labels}": value}."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            out[key] = float(value)
    return out


def metrics(port: int, timeout: float = 10.0) -> dict[str, float]:
    """``/metrics`` on 127.0.0.1:``port``, parsed (:func:`parse_metrics`)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=timeout) as resp:
        return parse_metrics(resp.read().decode())


class BrokerURL(str):
    """The broker's ``tcp://`` URL, carrying the broker's process id."""

    pid: int


class Mosquitto:
    """mosquitto on loopback with a throwaway config; can be stopped and started again on the same port."""

    def __init__(self, port: int, workdir: Path, *, settings: str = "allow_anonymous true\n") -> None:
        """``settings``: further configuration lines (authentication, more listeners)."""
        self.port = port
        self.conf = workdir / f"mosquitto-{port}.conf"
        self.conf.write_text(
            # As root, mosquitto would switch to user mosquitto, which cannot read 0600 test files.
            f"user {getpass.getuser()}\nlistener {port} 127.0.0.1\n{settings}persistence false\n"
            "max_queued_messages 100000\n"
            # Without it mosquitto's small writes wait for the subscriber's delayed ACK (~40 ms).
            "set_tcp_nodelay true\n"
        )
        self.name = f"mosquitto-{port}"
        self._processes = Processes(workdir)

    @property
    def proc(self) -> subprocess.Popen[bytes] | None:
        return self._processes.procs.get(self.name)

    @property
    def url(self) -> BrokerURL:
        url = BrokerURL(f"tcp://127.0.0.1:{self.port}")
        url.pid = self.proc.pid if self.proc is not None else 0
        return url

    def start(self) -> None:
        exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not os.path.exists(exe):
            raise RuntimeError("mosquitto is not installed (apt-get install mosquitto)")
        self._processes.start(self.name, exe, "-c", str(self.conf))
        wait_port(self.port)

    def stop(self) -> None:
        """kill -9 (a stopped broker too): clients see the connection drop, as when the broker dies."""
        if self.proc is not None:
            self._processes.kill9(self.name)


@contextlib.contextmanager
def mosquitto(port: int | None = None) -> Iterator[BrokerURL]:
    """Run mosquitto for the duration of the block; yields its ``tcp://`` URL."""
    with tempfile.TemporaryDirectory(prefix="mosq-") as tmp:
        broker = Mosquitto(port or free_port(), Path(tmp))
        broker.start()
        try:
            yield broker.url
        finally:
            broker.stop()


KUBE_NAMES = ("kube-apiserver", "kube-controller-manager", "kube-scheduler")


def kubernetes_source() -> Path | None:
    """``../shared/kubernetes`` beside the checkout (its script, and its binaries unless ``KUBE_BIN_DIR``
    names where they are), or None when absent."""
    d = Path(__file__).resolve().parents[2] / "shared" / "kubernetes"
    bins = Path(os.environ.get("KUBE_BIN_DIR") or d / "bin")
    if (d / "run-control-plane.sh").is_file() and all(
        (bins / n).exists() or (bins / f"{n}.xz").exists() for n in KUBE_NAMES
    ):
        return d
    return None


def kubernetes_missing() -> str | None:
    """One line saying why the real control plane cannot run here, or None when it can."""
    if kubernetes_source() is None:
        where = Path(__file__).resolve().parents[2] / "shared" / "kubernetes"
        return f"realk8s lane skipped: no run-control-plane.sh and {', '.join(KUBE_NAMES)} in {where}"
    for exe in ("etcd", "kubectl", "openssl"):
        if shutil.which(exe) is None and not (exe == "etcd" and os.path.exists("/usr/bin/etcd")):
            return f"realk8s lane skipped: {exe} is not installed (make system-deps)"
    return None


def unpack_binaries(src: Path, names: tuple[str, ...], label: str) -> Path:
    """A directory holding the executables ``names`` of ``src`` (each as NAME or NAME.xz), unpacked once
    per machine into a cache directory keyed by the source files (KubeEdge's and Kubernetes' binaries)."""
    import hashlib
    import lzma

    digest = hashlib.sha256()
    for n in names:
        f = src / n if (src / n).exists() else src / f"{n}.xz"
        st = f.stat()
        digest.update(f"{f}:{st.st_size}:{st.st_mtime_ns}".encode())
    cache = (
        Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
        / "kubeshore"
        / (f"{label}-" + digest.hexdigest()[:16])
    )
    cache.mkdir(parents=True, exist_ok=True)
    for n in names:
        out = cache / n
        if out.exists():
            continue
        tmp = cache / f".{n}.{os.getpid()}"
        if (src / n).exists():
            shutil.copyfile(src / n, tmp)
        else:
            with lzma.open(src / f"{n}.xz") as fin, open(tmp, "wb") as fout:
                shutil.copyfileobj(fin, fout)
        tmp.chmod(0o755)
        tmp.replace(out)
    return cache


def _kube_binaries(src: Path) -> Path:
    return unpack_binaries(Path(os.environ.get("KUBE_BIN_DIR") or src / "bin"), KUBE_NAMES, "kubernetes")


class Kubectl:
    """kubectl with one kubeconfig (a real control plane's, the embedded API server's, a ServiceAccount's)."""

    def __init__(self, kubeconfig: str, *, timeout: float = 60.0) -> None:
        self.kubeconfig = kubeconfig
        self.timeout = timeout

    def kubectl(self, *args: str, stdin: str | None = None, check: bool = True) -> str:
        """kubectl's stdout; with ``check``, a failure raises SubprocessError naming the command and why."""
        out = subprocess.run(
            ["kubectl", "--kubeconfig", self.kubeconfig, *args], input=stdin, capture_output=True, text=True,
            timeout=self.timeout,
        )  # fmt: skip
        if check and out.returncode != 0:
            raise subprocess.SubprocessError(f"kubectl {' '.join(args)}: {out.stderr.strip()}")
        return out.stdout

    def apply(self, manifest: str | Mapping[str, Any]) -> None:
        """``kubectl apply`` of YAML or JSON text, or of one object."""
        self.kubectl(
            "apply", "-f", "-", stdin=manifest if isinstance(manifest, str) else json.dumps(manifest)
        )

    def get(self, *args: str) -> dict[str, Any]:
        """``kubectl get ARGS -o json``."""
        out: dict[str, Any] = json.loads(self.kubectl("get", *args, "-o", "json"))
        return out


class ControlPlane(Kubectl):
    """A real control plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler) under ``dir``,
    started by ``../shared/kubernetes/run-control-plane.sh`` (its output in ``dir.log``), for the realk8s and
    interop lanes; ``kubeconfig`` is its admin kubeconfig. The script's processes share one process group,
    so that whatever its ``stop.sh`` misses is killed with the group."""

    def __init__(self, dir: Path) -> None:
        super().__init__(str(dir / "admin.kubeconfig"))
        self.dir = dir
        self.env: dict[str, str] = {}
        self._group: tuple[int, int | None] | None = None  # the script's pid and start time

    @property
    def log_path(self) -> Path:
        return self.dir.parent / f"{self.dir.name}.log"

    def start(self) -> None:
        src = kubernetes_source()
        if src is None:
            raise RuntimeError(kubernetes_missing() or "no control plane")
        env = {**os.environ, "KUBE_BIN_DIR": str(_kube_binaries(src))}
        self.dir.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            script = subprocess.Popen(
                ["bash", str(src / "run-control-plane.sh"), str(self.dir)], env=env, stdin=subprocess.DEVNULL,
                stdout=log, stderr=log, start_new_session=True,
            )  # fmt: skip
        self._group = (script.pid, start_ticks(script.pid))
        try:
            code = script.wait(300)
        except subprocess.TimeoutExpired:
            code = None
        if code != 0:
            self.stop()
            raise RuntimeError(
                f"run-control-plane.sh failed; end of {self.log_path}:\n{log_tail(self.log_path)}"
            )
        for line in (self.dir / "env").read_text().splitlines():
            key, _, value = line.partition("=")
            self.env[key] = value

    @property
    def server(self) -> str:
        return self.env["KUBE_APISERVER"]

    def pid(self, name: str) -> int:
        for line in (self.dir / "pids").read_text().splitlines():
            key, _, value = line.partition(" ")
            if key == name:
                return int(value)
        raise KeyError(name)

    def stop(self) -> None:
        stop = self.dir / "stop.sh"
        if stop.exists():
            # A throw-away cluster: kube-apiserver's graceful shutdown is not worth the default wait.
            subprocess.run(
                ["sh", str(stop)], capture_output=True, timeout=120, env={**os.environ, "STOP_GRACE": "2"}
            )
        if self._group is not None:
            stop_groups([self._group], grace=0)
            self._group = None


@contextlib.contextmanager
def control_plane(parent: Path | None = None) -> Iterator[ControlPlane]:
    """Run a real control plane for the duration of the block, in a fresh temporary directory."""
    with tempfile.TemporaryDirectory(prefix="k8s-", dir=parent) as tmp:
        cp = ControlPlane(Path(tmp) / "cp")
        try:
            cp.start()
            yield cp
        finally:
            cp.stop()
