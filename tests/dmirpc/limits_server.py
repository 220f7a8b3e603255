"""A bare ``dmi.rpc`` Server in a process of its own, for the limit tests: run as
``python limits_server.py SOCKET``; prints ``ready`` once it listens.

Its timers are short (seconds, not minutes) so the tests of the keepalive, idle and handshake
timeouts finish quickly; every other limit is the default one.
"""

from __future__ import annotations

import asyncio
import dataclasses
import sys

from dmi.rpc import Server
from dmi.rpc._http2 import DEFAULT_LIMITS
from dmi.v1beta1 import api_pb2

LIMITS = dataclasses.replace(
    DEFAULT_LIMITS,
    handshake_timeout=2.0,
    keepalive_interval=2.0,
    keepalive_timeout=2.0,
    idle_timeout=3.0,
    tick=0.25,
)


class Mapper:
    def GetDevice(self, request: api_pb2.GetDeviceRequest) -> api_pb2.GetDeviceResponse:
        return api_pb2.GetDeviceResponse(device=api_pb2.Device(name=request.deviceName))


async def main(path: str) -> None:
    server = Server(limits=LIMITS)
    server.add_service(api_pb2.DESCRIPTOR.services_by_name["DeviceMapperService"], Mapper())
    await server.start(path)
    print("ready", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
