"""A real containerd for tests and benchmarks, started as a plain process: the configuration, images
and clean-up are `kubeshore up`'s own (``up.containerd``), with a random bridge and subnet
so runs on one machine do not collide."""

from __future__ import annotations

import contextlib
import os
import random
import time
from pathlib import Path

from kubeshore import cgroups
from up import containerd as runtime
from up.containerd import BUSYBOX, HTTP, PAUSE, build_images, missing
from up.processes import Processes

__all__ = ["BUSYBOX", "HTTP", "PAUSE", "Containerd", "build_images", "missing"]


class Containerd:
    def __init__(self, root: Path) -> None:
        tag = f"{os.getpid() % 10000:04d}{random.randrange(100):02d}"
        subnet = f"10.{random.randrange(200, 250)}.{random.randrange(1, 250)}.0/24"
        self.node = runtime.NodeRuntime(root, f"ksb{tag}", subnet)
        self.root = root
        self.processes = Processes(root)

    @property
    def socket(self) -> Path:
        return self.node.socket

    @property
    def endpoint(self) -> str:
        return self.node.endpoint

    @property
    def join_flags(self) -> tuple[str, ...]:
        return self.node.join_flags

    @property
    def cgroup_root(self) -> str:
        return self.node.cgroup_root

    def start(self) -> None:
        self.node.write_config()
        proc = self.processes.start("containerd", *self.node.argv)
        deadline = time.monotonic() + 30
        while not self.node.serving():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"containerd did not start: {self.processes.log('containerd')[-2000:]}")
            time.sleep(0.05)
        self.node.import_images()

    def container_pids(self) -> list[int]:
        return runtime.container_pids(self.root)

    def pod_pids(self, uid: str) -> set[int]:
        """PIDs of the processes of one Pod: those in its cgroup (``<cgroupRoot>/kubepods/pod<uid>``)."""
        needle = f"{self.cgroup_root}/kubepods/pod{uid}"
        out = set()
        for p in Path("/proc").iterdir():
            if p.name.isdigit():
                with contextlib.suppress(OSError):
                    if needle in (p / "cgroup").read_text():
                        out.add(int(p.name))
        return out

    def cgroup_dirs(self, below: str = "") -> list[Path]:
        """The directories of the node's cgroup root (or of ``below`` it), in every hierarchy."""
        rel = f"{self.cgroup_root}/{below}".strip("/")
        return [d for h in cgroups.hierarchies() if (d := h / rel).is_dir()]

    def stop(self) -> None:
        # kill -9 of its group; the shims run in process groups of their own, cleanup() ends them.
        self.processes.stop_all()
        runtime.cleanup(self.root)
