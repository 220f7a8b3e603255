"""A bare ``dmi.rpc`` Server in a process of its own, for the limit tests and the grpc-go interop test:
run as ``python limits_server.py SOCKET [MAX_STREAMS]``; prints ``ready`` once it listens, and its
counters (JSON) when it gets SIGTERM.

It serves ``DeviceMapperService.GetDevice`` (an echo), ``UpdateDevice`` (slow to answer and to
stop) and ``DeviceManagerService.ReportDeviceStatus`` (an empty answer, as edgecore's after storing).
Its timers are short (seconds, not minutes) so the tests of the keepalive, idle and handshake timeouts
finish quickly; every other limit is the default one.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import signal
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

    async def UpdateDevice(self, request: api_pb2.UpdateDeviceRequest) -> api_pb2.UpdateDeviceResponse:
        """Slow, and slow to stop: cancelled, it first finishes what it started (as a handler that
        completes a durable write before answering would)."""
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            await asyncio.sleep(1)
            raise
        return api_pb2.UpdateDeviceResponse()


class Manager:
    def ReportDeviceStatus(
        self, request: api_pb2.ReportDeviceStatusRequest
    ) -> api_pb2.ReportDeviceStatusResponse:
        return api_pb2.ReportDeviceStatusResponse()


async def main(path: str, max_streams: int) -> None:
    server = Server(limits=dataclasses.replace(LIMITS, max_concurrent_streams=max_streams))
    server.add_service(api_pb2.DESCRIPTOR.services_by_name["DeviceMapperService"], Mapper())
    server.add_service(api_pb2.DESCRIPTOR.services_by_name["DeviceManagerService"], Manager())
    await server.start(path)
    print("ready", flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    print(json.dumps({"refused_streams": server.refused_streams}), flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else LIMITS.max_concurrent_streams))
