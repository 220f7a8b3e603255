"""Real protocol peers shared by the tests and benchmarks: free ports and a mosquitto broker."""

from __future__ import annotations

import contextlib
import getpass
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        time.sleep(0.02)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port}")


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
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> BrokerURL:
        url = BrokerURL(f"tcp://127.0.0.1:{self.port}")
        url.pid = self.proc.pid if self.proc is not None else 0
        return url

    def start(self) -> None:
        exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not os.path.exists(exe):
            raise RuntimeError("mosquitto is not installed (apt-get install mosquitto)")
        self.proc = subprocess.Popen(
            [exe, "-c", str(self.conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        wait_port(self.port)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None


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
