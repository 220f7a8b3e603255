"""``kubeshore mapper new``: a complete, tested mapper project to start from.

The generated driver talks to a simulated device (a tiny TCP line protocol, ``GET``/``SET``) so the
project's test passes out of the box; replace the driver's four methods with your protocol's calls.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml


class ScaffoldError(Exception):
    pass


def _names(name: str) -> tuple[str, str]:
    if not re.fullmatch(r"[a-z][a-z0-9-]*[a-z0-9]", name):
        raise ScaffoldError(f"name {name!r} must be lower-case letters, digits and dashes, e.g. acme-sensor")
    package = name.replace("-", "_")
    cls = "".join(part.capitalize() for part in name.split("-")) + "Driver"
    return package, cls


INIT = '''"""{name}: a kubeshore mapper."""

from {package}.driver import {cls}

Driver = {cls}

__all__ = ["Driver", "{cls}"]
'''

DRIVER = '''"""{cls}: the {protocol} protocol for kubeshore.

The SDK calls these methods; everything else (edgecore registration, collect and report cycles,
reconnects, value conversion, pushes, REST API) is done for you. This stub speaks the simulated
device's line protocol (``GET <register>`` / ``SET <register> <value>``); replace the bodies with
your protocol's calls.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any, ClassVar

from mappers.sdk import DeviceUnavailable, Driver


class {cls}(Driver):
    protocol: ClassVar[str] = "{protocol}"

    async def open(self, protocol: Mapping[str, Any]) -> None:
        """Connect using Device.spec.protocol.configData (here: host, port)."""
        host, port = str(protocol.get("host", "127.0.0.1")), int(protocol["port"])
        # OSError (refused, unreachable) tells the SDK the device is offline; it retries with backoff.
        self._reader, self._writer = await asyncio.open_connection(host, port)

    async def _request(self, line: str) -> str:
        self._writer.write(line.encode() + b"\\n")
        await self._writer.drain()
        reply = await self._reader.readline()
        if not reply:
            raise DeviceUnavailable("the device closed the connection")
        text = reply.decode().strip()
        if text.startswith("ERR"):
            raise ValueError(text)  # a property error: the device stays connected, reported unhealthy
        return text

    async def read(self, visitor: Mapping[str, Any]) -> Any:
        """Return the value addressed by the property's visitors.configData (here: register)."""
        return await self._request(f"GET {{visitor['register']}}")

    async def write(self, visitor: Mapping[str, Any], value: Any) -> None:
        """Write a value already checked against the model (type, minimum, maximum, ReadOnly)."""
        await self._request(f"SET {{visitor['register']}} {{value}}")

    async def close(self) -> None:
        writer = getattr(self, "_writer", None)
        if writer is not None:
            writer.close()
'''

SIMULATOR = '''"""A simulated {protocol} device: a TCP server speaking ``GET <reg>`` / ``SET <reg> <value>``.

Run it on its own with ``python -m {package}.simulator --port 5020``.
"""

from __future__ import annotations

import argparse
import asyncio


class SimulatedDevice:
    def __init__(self, registers: dict[str, str] | None = None, port: int = 0) -> None:
        self.registers = dict(registers or {{}})
        self.port = port
        self._server: asyncio.Server | None = None
        self._clients: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for writer in list(self._clients):
                writer.close()
            await self._server.wait_closed()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._clients.add(writer)
        try:
            while line := await reader.readline():
                words = line.decode().split()
                if len(words) == 2 and words[0] == "GET" and words[1] in self.registers:
                    reply = self.registers[words[1]]
                elif len(words) == 3 and words[0] == "SET":
                    self.registers[words[1]] = words[2]
                    reply = "OK"
                else:
                    reply = f"ERR bad request {{line.decode().strip()!r}}"
                writer.write(reply.encode() + b"\\n")
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            self._clients.discard(writer)
            writer.close()


async def _main(port: int) -> None:
    device = SimulatedDevice({{"temperature": "21.5", "setpoint": "20"}}, port)
    await device.start()
    print(f"simulated {protocol} device on 127.0.0.1:{{device.port}}")
    await asyncio.Event().wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=5020)
    asyncio.run(_main(parser.parse_args().port))
'''

TEST = '''"""The driver against the simulated device through the SDK's device runtime (no edgecore)."""

from __future__ import annotations

from typing import Any

from mappers.sdk import DeviceState
from mappers.sdk.testing import run_device

from {package} import Driver
from {package}.simulator import SimulatedDevice

MODEL: dict[str, Any] = {{
    "apiVersion": "devices.kubeedge.io/v1beta1",
    "kind": "DeviceModel",
    "metadata": {{"name": "{name}-model", "namespace": "default"}},
    "spec": {{
        "protocol": "{protocol}",
        "properties": [
            {{"name": "temperature", "type": "DOUBLE", "accessMode": "ReadOnly"}},
            {{"name": "setpoint", "type": "INT", "minimum": "0", "maximum": "40"}},
        ],
    }},
}}


