"""Run a program with every import's memory cost recorded: what each module adds to RSS (and, with
``--tracemalloc``, to Python heap allocations) while it executes, minus what its own imports add.

Run: ``python bench/_importcost.py OUT.json [--tracemalloc] -- MODULE [ARGS...]``. ``MODULE`` is run
as ``python -m MODULE ARGS...`` would run it. The report is written to ``OUT.json`` on SIGUSR1 and
when the program exits: ``{"rss_mb": ..., "modules": {name: {"rss_kb": self, "alloc_kb": self,
"ms": self}}}``. Costs are *self* costs (like ``-X importtime``'s "self" column), so summing them
over a package gives what importing that package cost, wherever it was first imported from.

Why a hook instead of ``python -c "import X"``: inside a running program a module is imported once,
by whoever needs it first; a standalone import of ``X`` counts everything ``X`` pulls in, even
when the program had loaded it already. RSS deltas are page-granular (4 KiB) and include native
libraries mapped in by extension modules, which tracemalloc does not see.
"""

from __future__ import annotations

import json
import os
import runpy
import signal
import sys
import time
import tracemalloc
from pathlib import Path
from types import FrameType
from typing import Any

_PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


def rss_kb() -> int:
    with open("/proc/self/statm", "rb") as f:
        return int(f.read().split()[1]) * _PAGE_KB


class ImportCosts:
    """Wraps importlib's ``_find_and_load`` (what every ``import`` statement ends in for a module
    not yet in ``sys.modules``) and keeps a stack of the imports in progress."""

    def __init__(self, traced: bool) -> None:
        self.traced = traced
        self.modules: dict[str, dict[str, Any]] = {}
        self._stack: list[list[float]] = []  # per import in progress: [children rss, alloc, ns]
        self._names: list[str] = []

    def _alloc(self) -> int:
        return tracemalloc.get_traced_memory()[0] if self.traced else 0

    def install(self) -> None:
        bootstrap: Any = sys.modules["_frozen_importlib"]
        original = bootstrap._find_and_load

        def find_and_load(name: str, import_: Any) -> Any:
            if name in sys.modules:
                return original(name, import_)
            parent = self._names[-1] if self._names else ""
            self._stack.append([0.0, 0.0, 0.0])
            self._names.append(name)
            r0, a0, t0 = rss_kb(), self._alloc(), time.perf_counter_ns()
            try:
                return original(name, import_)
            finally:
                dr, da, dt = rss_kb() - r0, self._alloc() - a0, time.perf_counter_ns() - t0
                child = self._stack.pop()
                self._names.pop()
                if self._stack:
                    outer = self._stack[-1]
                    outer[0] += dr
                    outer[1] += da
                    outer[2] += dt
                self.modules[name] = {
                    "rss_kb": dr - child[0],
                    "alloc_kb": round((da - child[1]) / 1024, 1),
                    "ms": round((dt - child[2]) / 1e6, 2),
                    "by": parent,
                }

        bootstrap._find_and_load = find_and_load

    def report(self) -> dict[str, Any]:
        return {"pid": os.getpid(), "rss_mb": round(rss_kb() / 1024, 1), "modules": dict(self.modules)}


def main() -> None:
    # This script's directory is not the program's: bench/ modules must not shadow anything.
    if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
        sys.path.pop(0)
    argv = sys.argv[1:]
    out = Path(argv.pop(0))
    traced = "--tracemalloc" in argv[: argv.index("--")]
    argv = argv[argv.index("--") + 1 :]
    if traced:
        tracemalloc.start(int(os.environ.get("IMPORTCOST_FRAMES", "1")))
    costs = ImportCosts(traced)
    costs.install()

    def dump(*_: object) -> None:
        tmp = out.with_suffix(".tmp")
        tmp.write_text(json.dumps(costs.report()) + "\n")
        tmp.replace(out)

    def on_signal(_sig: int, _frame: FrameType | None) -> None:
        dump()

    def on_snapshot(_sig: int, _frame: FrameType | None) -> None:
        # Where the live Python heap is, for ``tracemalloc.Snapshot.load`` (with --tracemalloc).
        if traced:
            tracemalloc.take_snapshot().dump(str(out.with_suffix(".snapshot")))

    signal.signal(signal.SIGUSR1, on_signal)
    signal.signal(signal.SIGUSR2, on_snapshot)
    sys.argv = [argv[0], *argv[1:]]
    try:
        runpy.run_module(argv[0], run_name="__main__", alter_sys=True)
    finally:
        dump()


if __name__ == "__main__":
    main()
