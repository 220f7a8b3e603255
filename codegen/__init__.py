"""Build-time plumbing every code generator of the repository shares: protoc, the "generated, do not
edit" header, write-if-changed and the ``--check`` report naming each stale file.

Each package keeps its own generator (``python -m <package>.generate``: it knows its sources); this
package is the one way they run protoc and compare or write their output, and ``python -m codegen``
runs them all (``make generate``). Only ``<package>.generate`` modules import it
(tests/test_import_rules.py) and it is not part of the wheel: no process needs it at run time.
"""

from codegen._files import (
    GENERATED_MARK,
    REPO_ROOT,
    GenerationError,
    SourceMissing,
    arguments,
    cli,
    header,
    run,
    stale,
    write,
)
from codegen._protoc import ProtoFiles, run_protoc
from codegen._registry import GENERATORS, check_all, generator

__all__ = [
    "GENERATED_MARK",
    "GENERATORS",
    "REPO_ROOT",
    "GenerationError",
    "ProtoFiles",
    "SourceMissing",
    "arguments",
    "check_all",
    "cli",
    "generator",
    "header",
    "run",
    "run_protoc",
    "stale",
    "write",
]
