"""A Modbus TCP thermostat to try the Modbus mapper without hardware (what `kubeshore up` serves
examples/device-modbus-thermostat.yaml from): ``python -m mappers.modbus.simulator --port 1502``.

Registers (as in examples/devicemodel-modbus-thermostat.yaml, tenths of a degree):

* input register 0: the measured temperature, drifting slowly around the set point;
* holding register 0: the set point (writable; 205 = 20.5 °C at start);
* coil 0: the over-temperature alarm, on above 28 °C.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import math
import signal
import time

from pymodbus.datastore import ModbusDeviceContext, ModbusSequentialDataBlock, ModbusServerContext
from pymodbus.server import ModbusTcpServer

HOLDING, INPUT, COILS = 3, 4, 1  # pymodbus function codes naming the tables
ALARM_ABOVE = 280  # tenths of a degree


class Thermostat:
    def __init__(self, host: str, port: int, setpoint: int = 205) -> None:
        # pymodbus 3.10+ warns that these move to SimData in v4, which the mapper does not need yet.
        logging.getLogger("pymodbus.logging").setLevel(logging.ERROR)

        def block() -> ModbusSequentialDataBlock:
            return ModbusSequentialDataBlock(1, [0] * 16)  # type: ignore[no-untyped-call]

        device = ModbusDeviceContext(di=block(), co=block(), hr=block(), ir=block())
        self.context = ModbusServerContext(devices=device, single=True)
        self.server = ModbusTcpServer(self.context, address=(host, port))
        self._setpoint = setpoint

    async def run(self, stop: asyncio.Event) -> None:
        await self.server.context.async_setValues(0, HOLDING, 0, [self._setpoint])
        serving = asyncio.create_task(self.server.serve_forever())
        try:
            while not stop.is_set():
                await self.step(time.monotonic())
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(1.0):
                        await stop.wait()
        finally:
            await self.server.shutdown()  # type: ignore[no-untyped-call]
            serving.cancel()
            await asyncio.gather(serving, return_exceptions=True)

    async def step(self, now: float) -> None:
        """The room follows the set point with a slow swing of +-1.5 degrees."""
        tables = self.server.context  # the server's datastore (device 0: single=True)
        values = await tables.async_getValues(0, HOLDING, 0, 1)
        setpoint = int(values[0]) if isinstance(values, list) else self._setpoint
        temperature = max(0, round(setpoint + 15 * math.sin(now / 20)))
        await tables.async_setValues(0, INPUT, 0, [temperature])
        await tables.async_setValues(0, COILS, 0, [temperature > ALARM_ABOVE])


async def _main(host: str, port: int) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"Modbus thermostat simulator on {host}:{port}", flush=True)
    await Thermostat(host, port).run(stop)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m mappers.modbus.simulator", description=__doc__.splitlines()[0]
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=1502)
    args = p.parse_args(argv)
    asyncio.run(_main(args.host, args.port))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
