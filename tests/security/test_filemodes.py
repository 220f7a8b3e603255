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


def test_one_file_is_tightened_and_system_dirs_are_refused(tmp_path: Path) -> None:
    key = tmp_path / "server.key"
    key.write_bytes(b"k")
    key.chmod(0o644)
    assert filemodes.secure_tree(key) == [key] and _mode(key) == 0o600
    for system in (Path("/"), Path("/etc"), Path("/var/lib")):
        with pytest.raises(filemodes.FileModeError, match="cannot be a data directory"):
            filemodes.secure_tree(system)
        with pytest.raises(filemodes.FileModeError, match="cannot be a data directory"):
            filemodes.private_dir(system)


def test_pod_volumes_keep_the_modes_their_pod_chose(tmp_path: Path) -> None:
    edged = tmp_path / "edged"
    volume = edged / "pods" / "uid" / "volumes" / "cfg"
    volume.mkdir(parents=True)
    (volume / "app.conf").write_bytes(b"x")
    (volume / "app.conf").chmod(0o644)
    edged.chmod(0o755)
    filemodes.secure_tree(tmp_path, keep=[edged])
    assert _mode(edged) == 0o700  # the volumes are behind an owner-only directory
    assert _mode(volume / "app.conf") == 0o644


def test_pod_volumes_are_readable_by_the_pod_under_edgecores_umask(tmp_path: Path) -> None:
    from edgecore.edged._volumes import write_atomically

    old = os.umask(0o077)  # edgecore's (filemodes.private_umask)
    try:
        vol = tmp_path / "cfg"
        assert write_atomically(vol, {"a/b.conf": (b"x", 0o644), "top": (b"y", 0o640)})
    finally:
        os.umask(old)
    data = (vol / "..data").resolve()
    assert _mode(vol) == 0o755 and _mode(data) == 0o755 and _mode(data / "a") == 0o755
    assert _mode(data / "a" / "b.conf") == 0o644 and _mode(data / "top") == 0o640


def test_a_file_that_cannot_be_narrowed_is_refused_with_the_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """(tests/robustness/test_store_health.py does it on a real read-only file system)"""
    f = tmp_path / "edge.db"
    f.write_bytes(b"")
    f.chmod(0o644)

    def read_only(path: object, mode: int) -> None:
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(filemodes.os, "chmod", read_only)
    with pytest.raises(
        filemodes.FileModeError, match=r"\(mode 644\) and cannot be narrowed: Read-only file system"
    ):
        filemodes.secure_tree(f)


def test_a_data_dir_given_by_mistake_keeps_what_is_not_kubeshores(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / "pki").mkdir(parents=True)
    (home / "pki" / "ca.key").write_bytes(b"k")
    (home / "pki" / "ca.key").chmod(0o644)
    (home / ".bashrc").write_bytes(b"")
    (home / ".bashrc").chmod(0o644)
    (home / "public").mkdir(mode=0o755)
    filemodes.secure_data_dir(home, ("pki", "apiserver.db"))
    assert _mode(home) == 0o700 and _mode(home / "pki" / "ca.key") == 0o600
    assert _mode(home / ".bashrc") == 0o644 and _mode(home / "public") == 0o755
