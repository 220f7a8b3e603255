"""gRPC server reflection, so ``grpcurl`` can list and call the DMI services as with KubeEdge.

Served under both names grpcurl tries (``grpc.reflection.v1`` first, then ``v1alpha``); the two
protos are wire-identical, so the v1alpha messages serve both. They are generated here
(``_reflection_pb2``, same descriptor as grpcio-reflection's) so that no process needs grpcio at run time.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from google.protobuf import descriptor_pool
from google.protobuf.descriptor import FileDescriptor

from dmi.rpc import _reflection_pb2 as pb
from dmi.rpc._grpc import StatusCode
from dmi.rpc._server import Server

SERVICE_NAMES = ("grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection")


def _with_dependencies(fd: FileDescriptor) -> list[bytes]:
    seen: dict[str, bytes] = {}
    todo = [fd]
    while todo:
        f = todo.pop()
        if f.name in seen:
            continue
        seen[f.name] = f.serialized_pb
        todo.extend(f.dependencies)
    return list(seen.values())


class _Reflection:
    def __init__(self, server: Server) -> None:
        self.server = server
        self.pool = descriptor_pool.Default()

    def _answer(self, request: pb.ServerReflectionRequest) -> pb.ServerReflectionResponse:
        response = pb.ServerReflectionResponse(valid_host=request.host, original_request=request)
        kind = request.WhichOneof("message_request")
        try:
            if kind == "list_services":
                response.list_services_response.service.extend(
                    pb.ServiceResponse(name=n) for n in self.server.services
                )
            elif kind == "file_by_filename":
                fd = self.pool.FindFileByName(request.file_by_filename)
                response.file_descriptor_response.file_descriptor_proto.extend(_with_dependencies(fd))
            elif kind == "file_containing_symbol":
                fd = self.pool.FindFileContainingSymbol(request.file_containing_symbol)
                response.file_descriptor_response.file_descriptor_proto.extend(_with_dependencies(fd))
            else:
                response.error_response.error_code = StatusCode.UNIMPLEMENTED
                response.error_response.error_message = f"{kind} is not supported"
        except KeyError as exc:
            response.error_response.error_code = StatusCode.NOT_FOUND
            response.error_response.error_message = f"not found: {exc}"
        return response

    async def ServerReflectionInfo(
        self, requests: AsyncIterator[pb.ServerReflectionRequest]
    ) -> AsyncIterator[pb.ServerReflectionResponse]:
        async for request in requests:
            yield self._answer(request)


def enable_reflection(server: Server) -> None:
    """Add the reflection service; it lists whatever ``server`` serves."""
    implementation = _Reflection(server)
    for name in SERVICE_NAMES:
        server.add_method(
            f"/{name}/ServerReflectionInfo",
            pb.ServerReflectionRequest,
            implementation.ServerReflectionInfo,
            client_streaming=True,
            server_streaming=True,
        )
