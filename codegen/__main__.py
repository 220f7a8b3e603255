"""``python -m codegen [--check] [--root DIR] [GENERATOR ...]``: run every generator (``make generate``).

With ``--check`` nothing is written; the exit status is 1 when any generated file is stale (each is
named), 2 when a generator could not run (its missing source or tool is named), else 0.
"""

from __future__ import annotations

from codegen._files import arguments, run
from codegen._registry import GENERATORS, generator


def main(argv: list[str] | None = None) -> int:
    parser = arguments("codegen", __doc__)
    parser.add_argument("generators", nargs="*", metavar="GENERATOR", help=f"default: {' '.join(GENERATORS)}")
    opts = parser.parse_args(argv)
    unknown = sorted(set(opts.generators) - set(GENERATORS))
    if unknown:
        parser.error(f"unknown generator {', '.join(unknown)}; known: {', '.join(GENERATORS)}")
    status = 0
    for name in opts.generators or GENERATORS:
        render, owned = generator(name)
        # One generator failing still lets the others check or write: the report names every problem.
        status = max(status, run(name, render, check=opts.check, root=opts.root, owned=owned))
    return status


if __name__ == "__main__":
    raise SystemExit(main())