def device(port: int) -> dict[str, Any]:
    return {{
        "apiVersion": "devices.kubeedge.io/v1beta1",
        "kind": "Device",
        "metadata": {{"name": "{name}-1", "namespace": "default"}},
        "spec": {{
            "deviceModelRef": {{"name": "{name}-model"}},
            "protocol": {{"protocolName": "{protocol}", "configData": {{"host": "127.0.0.1", "port": port}}}},
            "properties": [
                {{
                    "name": "temperature",
                    "collectCycle": 50,
                    "visitors": {{"configData": {{"register": "temperature"}}}},
                }},
                {{
                    "name": "setpoint",
                    "collectCycle": 50,
                    "desired": {{"value": "25"}},
                    "visitors": {{"configData": {{"register": "setpoint"}}}},
                }},
            ],
        }},
    }}


async def test_reads_writes_and_reconnects() -> None:
    sim = SimulatedDevice({{"temperature": "21.5", "setpoint": "20"}})
    await sim.start()
    async with run_device(Driver, device(sim.port), MODEL) as dev:
        await dev.wait_for("temperature", "21.5")
        await dev.wait_for("setpoint", "25")  # the desired value was written
        assert sim.registers["setpoint"] == "25"
        sim.registers["temperature"] = "22.25"
        await dev.wait_for("temperature", "22.25")
        await dev.write("setpoint", "30")
        assert sim.registers["setpoint"] == "30"

        await sim.stop()
        await dev.wait_state(DeviceState.OFFLINE)
        await sim.start()  # same port
        await dev.wait_state(DeviceState.ONLINE)
        await dev.wait_for("temperature", "22.25")
    await sim.stop()
