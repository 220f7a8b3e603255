"""gRPC for the DMI: unary and streaming calls over HTTP/2 on Unix sockets, written for the edge.

grpcio costs ~310 µs of CPU per unary call on the server and ~20 MB of memory once imported; a
mapper reporting 2,000 times a second made it most of edgecore's CPU. This implementation speaks
the same wire protocol (interoperates with grpcio and grpc-go peers; tests run it against grpcio)
with the parts the DMI needs: unary calls both ways, streaming for server reflection, deadlines,
status codes and messages, flow control, gzip/deflate decoding. Not implemented: TLS and TCP (the
DMI is a Unix socket), sending compressed messages, metadata beyond the standard headers.

Public surface: ``Server``, ``Channel``, ``RpcError``, ``StatusCode``, ``enable_reflection``.
"""

from dmi.rpc._client import Channel
from dmi.rpc._grpc import RpcError, StatusCode
from dmi.rpc._reflection import enable_reflection
from dmi.rpc._server import Server

__all__ = ["Channel", "RpcError", "Server", "StatusCode", "enable_reflection"]
