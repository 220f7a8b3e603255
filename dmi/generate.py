"""Regenerate the DMI v1beta1 Python stubs from ``dmi/v1beta1/api.proto`` (and the gRPC reflection messages).

Usage: ``python -m dmi.generate [--check]`` (``python -m codegen`` runs it with the other generators).
With ``--check`` nothing is written and the exit code is 1 when a committed stub differs from what the
proto generates.

protoc runs with the repository root as its include path, so the generated gRPC module imports
``dmi.v1beta1.api_pb2`` and the descriptor is registered as ``dmi/v1beta1/api.proto``; the wire names
(package ``v1beta1``, services, messages) are those of the proto and unaffected by the file path.

Tools (the ``dev`` extra pins them, so output is reproducible): grpcio-tools writes ``api_pb2.py``,
``api_pb2.pyi`` and ``api_pb2_grpc.py``; mypy-protobuf's ``protoc-gen-mypy_grpc`` writes
``api_pb2_grpc.pyi`` so that servicers and stubs type-check under ``mypy --strict``.

The same command writes ``dmi/rpc/_reflection_pb2.py(i)`` from ``dmi/rpc/proto/grpc_reflection/v1alpha/
reflection.proto``: dmi.rpc serves reflection with them, so no process needs grpcio-reflection (nor the
grpcio it requires) at run time.
"""

from __future__ import annotations

from pathlib import Path

import codegen

COMMAND = "dmi.generate"
STUB_NAMES = ("api_pb2.py", "api_pb2.pyi", "api_pb2_grpc.py", "api_pb2_grpc.pyi")
STUBS = codegen.ProtoFiles(
    COMMAND,
    include=codegen.REPO_ROOT,
    proto=Path("dmi/v1beta1/api.proto"),
    out_dir=Path("dmi/v1beta1"),
    names={name: name for name in STUB_NAMES},
    grpc=True,
)
REFLECTION = codegen.ProtoFiles(
    COMMAND,
    include=codegen.REPO_ROOT / "dmi" / "rpc" / "proto",
    proto=Path("grpc_reflection/v1alpha/reflection.proto"),
    out_dir=Path("dmi/rpc"),
    names={"reflection_pb2.py": "_reflection_pb2.py", "reflection_pb2.pyi": "_reflection_pb2.pyi"},
)


def render() -> dict[Path, str]:
    """The stubs and the reflection messages, keyed by their paths in the repository."""
    return {**STUBS.render(), **REFLECTION.render()}


def main(argv: list[str] | None = None) -> int:
    return codegen.cli(COMMAND, __doc__, render, argv)


if __name__ == "__main__":
    raise SystemExit(main())
