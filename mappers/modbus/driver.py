"""Modbus TCP driver on pymodbus.

Device ``protocol.configData``: ``ip`` (or ``host``), ``port`` (502), ``slaveID`` (1), ``timeout`` (ms).
Property ``visitors.configData`` (KubeEdge's names): ``register`` = CoilRegister | DiscreteInputRegister |
HoldingRegister | InputRegister, ``offset``, ``limit`` (registers or bits, default 1), ``scale``,
``isSwap``, ``isRegisterSwap``, optional ``dataType`` (see ``_codec``).
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, ClassVar

from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusException

from mappers.modbus import _codec
from mappers.sdk import DeviceUnavailable, Driver, WriteRejected

COIL, DISCRETE, HOLDING, INPUT = "CoilRegister", "DiscreteInputRegister", "HoldingRegister", "InputRegister"
_ALIASES = {"coil": COIL, "discreteinput": DISCRETE, "holding": HOLDING, "input": INPUT}


def _register(visitor: Mapping[str, Any]) -> str:
    return _register_name(str(visitor.get("register", HOLDING)))


@functools.lru_cache(maxsize=64)
def _register_name(name: str) -> str:
    name = _ALIASES.get(name.lower().removesuffix("register"), name)
    if name not in (COIL, DISCRETE, HOLDING, INPUT):
        raise ValueError(f"visitor register {name!r} is not one of {COIL}, {DISCRETE}, {HOLDING}, {INPUT}")
    return name


class ModbusDriver(Driver):
    protocol: ClassVar[str] = "modbus"

    async def open(self, protocol: Mapping[str, Any]) -> None:
        host = str(protocol.get("ip") or protocol.get("host") or "")
        if not host:
            raise ValueError("modbus protocol configData needs ip (or host)")
        self._unit = int(protocol.get("slaveID", protocol.get("slaveId", 1)))
        timeout = float(protocol.get("timeout", 3000)) / 1000
        # The SDK reconnects with its own backoff; pymodbus' reconnect loop would only fight it.
        self._client = AsyncModbusTcpClient(
            host, port=int(protocol.get("port", 502)), timeout=timeout, retries=0, reconnect_delay=0
        )
        if not await self._client.connect():
            raise DeviceUnavailable(f"cannot connect to modbus device {host}:{protocol.get('port', 502)}")

    async def _call(self, request: Callable[[], Awaitable[Any]]) -> Any:
        try:
            # pymodbus raises "not connected" when the request is built, not when awaited.
            result = await request()
        except ConnectionException as exc:
            raise DeviceUnavailable(str(exc)) from exc
        except ModbusException as exc:
            if not self._client.connected:
                raise DeviceUnavailable(str(exc)) from exc
            raise ValueError(f"modbus request failed: {exc}") from exc
        if result.isError():
            raise ValueError(f"modbus device answered with an error: {result}")
        return result

    async def read(self, visitor: Mapping[str, Any]) -> Any:
        register = _register(visitor)
        offset, limit = int(visitor.get("offset", 0)), int(visitor.get("limit", 1) or 1)
        c, unit = self._client, self._unit
        if register in (COIL, DISCRETE):
            read = c.read_coils if register == COIL else c.read_discrete_inputs
            bits = (await self._call(lambda: read(offset, count=limit, device_id=unit))).bits[:limit]
            return bits[0] if limit == 1 else sum(1 << i for i, b in enumerate(bits) if b)
        read = c.read_holding_registers if register == HOLDING else c.read_input_registers
        words = (await self._call(lambda: read(offset, count=limit, device_id=unit))).registers
        return _codec.decode(list(words), visitor)

    async def write(self, visitor: Mapping[str, Any], value: Any) -> None:
        register = _register(visitor)
        offset, limit = int(visitor.get("offset", 0)), int(visitor.get("limit", 1) or 1)
        if register in (DISCRETE, INPUT):
            raise WriteRejected(f"modbus {register} is read-only")
        if register == COIL:
            await self._call(lambda: self._client.write_coil(offset, bool(value), device_id=self._unit))
            return
        try:
            words = _codec.encode(value, visitor, limit)
        except ValueError as exc:
            raise WriteRejected(str(exc)) from None
        if len(words) == 1:
            await self._call(lambda: self._client.write_register(offset, words[0], device_id=self._unit))
        else:
            await self._call(lambda: self._client.write_registers(offset, words, device_id=self._unit))

    async def close(self) -> None:
        client = getattr(self, "_client", None)
        if client is not None:
            client.close()