'''

PYPROJECT = """[project]
name = "{name}"
version = "0.1.0"
description = "A kubeshore mapper for the {protocol} protocol"
requires-python = ">=3.11"
dependencies = ["kubeshore[mapper]"]

[build-system]
requires = ["setuptools>=69"]
build-backend = "setuptools.build_meta"

[tool.setuptools]
packages = ["{package}"]

[tool.pytest.ini_options]
asyncio_mode = "auto"
asyncio_default_fixture_loop_scope = "function"
testpaths = ["tests"]
"""

README = """# {name}

A kubeshore mapper for the `{protocol}` protocol, generated by `kubeshore mapper new`.

- `{package}/driver.py`: the driver (open, read, write, close): your protocol's calls go here.
- `{package}/simulator.py`: a simulated device speaking the stub's line protocol. The test runs the
  driver against it, so when you change the driver for your protocol, change the simulator to match
  (or point the test at a real device).
- `tests/test_driver.py`: the driver through the SDK's device runtime, against the simulator.
- `config.yaml`: the mapper configuration for a local run (REST API on any free port, printed);
  `deploy/`: Deployment and ConfigMap for a real edge node, and a sample DeviceModel and Device
  (`nodeName: edge-1`, the simulator at 127.0.0.1:5020).

In the environment kubeshore is installed in (its repository's `.venv`: `. .venv/bin/activate`):

    pip install -e .            # `kubeshore mapper run` imports {package} from the environment
    python -m pytest -q         # 1 passed

Run it next to a node of `kubeshore up` (or `make up`), which finds the node's DMI socket in its
edgecore.yaml (`--data-dir` names a `kubeshore up` data dir, default `$KUBESHORE_DATA_DIR` or
`./.kubeshore`; or a node's own data dir, without `--node`):

    python -m {package}.simulator --port 5020 &
    kubeshore mapper run {package} --config config.yaml --node edge-1
    kubectl apply -f deploy/device.yaml

On a real edge node, edgecore's socket is `/etc/kubeedge/dmi.sock` and the mapper's goes beside it:

    kubeshore mapper run {package} --config config.yaml

See kubeshore's docs/mapper-guide.md.
"""

DOCKERFILE = """FROM python:3.11-slim
WORKDIR /mapper
COPY . .
RUN pip install --no-cache-dir kubeshore . && rm -rf /root/.cache
ENTRYPOINT ["kubeshore", "mapper", "run", "{package}", "--config", "/etc/mapper/config.yaml"]
"""


def _config(name: str, protocol: str, *, deployed: bool = False) -> dict[str, Any]:
    """The mapper configuration: for a local run the sockets come from the node (``--node``,
    ``--data-dir``; else edgecore's default) and the REST port is any free one; in the Deployment
    they are the host's /etc/kubeedge and the container's port 7777."""
    common = {"name": name, "version": "v0.1.0", "api_version": "v1.0.0", "protocol": protocol}
    config: dict[str, Any] = {"common": common, "rest": {"port": 0}, "log_level": "info"}
    if deployed:
        config["grpc_server"] = {"socket_path": f"/etc/kubeedge/{name}.sock"}
        common["edgecore_sock"] = "/etc/kubeedge/dmi.sock"
        config["rest"] = {"port": 7777}
    return config


def _manifests(name: str, package: str, protocol: str) -> list[dict[str, Any]]:
    config_text = yaml.safe_dump(_config(name, protocol, deployed=True), sort_keys=False)
    labels = {"app": name}
    configmap = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": f"{name}-config"},
        "data": {"config.yaml": config_text},
    }
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "nodeSelector": {"kubernetes.io/hostname": "EDGE-NODE-NAME"},
                    "containers": [
                        {
                            "name": name,
                            "image": f"REGISTRY/{name}:0.1.0",
                            "imagePullPolicy": "IfNotPresent",
                            "args": [
                                "kubeshore",
                                "mapper",
                                "run",
                                package,
                                "--config",
                                "/etc/mapper/config.yaml",
                            ],
                            "ports": [{"name": "rest", "containerPort": 7777}],
                            "volumeMounts": [
                                {"name": "dmi", "mountPath": "/etc/kubeedge"},
                                {"name": "config", "mountPath": "/etc/mapper"},
                            ],
                            "resources": {
                                "limits": {"memory": "128Mi"},
                                "requests": {"cpu": "50m", "memory": "64Mi"},
                            },
                        }
                    ],
                    "volumes": [
                        # edgecore's DMI socket and this mapper's socket live in the host's /etc/kubeedge.
                        {"name": "dmi", "hostPath": {"path": "/etc/kubeedge", "type": "Directory"}},
                        {"name": "config", "configMap": {"name": f"{name}-config"}},
                    ],
                },
            },
        },
    }
    return [configmap, deployment]


def _sample_devices(name: str, protocol: str) -> list[dict[str, Any]]:
    model = {
        "apiVersion": "devices.kubeedge.io/v1beta1",
        "kind": "DeviceModel",
        "metadata": {"name": f"{name}-model", "namespace": "default"},
        "spec": {
            "protocol": protocol,
            "properties": [
                {"name": "temperature", "type": "DOUBLE", "accessMode": "ReadOnly", "unit": "Cel"},
                {
                    "name": "setpoint",
                    "type": "INT",
                    "accessMode": "ReadWrite",
                    "minimum": "0",
                    "maximum": "40",
                },
            ],
        },
    }
    device = {
        "apiVersion": "devices.kubeedge.io/v1beta1",
        "kind": "Device",
        "metadata": {"name": f"{name}-1", "namespace": "default"},
        "spec": {
            "deviceModelRef": {"name": f"{name}-model"},
            "nodeName": "edge-1",
            "protocol": {"protocolName": protocol, "configData": {"host": "127.0.0.1", "port": 5020}},
            "properties": [
                {
                    "name": "temperature",
                    "collectCycle": 1000,
                    "reportCycle": 1000,
                    "reportToCloud": True,
                    "visitors": {"protocolName": protocol, "configData": {"register": "temperature"}},
                },
                {
                    "name": "setpoint",
                    "collectCycle": 1000,
                    "reportToCloud": True,
                    "desired": {"value": "25"},
                    "visitors": {"protocolName": protocol, "configData": {"register": "setpoint"}},
                },
            ],
        },
    }
    return [model, device]


def scaffold(name: str, protocol: str, parent: str | Path = ".") -> Path:
    package, cls = _names(name)
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", protocol):
        raise ScaffoldError(f"protocol {protocol!r} must be letters, digits, '-', '_' or '.'")
    root = Path(parent) / name
    if root.exists():
        raise ScaffoldError(f"{root} already exists; choose another name or --dir")
    values = {"name": name, "package": package, "cls": cls, "protocol": protocol}
    files = {
        f"{package}/__init__.py": INIT.format(**values),
        f"{package}/driver.py": DRIVER.format(**values),
        f"{package}/simulator.py": SIMULATOR.format(**values),
        "tests/test_driver.py": TEST.format(**values),
        "pyproject.toml": PYPROJECT.format(**values),
        "README.md": README.format(**values),
        "Dockerfile": DOCKERFILE.format(**values),
        "config.yaml": yaml.safe_dump(_config(name, protocol), sort_keys=False),
        "deploy/deployment.yaml": yaml.safe_dump_all(_manifests(name, package, protocol), sort_keys=False),
        "deploy/device.yaml": yaml.safe_dump_all(_sample_devices(name, protocol), sort_keys=False),
    }
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root
