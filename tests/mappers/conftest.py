"""Fixtures shared by the mapper tests."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import os
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from device_servers import Boiler, ModbusDevice

import crds
from dmi import convert
from dmi.v1beta1 import api_pb2, api_pb2_grpc
from up.processes import Processes

# tests/ holds the full-stack helpers (_stack.py) the kubectl end-to-end tests share with tests/devices.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _peers import Mosquitto, free_port, wait_port

Until = Callable[..., Coroutine[Any, Any, None]]


async def _until(cond: Callable[[], object], within: float = 10.0, what: str = "condition") -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + within
    while True:
        result = cond()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        if loop.time() > end:
            raise AssertionError(f"{what} not met within {within}s")
        await asyncio.sleep(0.02)


@pytest.fixture
def until() -> Until:
    """``await until(lambda: ..., within=s)``: poll a condition (sync or async) of a real peer."""
    return _until


# -- a real DMI peer: edgecore's DeviceManagerService on a Unix socket ------------------------------


class DmiPeer(api_pb2_grpc.DeviceManagerServiceServicer):
    """edgecore's side of DMI, enough to drive a mapper: it records what the mapper reports, answers
    MapperRegister with the devices it holds, and calls the mapper's DeviceMapperService."""

    def __init__(self, sock: str) -> None:
        self.sock = sock
        self.devices: dict[str, crds.Device] = {}
        self.models: dict[str, crds.DeviceModel] = {}
        self.registrations: list[api_pb2.MapperRegisterRequest] = []
        self.statuses: list[api_pb2.ReportDeviceStatusRequest] = []
        self.states: list[api_pb2.ReportDeviceStatesRequest] = []
        self._server: grpc.aio.Server | None = None
        self._channel: grpc.aio.Channel | None = None

    async def start(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.sock)
        server = grpc.aio.server()
        api_pb2_grpc.add_DeviceManagerServiceServicer_to_server(self, server)
        server.add_insecure_port(f"unix:{self.sock}")
        await server.start()
        self._server = server

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.stop(0)
            self._server = None
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.sock)

    async def close(self) -> None:
        await self.stop()
        if self._channel is not None:
            await self._channel.close()

    # DeviceManagerService
    async def MapperRegister(self, request: Any, context: Any) -> api_pb2.MapperRegisterResponse:
        self.registrations.append(request)
        resp = api_pb2.MapperRegisterResponse()
        if request.withData:
            for dev in self.devices.values():
                if (
                    dev.spec.protocol is not None
                    and dev.spec.protocol.protocol_name == request.mapper.protocol
                ):
                    resp.deviceList.append(convert.device_to_dmi(dev))
                    model = self.models.get(f"{dev.namespace}/{dev.spec.device_model_ref.name}")
                    if model is not None:
                        resp.modelList.append(convert.device_model_to_dmi(model))
        return resp

    async def ReportDeviceStatus(self, request: Any, context: Any) -> api_pb2.ReportDeviceStatusResponse:
        self.statuses.append(request)
        return api_pb2.ReportDeviceStatusResponse()

    async def ReportDeviceStates(self, request: Any, context: Any) -> api_pb2.ReportDeviceStatesResponse:
        self.states.append(request)
        return api_pb2.ReportDeviceStatesResponse()

    # views
    def reported(self, device: str, prop: str) -> str | None:
        """The newest reported value of ``prop`` of ``device`` (name)."""
        for req in reversed(self.statuses):
            if req.deviceName == device:
                for twin in req.reportedDevice.twins:
                    if twin.propertyName == prop:
                        return str(twin.reported.value)
        return None

    def state(self, device: str) -> str | None:
        for req in reversed(self.states):
            if req.deviceName == device:
                return str(req.state)
        return None

    # calls into the mapper (as edgecore's DMI client does)
    def mapper(self) -> Any:
        address = self.registrations[-1].mapper.address.decode()
        if self._channel is None:
            self._channel = grpc.aio.insecure_channel(f"unix:{address}")
        return api_pb2_grpc.DeviceMapperServiceStub(self._channel)

    async def create_model(self, model: crds.DeviceModel) -> None:
        self.models[f"{model.namespace}/{model.name}"] = model
        await self.mapper().CreateDeviceModel(
            api_pb2.CreateDeviceModelRequest(model=convert.device_model_to_dmi(model)), timeout=10
        )

    async def register_device(self, device: crds.Device) -> Any:
        self.devices[f"{device.namespace}/{device.name}"] = device
        return await self.mapper().RegisterDevice(
            api_pb2.RegisterDeviceRequest(device=convert.device_to_dmi(device)), timeout=10
        )

    async def update_device(self, device: crds.Device) -> None:
        self.devices[f"{device.namespace}/{device.name}"] = device
        await self.mapper().UpdateDevice(
            api_pb2.UpdateDeviceRequest(device=convert.device_to_dmi(device)), timeout=10
        )

    async def remove_device(self, namespace: str, name: str) -> None:
        self.devices.pop(f"{namespace}/{name}", None)
        await self.mapper().RemoveDevice(
            api_pb2.RemoveDeviceRequest(deviceName=name, deviceNamespace=namespace), timeout=10
        )


