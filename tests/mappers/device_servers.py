"""Real device servers on loopback for the mapper tests: a pymodbus TCP server and an asyncua server.
Both keep their data across stop/start so a test can take the device away and bring it back."""

from __future__ import annotations

import asyncio
from typing import Any

from asyncua import ua
from asyncua.server.server import Server
from pymodbus.datastore import ModbusDeviceContext, ModbusSequentialDataBlock, ModbusServerContext
from pymodbus.server import ModbusTcpServer

HR, IR, CO, DI = 3, 4, 1, 2  # pymodbus function codes naming the four tables


class ModbusDevice:
    """A real Modbus TCP server on loopback whose tables the test reads and writes."""

    def __init__(self, port: int) -> None:
        self.port = port
        block = lambda: ModbusSequentialDataBlock(1, [0] * 100)  # noqa: E731
        self.context = ModbusServerContext(
            devices=ModbusDeviceContext(di=block(), co=block(), hr=block(), ir=block()), single=True
        )
        self._tables: Any = None  # the server's datastore, kept across restarts
        self._server: ModbusTcpServer | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._server = ModbusTcpServer(self.context, address=("127.0.0.1", self.port))
        if self._tables is None:
            self._tables = self._server.context
        self._server.context = self._tables
        self._task = asyncio.create_task(self._server.serve_forever())
        for _ in range(100):
            if self._server.is_active():
                return
            await asyncio.sleep(0.02)

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.shutdown()
            self._server = None
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def set(self, table: int, address: int, values: list[int]) -> None:
        await self._tables.async_setValues(0, table, address, values)

    async def get(self, table: int, address: int, count: int = 1) -> list[int]:
        return [int(v) for v in await self._tables.async_getValues(0, table, address, count)]


class Boiler:
    """A real OPC UA server with a Temperature (Double) and a writable Setpoint (Int32)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.url = f"opc.tcp://127.0.0.1:{port}/kubeshore/"
        self.values: dict[str, Any] = {"Temperature": 20.5, "Setpoint": 10}
        self.server: Server | None = None
        self.running = False
        self.nodes: dict[str, Any] = {}

    async def start(self) -> None:
        if self.server is not None:
            # Restart the same server: its address space (and values) survive, and init is slow.
            await self.server.start()
            self.running = True
            return
        server = Server()
        await server.init()
        server.set_endpoint(self.url)
        idx = await server.register_namespace("urn:kubeshore:test")
        boiler = await server.nodes.objects.add_object(idx, "Boiler")
        self.nodes["Temperature"] = await boiler.add_variable(
            ua.NodeId("Temperature", idx),
            "Temperature",
            ua.Variant(self.values["Temperature"], ua.VariantType.Double),
        )
        self.nodes["Setpoint"] = await boiler.add_variable(
            ua.NodeId("Setpoint", idx), "Setpoint", ua.Variant(self.values["Setpoint"], ua.VariantType.Int32)
        )
        await self.nodes["Setpoint"].set_writable()
        await server.start()
        self.server = server
        self.running = True

    async def stop(self) -> None:
        if self.server is not None and self.running:
            await self.server.stop()
            self.running = False

    async def set(self, name: str, value: Any) -> None:
        vtype = ua.VariantType.Double if name == "Temperature" else ua.VariantType.Int32
        await self.nodes[name].write_value(ua.Variant(value, vtype))

    async def get(self, name: str) -> Any:
        return await self.nodes[name].read_value()
