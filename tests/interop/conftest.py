"""The interop lane: kubeshore against KubeEdge's own binaries (built from its source).

The binaries come from ``KUBEEDGE_BIN`` (a directory a user brings) or ``../shared/kubeedge/bin`` beside
the checkout, as ``NAME`` or ``NAME.xz``; they are unpacked once per machine into a cache directory.
Without them every test here is skipped, and the run says so in one line."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from _peers import unpack_binaries

REPO = Path(__file__).resolve().parents[2]
NAMES = ("cloudcore", "edgecore", "virtual-mapper", "dmiload")


def kubeedge_source() -> Path | None:
    """Where KubeEdge's binaries are, or None when this machine has none."""
    env = os.environ.get("KUBEEDGE_BIN")
    candidates = [Path(env)] if env else [REPO.parent / "shared" / "kubeedge" / "bin"]
    for d in candidates:
        if d.is_dir() and all((d / n).exists() or (d / f"{n}.xz").exists() for n in NAMES):
            return d
    return None


def _skip_reason() -> str | None:
    if kubeedge_source() is None:
        where = os.environ.get("KUBEEDGE_BIN") or str(REPO.parent / "shared" / "kubeedge" / "bin")
        return f"interop lane skipped: no KubeEdge binaries ({', '.join(NAMES)}) in {where}"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    reason = _skip_reason()
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.interop)
            if reason:
                item.add_marker(pytest.mark.skip(reason=reason))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    reason = _skip_reason()
    if reason:
        terminalreporter.write_line(reason)


def unpack_kubeedge() -> Path | None:
    """A directory holding KubeEdge's executables, unpacked from ``.xz`` once per machine (a cache
    directory keyed by the source files); None without binaries. The benchmarks use it too."""
    src = kubeedge_source()
    if src is None:
        return None
    return unpack_binaries(src, NAMES, "kubeedge")


@pytest.fixture(scope="session")
def kubeedge_bin() -> Path:
    """A directory holding KubeEdge's executables, unpacked from ``.xz`` when needed."""
    cache = unpack_kubeedge()
    if cache is None:
        pytest.skip(_skip_reason() or "no KubeEdge binaries")
    return cache


@pytest.fixture(scope="session")
def kubeedge_recipes() -> Path:
    """KubeEdge's configuration writers (``../shared/kubeedge/recipes``)."""
    d = REPO.parent / "shared" / "kubeedge" / "recipes"
    if not d.is_dir():
        pytest.skip(f"interop lane skipped: no recipes in {d}")
    return d
