"""The one protoc runner: grpcio-tools' bundled protoc, with mypy-protobuf for typed gRPC stubs."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from codegen._files import REPO_ROOT, GenerationError, SourceMissing, header


def _mypy_grpc_plugin() -> str:
    search = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    found = shutil.which("protoc-gen-mypy_grpc", path=search)
    if found is None:
        raise GenerationError(
            "protoc-gen-mypy_grpc not found: install the dev extra (pip install -e '.[dev]')"
        )
    return found


def run_protoc(
    proto: Path | Sequence[Path],
    names: Sequence[str],
    *,
    grpc: bool = False,
    typed: bool = True,
    include: Path = REPO_ROOT,
) -> dict[str, str]:
    """Run protoc (``include`` as include path, grpcio-tools' well-known protos beside it) on ``proto``
    (one or several in one directory); the texts of the generated files named ``names``, keyed by name.
    ``grpc`` adds the gRPC stubs and their typing, ``typed`` the ``.pyi`` of the messages."""
    protos = [proto] if isinstance(proto, Path) else list(proto)
    try:
        import grpc_tools
        from grpc_tools import protoc
    except ImportError as exc:
        raise GenerationError("grpcio-tools is not installed: install the dev extra") from exc

    well_known = Path(grpc_tools.__file__).parent / "_proto"
    with tempfile.TemporaryDirectory(prefix="protoc-") as out:
        args = ["protoc", f"-I{include}", f"-I{well_known}", f"--python_out={out}"]
        if typed:
            args.append(f"--pyi_out={out}")
        if grpc:
            args += [
                f"--plugin=protoc-gen-mypy_grpc={_mypy_grpc_plugin()}",
                f"--grpc_python_out={out}",
                f"--mypy_grpc_out={out}",
            ]
        code = protoc.main([*args, *map(str, protos)])
        if code != 0:
            raise GenerationError(f"protoc failed with exit code {code} for {', '.join(map(str, protos))}")
        generated = Path(out) / protos[0].parent
        return {name: (generated / name).read_text(encoding="utf-8") for name in names}


@dataclass(frozen=True)
class ProtoFiles:
    """One proto compiled into one directory of the repository: the DMI stubs, the CRI messages,
    gnostic's OpenAPI v2 messages. (Kubernetes' protos need their import paths rewritten first:
    ``k8sproto.generate`` runs :func:`run_protoc` itself.)

    ``proto`` is relative to ``include``, so the descriptor is registered under that name; ``names``
    maps protoc's output names to the file names in ``out_dir`` (relative to the repository).
    """

    command: str
    include: Path
    proto: Path
    out_dir: Path
    names: Mapping[str, str]
    grpc: bool = False
    typed: bool = True
    source: str = ""  # the header's description of the source; the proto's path by default
    missing_hint: str = field(default="", compare=False)

    def render(self) -> dict[Path, str]:
        path = self.include / self.proto
        if not path.is_file():
            raise SourceMissing(f"{path} not found{': ' + self.missing_hint if self.missing_hint else ''}")
        source = self.source or (
            path.relative_to(REPO_ROOT).as_posix() if path.is_relative_to(REPO_ROOT) else str(path)
        )
        texts = run_protoc(
            self.proto, list(self.names), grpc=self.grpc, typed=self.typed, include=self.include
        )
        first = header(self.command, source)
        return {self.out_dir / self.names[name]: first + text for name, text in texts.items()}
