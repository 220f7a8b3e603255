"""What each install carries: every extra of pyproject.toml in a clean venv, its size, and its process.

Run: ``python -m bench.install [--before REF]``. Builds kubeshore's wheel from the checkout, installs
``kubeshore[edge]``, ``kubeshore[mapper]`` and ``kubeshore[cloud]`` into three clean venvs (in parallel,
through pip's cache), then runs each side as it runs in the field: ``cloudcore --standalone`` from the
cloud venv, ``kubeshore join`` + ``edgecore`` from the edge venv joining that cloudcore, and the virtual
mapper from the mapper venv registering with that edgecore. It measures each venv's size on disk (``du``
of its site-packages) and the RSS of each process once it is up. ``--before REF`` does the same for the
wheel of git revision REF installed with its plain dependency list (before the extras, every side
installed the same list). Prints the numbers and writes ``bench/results/install.json``.

``tests/test_extras.py`` runs the same steps (without ``--before``) as the check that each extra is
enough for its process.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from _peers import metrics, mosquitto  # noqa: E402
from _stack import Processes, wait_for  # noqa: E402

from bench._measure import rss_mb, write_results  # noqa: E402

SIDES = ("edge", "mapper", "cloud")
# What the wheel is built from: the packages and the metadata, not tests, docs or venvs.
_SOURCE = ("pyproject.toml", "README.md", "kubeshore", "kubeapi", "crds", "dmi", "cri", "cloudcore",
           "edgecore", "mappers", "nodegroup", "kubeclient", "k8sproto")  # fmt: skip
_IGNORE = shutil.ignore_patterns("__pycache__", "*.egg-info", ".mypy_cache")
MAPPER_CONFIG = "common: {name: virtual}\n"


def build_wheel(out: Path, ref: str | None = None) -> Path:
    """kubeshore's wheel in ``out``, from the working tree or (``ref``) from that git revision."""
    src = out / "src"
    if ref is None:
        src.mkdir(parents=True)
        for name in _SOURCE:
            path = ROOT / name
            if path.is_dir():
                shutil.copytree(path, src / name, ignore=_IGNORE)
            elif path.exists():
                shutil.copy(path, src / name)
    else:
        src.mkdir(parents=True)
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref], capture_output=True, check=True)
        subprocess.run(["tar", "-x", "-C", str(src)], input=archive.stdout, check=True)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(out),
         str(src)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    return next(out.glob("kubeshore-*.whl"))


def install(venvs: dict[str, tuple[Path, str]], wheel: Path) -> dict[str, float]:
    """Create each clean venv (name -> (dir, extras)) and install ``kubeshore[extras]`` from ``wheel``
    into it, all at once; returns the seconds each took. pip runs from this interpreter (``--python``),
    so the venvs carry no pip of their own and reuse this user's pip cache."""
    started = time.monotonic()
    procs = {}
    for name, (path, extras) in venvs.items():
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
        req = f"kubeshore[{extras}] @ {wheel.as_uri()}" if extras else f"kubeshore @ {wheel.as_uri()}"
        procs[name] = subprocess.Popen(
            [sys.executable, "-m", "pip", "--python", str(path / "bin" / "python"), "install", "-q",
             "--no-input", req],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )  # fmt: skip
    took = {}
    for name, proc in procs.items():
        out, _ = proc.communicate(timeout=600)
        if proc.returncode != 0:
            raise RuntimeError(f"installing {venvs[name][1] or 'kubeshore'} failed:\n{out.decode()}")
        took[name] = round(time.monotonic() - started, 1)
    return took


def size_mb(venv: Path) -> float:
    """What the install put on disk: the venv's site-packages (the venv itself is symlinks)."""
    site = next((venv / "lib").glob("python3*/site-packages"))
    out = subprocess.run(["du", "-sk", str(site)], capture_output=True, text=True, check=True).stdout
    return round(int(out.split()[0]) / 1024, 1)


def distributions(venv: Path) -> list[str]:
    site = next((venv / "lib").glob("python3*/site-packages"))
    return sorted(p.name.split("-")[0].lower() for p in site.glob("*.dist-info"))


@dataclass
class Running:
    """The three sides running from their own venvs under ``tmp``."""

    procs: Processes
    cloud: dict[str, Any]
    edge_dir: Path
    edge_metrics: int

    def pid(self, name: str) -> int:
        return self.procs.procs[name].pid

    def registered_mappers(self) -> float:
        return metrics(self.edge_metrics).get("edgecore_registered_mappers", 0.0)


def _started(procs: Processes, name: str, check: Callable[[], Any], within: float, what: str) -> Any:
    """Wait for ``check``; if ``name`` exits first, fail with its log (a missing module names itself)."""

    def alive_check() -> Any:
        if procs.procs[name].poll() is not None:
            raise AssertionError(f"{name} exited with {procs.procs[name].returncode}:\n{procs.log(name)}")
        return check()

    return wait_for(alive_check, within, what)


