"""Real peers for the device tests and the devices benchmark: mosquitto on a free port, free ports."""

from __future__ import annotations

import contextlib
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


def wait_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        time.sleep(0.02)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port}")


class BrokerURL(str):
    """The broker's ``tcp://`` URL, carrying the broker's process id."""

    pid: int


@contextlib.contextmanager
def mosquitto(port: int | None = None) -> Iterator[BrokerURL]:
    """Run mosquitto on loopback with a throwaway config; yields its ``tcp://`` URL."""
    exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not os.path.exists(exe):
        raise RuntimeError("mosquitto is not installed (apt-get install mosquitto)")
    port = port or free_port()
    with tempfile.TemporaryDirectory(prefix="mosq-") as tmp:
        conf = Path(tmp) / "mosquitto.conf"
        conf.write_text(
            f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
            "max_queued_messages 100000\n"
        )
        proc = subprocess.Popen([exe, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_port(port)
            url = BrokerURL(f"tcp://127.0.0.1:{port}")
            url.pid = proc.pid
            yield url
        finally:
            proc.kill()
            proc.wait()