@pytest.fixture
def sock_dir() -> Iterator[Path]:
    # Unix socket paths are limited to ~107 bytes; pytest's tmp_path can be longer.
    with tempfile.TemporaryDirectory(prefix="ksm-") as d:
        yield Path(d)


@pytest.fixture
def dmi_peer_class() -> type[DmiPeer]:
    """For tests that start edgecore's side themselves (e.g. after the mapper)."""
    return DmiPeer


@pytest.fixture
async def dmi_peer(sock_dir: Path) -> AsyncIterator[DmiPeer]:
    peer = DmiPeer(str(sock_dir / "dmi.sock"))
    await peer.start()
    yield peer
    await peer.close()


@pytest.fixture
def port() -> Callable[[], int]:
    return free_port


# -- real servers the sinks push to ------------------------------------------------------------------


@pytest.fixture
def mosquitto_factory(tmp_path: Path) -> Iterator[Callable[[int], Mosquitto]]:
    brokers: list[Mosquitto] = []

    def make(port: int) -> Mosquitto:
        broker = Mosquitto(port, tmp_path)
        brokers.append(broker)
        return broker

    yield make
    for broker in brokers:
        broker.stop()


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[Processes]:
    """Database servers for the sinks, killed with -9 at the end (their data is throwaway)."""
    procs = Processes(tmp_path)
    yield procs
    procs.stop_all()


@pytest.fixture
def redis_server(tmp_path: Path, servers: Processes) -> int:
    port = free_port()
    servers.start(
        "redis", "redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
        "--appendonly", "no", "--dir", str(tmp_path),
    )  # fmt: skip
    wait_port(port)
    return port


@pytest.fixture
def mariadb(tmp_path: Path, servers: Processes) -> tuple[int, str]:
    """MariaDB in a throwaway datadir on a free port; yields (port, database)."""
    datadir = tmp_path / "mariadb"
    run_as = ["--user=root"] if os.geteuid() == 0 else []
    subprocess.run(
        [
            "mariadb-install-db",
            f"--datadir={datadir}",
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
            "--skip-name-resolve",
            *run_as,
        ],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    port = free_port()
    sock = tmp_path / "mariadb.sock"
    servers.start(
        "mariadb", "mariadbd", "--no-defaults", f"--datadir={datadir}", f"--port={port}",
        "--bind-address=127.0.0.1", f"--socket={sock}", f"--pid-file={tmp_path / 'mariadb.pid'}",
        "--skip-grant-tables", *run_as, "--innodb-buffer-pool-size=16M", "--skip-log-bin",
    )  # fmt: skip
    wait_port(port, timeout=60)
    import pymysql

    conn = pymysql.connect(host="127.0.0.1", port=port, user="root")
    with conn.cursor() as cur:
        cur.execute("CREATE DATABASE kubeshore")
    conn.close()
    return port, "kubeshore"


# -- real device servers ------------------------------------------------------------------------------


@pytest.fixture
async def modbus(port: Callable[[], int]) -> AsyncIterator[ModbusDevice]:
    dev = ModbusDevice(port())
    await dev.start()
    yield dev
    await dev.stop()


@pytest.fixture
async def boiler(port: Callable[[], int]) -> AsyncIterator[Boiler]:
    logging.getLogger("asyncua").setLevel(logging.WARNING)
    b = Boiler(port())
    await b.start()
    yield b
    await b.stop()
