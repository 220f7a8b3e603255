"""The realk8s lane: kubeshore against a real Kubernetes control plane (``../shared/kubernetes``).

One control plane per session, shared by every test here. Tests that need it (the ``realk8s`` backend of
the scenarios, the parity and RBAC tests) carry the ``realk8s`` marker; without the control plane they
are skipped and the run says why in one line. The ``embedded`` backend of the same scenarios always runs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from _peers import ControlPlane, kubernetes_missing
from _peers import control_plane as run_control_plane


def _needs_cluster(item: pytest.Item) -> bool:
    callspec = getattr(item, "callspec", None)
    if callspec is not None and callspec.params.get("stack") == "realk8s":
        return True
    return "control_plane" in getattr(item, "fixturenames", ())


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    reason = kubernetes_missing()
    for item in items:
        if here in Path(str(item.fspath)).parents and _needs_cluster(item):
            item.add_marker(pytest.mark.realk8s)
            if reason:
                item.add_marker(pytest.mark.skip(reason=reason))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    reason = kubernetes_missing()
    if reason:
        terminalreporter.write_line(reason)


@pytest.fixture(scope="session")
def control_plane() -> Iterator[ControlPlane]:
    """etcd, kube-apiserver, kube-controller-manager and kube-scheduler v1.36.2 on loopback."""
    reason = kubernetes_missing()
    if reason:
        pytest.skip(reason)
    with run_control_plane() as cp:
        yield cp
