"""Data directories made owner-only on creation and tightened (or refused) at start."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

import pytest

from kubeshore import filemodes


def _mode(p: Path) -> int:
    return stat.S_IMODE(os.lstat(p).st_mode)


def test_private_dir_and_write_private(tmp_path: Path) -> None:
    d = filemodes.private_dir(tmp_path / "a" / "b")
    assert _mode(d) == 0o700
    key = d / "k.key"
    key.write_bytes(b"old")
    key.chmod(0o644)
    filemodes.write_private(key, b"new")  # an existing wide file is narrowed, not just rewritten
    assert _mode(key) == 0o600 and key.read_bytes() == b"new"


def test_wide_tree_is_tightened_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = tmp_path / "data"
    (root / "sub").mkdir(parents=True)
    root.chmod(0o755)
    (root / "sub").chmod(0o750)
    (root / "apiserver.db").write_bytes(b"x")
    (root / "apiserver.db").chmod(0o644)
    (root / "sub" / "ok").write_bytes(b"x")
    (root / "sub" / "ok").chmod(0o600)
    os.symlink("/etc/passwd", root / "link")
    with caplog.at_level(logging.WARNING):
        changed = filemodes.secure_tree(root)
    assert sorted(changed) == sorted([root, root / "sub", root / "apiserver.db"])
    assert _mode(root) == 0o700 and _mode(root / "sub") == 0o700 and _mode(root / "apiserver.db") == 0o600
    assert _mode(Path("/etc/passwd")) == 0o644  # links are not followed
    assert "apiserver.db was open to other users (mode 644); now 600" in caplog.text
    assert filemodes.secure_tree(root) == []


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give a file away")
def test_wide_file_of_another_user_is_refused(tmp_path: Path) -> None:
    f = tmp_path / "edgecore.db"
    f.write_bytes(b"x")
    f.chmod(0o644)
    os.chown(f, 65534, 65534)
    with pytest.raises(filemodes.FileModeError, match="owned by uid 65534"):
        filemodes.secure_tree(tmp_path)
