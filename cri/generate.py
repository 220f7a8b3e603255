"""Regenerate the CRI v1 message classes from ``cri/v1/api.proto``.

Usage: ``python -m cri.generate [--check]`` (``python -m codegen`` runs it with the other generators);
with ``--check`` nothing is written and the exit code is 1 when a committed file differs from what the
proto generates.
"""

from __future__ import annotations

from pathlib import Path

import codegen

COMMAND = "cri.generate"
MESSAGES = codegen.ProtoFiles(
    COMMAND,
    include=codegen.REPO_ROOT,
    proto=Path("cri/v1/api.proto"),
    out_dir=Path("cri/v1"),
    names={"api_pb2.py": "api_pb2.py", "api_pb2.pyi": "api_pb2.pyi"},
)


def render() -> dict[Path, str]:
    return MESSAGES.render()


def main(argv: list[str] | None = None) -> int:
    return codegen.cli(COMMAND, __doc__, render, argv)


if __name__ == "__main__":
    raise SystemExit(main())