@contextmanager
def run_sides(tmp: Path, venvs: dict[str, Path], broker: str, *, mapper: bool = True) -> Iterator[Running]:
    """cloudcore from ``venvs["cloud"]``, edgecore joined to it from ``venvs["edge"]``, and (``mapper``)
    the virtual mapper from ``venvs["mapper"]`` registered with that edgecore."""
    tmp.mkdir(parents=True, exist_ok=True)
    procs = Processes(tmp)
    cloud_bin, edge_bin = venvs["cloud"] / "bin", venvs["edge"] / "bin"
    data, edge_dir = tmp / "cloud", tmp / "edge-1"
    try:
        procs.start(
            "cloudcore", str(cloud_bin / "cloudcore"), "--standalone", "--data-dir", str(data),
            "--bind", "127.0.0.1", "--apiserver-port", "0", "--websocket-port", "0", "--https-port", "0",
            "--metrics-port", "0",
        )  # fmt: skip
        state = data / "cloudcore.json"
        _started(procs, "cloudcore", state.exists, 90, "cloudcore.json")
        ports = json.loads(state.read_text())
        token = subprocess.run(
            [str(cloud_bin / "kubeshore"), "token", "create", "--data-dir", str(data)],
            capture_output=True, text=True, check=True, timeout=60,
        ).stdout.strip()  # fmt: skip
        joined = subprocess.run(
            [str(edge_bin / "kubeshore"), "join", "--cloudcore", f"127.0.0.1:{ports['websocketPort']}",
             "--https-port", str(ports["httpsPort"]), "--token", token, "--node-name", "edge-1",
             "--data-dir", str(edge_dir), "--metaserver-port", "0", "--metrics-port", "0",
             "--mqtt-url", broker, "--dmi-socket", str(edge_dir / "dmi.sock")],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert joined.returncode == 0, f"kubeshore join from the edge venv failed:\n{joined.stderr}"
        procs.start("edgecore", str(edge_bin / "edgecore"), "--config", str(edge_dir / "edgecore.yaml"))
        kubeconfig = data / "admin.kubeconfig"
        ready = "jsonpath={.status.conditions[?(@.type=='Ready')].status}"

        def node_ready() -> bool:
            out = subprocess.run(
                ["kubectl", "--kubeconfig", str(kubeconfig), "get", "node", "edge-1", "-o", ready],
                capture_output=True, text=True, timeout=60,
            )  # fmt: skip
            return out.stdout == "True"

        _started(procs, "edgecore", node_ready, 120, "edge-1 Ready (edgecore joined)")
        metrics = json.loads((edge_dir / "edgecore.json").read_text())["metricsPort"]
        running = Running(procs, ports, edge_dir, metrics)
        if mapper:
            config = tmp / "mapper.yaml"
            config.write_text(MAPPER_CONFIG)
            procs.start(
                "mapper", str(venvs["mapper"] / "bin" / "kubeshore"), "mapper", "run", "virtual",
                "--edgecore-sock", str(edge_dir / "dmi.sock"), "--socket", str(tmp / "virtual.sock"),
                "--config", str(config),
            )  # fmt: skip
            _started(procs, "mapper", lambda: running.registered_mappers() >= 1, 90, "mapper registered")
        yield running
    finally:
        procs.stop_all()


def _settled_rss(pid: int) -> float:
    # Read after a moment of idling so lazy imports triggered by start-up have happened.
    time.sleep(2)
    return round(rss_mb(pid), 1)


def measure(tmp: Path, ref: str | None) -> dict[str, Any]:
    wheel = build_wheel(tmp / "wheel")
    venvs = {side: (tmp / f"venv-{side}", side) for side in SIDES}
    took = install(venvs, wheel)
    after: list[dict[str, Any]] = []
    with mosquitto() as broker, run_sides(tmp / "run", {s: v[0] for s, v in venvs.items()}, broker) as run:
        rss = {s: _settled_rss(run.pid(p)) for s, p in (("cloud", "cloudcore"), ("edge", "edgecore"),
                                                            ("mapper", "mapper"))}  # fmt: skip
    for side in SIDES:
        path = venvs[side][0]
        after.append({"install": f"kubeshore[{side}]", "site_packages_mb": size_mb(path),
                      "distributions": len(distributions(path)), "install_s": took[side],
                      "process": {"edge": "edgecore", "mapper": "virtual mapper", "cloud": "cloudcore"}[side],
                      "rss_mb": rss[side]})  # fmt: skip
    result: dict[str, Any] = {
        "title": "Install size and RSS per extra",
        "description": (
            "Each extra of pyproject.toml installed into a clean venv from the wheel (pip cache warm, "
            "three installs in parallel; install_s is wall time from the start of all three), and its "
            "process started from that venv: edgecore joined to the cloud venv's standalone cloudcore, "
            "the virtual mapper registered with that edgecore. site_packages_mb is du of the venv's "
            "site-packages; rss_mb the process's RSS once up and idle. 'before' is one dependency list "
            "for every side (main before the extras)."
        ),
        "command": "python -m bench.install --before <ref>",
        "machine": f"{platform.machine()}, {os.cpu_count()} cores shared, Python {platform.python_version()}",
        "after": after,
    }
    if ref is not None:
        old = build_wheel(tmp / "wheel-before", ref)
        before = {side: (tmp / f"before-{side}", "") for side in ("edge",)}
        install(before, old)
        path = before["edge"][0]
        sides = {s: path for s in SIDES}
        with mosquitto() as broker, run_sides(tmp / "run-before", sides, broker) as run:
            rss = {s: _settled_rss(run.pid(p)) for s, p in (("cloud", "cloudcore"), ("edge", "edgecore"),
                                                                ("mapper", "mapper"))}  # fmt: skip
        result["before"] = [
            {"install": f"kubeshore (one list, {ref})", "site_packages_mb": size_mb(path),
             "distributions": len(distributions(path)), "process": proc, "rss_mb": rss[side]}
            for side, proc in (("edge", "edgecore"), ("mapper", "virtual mapper"), ("cloud", "cloudcore"))
        ]  # fmt: skip
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.install", description=__doc__.splitlines()[0])
    parser.add_argument("--before", metavar="REF", help="also measure the plain install of git revision REF")
    parser.add_argument("--output", default=str(ROOT / "bench" / "results" / "install.json"))
    opts = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-install-") as tmp:
        result = measure(Path(tmp), opts.before)
    write_results(Path(opts.output), result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
