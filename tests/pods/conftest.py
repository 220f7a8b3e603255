"""The pods lane: edged running real Pods through CRI on a real containerd (Debian's containerd, runc,
CNI plugins; images built locally from busybox-static). Without them (or without root) every test here
is skipped, and the run says why in one line."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pods._containerd import Containerd, missing

_REASON = missing()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.pods)
            if _REASON:
                item.add_marker(pytest.mark.skip(reason=f"pods lane skipped: {_REASON}"))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _REASON:
        terminalreporter.write_line(f"pods lane skipped: {_REASON} (real Pods need root and containerd)")


@pytest.fixture(scope="module")
def containerd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Containerd]:
    # A short path: containerd's socket path must fit in sun_path (108 bytes).
    root = Path(tmp_path_factory.mktemp("ctrd"))
    c = Containerd(root)
    try:
        c.start()
        yield c
    finally:
        c.stop()
