"""Regenerate the Python protobuf modules of Kubernetes' own ``.proto`` files.

Usage: ``python -m k8sproto.generate [--check] [--proto-root DIR]`` (``python -m codegen`` runs it with
the other generators). With ``--check`` nothing is written and the exit code is 1 when a committed
module differs from what the protos generate, or a generated module no proto set writes is left
over. The protos are Kubernetes' (``../shared/kubernetes-proto`` beside the repository, or
``--proto-root``); only the modules listed in a :class:`ProtoSet` are generated.

Kubernetes' import paths start with ``k8s.io/``, which is no Python package name, so each proto is
copied into a scratch tree under its module name (``k8s.io/api/core/v1/generated.proto`` becomes
``k8sproto/api/core_v1.proto``) with its imports rewritten the same way, and protoc runs there. The
proto packages, hence the message names on the wire (``k8s.io.api.core.v1.Pod``), are unchanged.

Another proto set of ``../shared/kubernetes-proto`` (another group, or the CRI of ``k8s.io/cri-api``,
which ``python -m cri.generate`` today generates from a copy in ``cri/v1``) is one more
:class:`ProtoSet` in ``PROTO_SETS``; ``grpc=True`` also writes its gRPC stubs. protoc itself runs
through ``codegen.run_protoc``, as for every proto of the project.
"""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import codegen
from codegen import GenerationError, SourceMissing

COMMAND = "k8sproto.generate"
DEFAULT_PROTO_ROOT = codegen.REPO_ROOT.parent / "shared" / "kubernetes-proto"
_IMPORT = re.compile(r'^import\s+"([^"]+)";', re.MULTILINE)


@dataclass(frozen=True)
class ProtoSet:
    """Protos generated into one package: ``modules`` maps a module name to its proto path."""

    name: str
    package: str
    modules: dict[str, str]
    grpc: bool = False

    @property
    def directory(self) -> Path:
        """Relative to the repository."""
        return Path(*self.package.split("."))

    def header(self, source: str) -> str:
        return codegen.header(COMMAND, source)


_API = "k8s.io/api/{}/generated.proto"
_MACHINERY = "k8s.io/apimachinery/pkg/{}/generated.proto"

# The built-in groups the embedded API server serves (kubeapi.builtins) and the subresources a client
# writes (autoscaling/v1 Scale), with what they import. One line per added group.
KUBERNETES_API = ProtoSet(
    name="kubernetes-api",
    package="k8sproto.api",
    modules={
        "core_v1": _API.format("core/v1"),
        "apps_v1": _API.format("apps/v1"),
        "autoscaling_v1": _API.format("autoscaling/v1"),
        "coordination_v1": _API.format("coordination/v1"),
        "discovery_v1": _API.format("discovery/v1"),
        "rbac_v1": _API.format("rbac/v1"),
        "meta_v1": _MACHINERY.format("apis/meta/v1"),
        "resource": _MACHINERY.format("api/resource"),
        "runtime": _MACHINERY.format("runtime"),
        "runtime_schema": _MACHINERY.format("runtime/schema"),
        "intstr": _MACHINERY.format("util/intstr"),
    },
)

PROTO_SETS: tuple[ProtoSet, ...] = (KUBERNETES_API,)
# A module dropped from a set leaves its file behind: generated files there that no set writes are stale.
OWNED = tuple(f"{proto_set.directory.as_posix()}/*.py" for proto_set in PROTO_SETS)


def _scratch_path(proto_set: ProtoSet, module: str) -> str:
    return f"{proto_set.package.replace('.', '/')}/{module}.proto"


def _rewrite(text: str, renames: dict[str, str], source: str) -> str:
    def replace(match: re.Match[str]) -> str:
        target = renames.get(match.group(1))
        if target is None:
            raise GenerationError(f"{source} imports {match.group(1)}, which is not in its proto set")
        return f'import "{target}";'

    return _IMPORT.sub(replace, text)


def _init_text(proto_set: ProtoSet) -> str:
    lines = [proto_set.header(f"the protos of the {proto_set.name} set")]
    lines.append('"""Generated protobuf modules; each maps to the proto named in its header."""\n')
    return "".join(lines)


def render_set(proto_set: ProtoSet, proto_root: Path = DEFAULT_PROTO_ROOT) -> dict[str, str]:
    """Run protoc over ``proto_set`` and return the module texts keyed by file name, headers included."""
    renames = {source: _scratch_path(proto_set, module) for module, source in proto_set.modules.items()}
    with tempfile.TemporaryDirectory(prefix="k8sproto-") as scratch:
        for source, target in renames.items():
            path = proto_root / source
            if not path.is_file():
                raise SourceMissing(f"{path} not found: pass --proto-root (Kubernetes' proto files)")
            dest = Path(scratch) / target
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_text(_rewrite(path.read_text(encoding="utf-8"), renames, source), encoding="utf-8")
        suffixes = ("_pb2.py", "_pb2_grpc.py") if proto_set.grpc else ("_pb2.py",)
        generated = codegen.run_protoc(
            [Path(target) for target in sorted(renames.values())],
            [f"{module}{suffix}" for module in proto_set.modules for suffix in suffixes],
            grpc=proto_set.grpc,
            typed=False,
            include=Path(scratch),
        )
    texts = {"__init__.py": _init_text(proto_set)}
    for module, source in proto_set.modules.items():
        for suffix in suffixes:
            texts[f"{module}{suffix}"] = proto_set.header(source) + generated[f"{module}{suffix}"]
    return texts


def render(proto_root: Path = DEFAULT_PROTO_ROOT) -> dict[Path, str]:
    """Every proto set's modules, keyed by their paths in the repository."""
    return {
        proto_set.directory / name: text
        for proto_set in PROTO_SETS
        for name, text in render_set(proto_set, proto_root).items()
    }


def main(argv: list[str] | None = None) -> int:
    parser = codegen.arguments(COMMAND, __doc__)
    parser.add_argument("--proto-root", type=Path, default=DEFAULT_PROTO_ROOT, help="Kubernetes' protos")
    opts = parser.parse_args(argv)
    return codegen.run(
        COMMAND, lambda: render(opts.proto_root), check=opts.check, root=opts.root, owned=OWNED
    )


if __name__ == "__main__":
    raise SystemExit(main())
