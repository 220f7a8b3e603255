"""The `kubeshore` command: a thin dispatcher to subcommands that import their code lazily.

Each entry maps a subcommand to ``module:function``; the function takes the remaining argv and
returns an exit code. Lazy imports keep `kubeshore mapper run` from loading cloud code.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Sequence

SUBCOMMANDS: dict[str, tuple[str, str]] = {
    # name: ("module:function", one-line help)
    "apiserver": ("cloudcore.apiserver:main", "run the embedded Kubernetes API server"),
    "join": ("edgecore.join:main", "join this machine to cloudcore as an edge node"),
    "mapper": ("mappers.cli:main", "run a device mapper (virtual, modbus, opcua, yours) or scaffold one"),
    "token": ("cloudcore.token:main", "create edge join tokens"),
    "up": ("up.command:up", "run the whole platform on this machine (--detach for scripts)"),
    "down": ("up.command:down", "stop what `kubeshore up --detach` started"),
    "nodegroup-controller": ("nodegroup.app:cli", "run the NodeGroup and EdgeApplication controllers"),
}


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print("usage: kubeshore <command> [options]\n\ncommands:")
        for name, (_, help_text) in sorted(SUBCOMMANDS.items()):
            print(f"  {name:<12} {help_text}")
        return 0 if args else 2
    if args[0] in ("--version", "version"):
        from kubeshore import __version__

        print(f"kubeshore {__version__}")
        return 0
    entry = SUBCOMMANDS.get(args[0])
    if entry is None:
        print(f"kubeshore: unknown command {args[0]!r}; see 'kubeshore --help'", file=sys.stderr)
        return 2
    from kubeshore.filemodes import private_umask

    private_umask()
    module_name, func_name = entry[0].split(":")
    func: Callable[[list[str]], int] = getattr(importlib.import_module(module_name), func_name)
    return func(args[1:])


if __name__ == "__main__":
    raise SystemExit(main())
