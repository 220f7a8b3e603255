"""kubeshore.cgroups on this machine's real cgroup hierarchies: a tree is removed deepest first in every
hierarchy, and a cgroup that still holds a process is left and named (never emptied by killing)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from kubeshore import cgroups


@pytest.fixture
def tree() -> Iterator[str]:
    name = f"kubeshore-test-{os.getpid()}"
    yield name
    cgroups.remove_tree(name)


def test_remove_tree_leaves_a_cgroup_with_a_process(tree: str) -> None:
    bases = cgroups.hierarchies()
    assert bases, "no cgroup hierarchy mounted"
    for base in bases:
        (base / tree / "kubepods" / "podu" / "c1").mkdir(parents=True)
    # A process of the test's own, in the pod's cgroup of one hierarchy (v2 or pids: no set-up needed).
    busy = next((b for b in bases if b.name in ("pids", "unified")), bases[0])
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        (busy / tree / "kubepods" / "podu" / "cgroup.procs").write_text(str(sleeper.pid))
        left = cgroups.remove_tree(f"{tree}/kubepods/podu")
        assert f"{busy / tree / 'kubepods' / 'podu'}: has processes" in left
        assert (busy / tree / "kubepods" / "podu").is_dir() and sleeper.poll() is None
        assert not (busy / tree / "kubepods" / "podu" / "c1").exists()
        others = [b for b in bases if b != busy]
        assert [b for b in others if (b / tree / "kubepods" / "podu").exists()] == []
    finally:
        sleeper.kill()
        sleeper.wait()
    assert cgroups.remove_tree(tree) == []
    assert [b for b in bases if (b / tree).exists()] == []


def test_remove_tree_refuses_a_hierarchy_top() -> None:
    for rel in ("", "/", "a/../..", "./x"):
        with pytest.raises(ValueError, match="refusing"):
            cgroups.remove_tree(rel, bases=[Path("/nonexistent")])
