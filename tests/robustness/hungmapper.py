"""A mapper that registers with edgecore, then accepts DMI calls on its socket and never answers
(it reads every byte and writes none, not even HTTP/2 SETTINGS): a hung mapper process.

``python hungmapper.py --edgecore-sock S --socket M --protocol P --name N``
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os

from dmi.rpc import Channel, RpcError
from dmi.v1beta1 import api_pb2

_REGISTER = "/" + api_pb2.DESCRIPTOR.services_by_name["DeviceManagerService"].full_name + "/MapperRegister"


async def _swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while await reader.read(65536):
        pass
    writer.close()


async def main(args: argparse.Namespace) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(args.socket)
    server = await asyncio.start_unix_server(_swallow, args.socket)
    info = api_pb2.MapperInfo(
        name=args.name, version="v1", api_version="v1beta1", protocol=args.protocol,
        address=args.socket.encode(), state="ok",
    )  # fmt: skip
    ch = Channel(args.edgecore_sock)
    while True:
        try:
            await ch.unary(
                _REGISTER,
                api_pb2.MapperRegisterRequest(withData=False, mapper=info),
                api_pb2.MapperRegisterResponse,
                timeout=5,
            )
            break
        except RpcError:
            await asyncio.sleep(0.3)
    await ch.close()
    print("registered", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--edgecore-sock", required=True)
    ap.add_argument("--socket", required=True)
    ap.add_argument("--protocol", default="hung")
    ap.add_argument("--name", default="hung-mapper")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main(ap.parse_args()))
