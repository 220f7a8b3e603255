"""Owner-only files: keys, tokens, Secrets and the stores are 0600 in 0700 directories.

Created that way (``private_umask`` at process start, ``private_dir``, ``write_private``) and checked
at start (``secure_tree``): a data directory made by an older version, or loosened by hand, is
tightened with a warning naming each path; one owned by another user is refused, since this process
could neither fix it nor trust what it holds.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

log = logging.getLogger(__name__)

DIR_MODE = 0o700
FILE_MODE = 0o600


class FileModeError(OSError):
    """A private path is owned by another user."""


def private_umask() -> None:
    """Every file this process creates from now on (SQLite stores, WAL files, logs) is owner-only."""
    os.umask(0o077)


def private_dir(path: Path) -> Path:
    """``path`` (and missing parents) created 0700; an existing one is tightened."""
    path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    _tighten(path, os.lstat(path))
    return path


def write_private(path: Path, data: bytes) -> None:
    """Write key material readable by the owner only (also when the file existed with a wider mode)."""
    path.parent.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    with os.fdopen(fd, "wb") as f:
        os.fchmod(f.fileno(), FILE_MODE)
        f.write(data)


def secure_tree(root: Path) -> list[Path]:
    """Tighten ``root`` and everything below it to 0700 (directories) and 0600 (files); returns the
    paths that were wider. Symbolic links are not followed; sockets keep their mode (their owners
    choose who may connect)."""
    if not root.exists():
        return []
    changed: list[Path] = []
    for top, dirs, files in os.walk(root, followlinks=False):
        for name in [None, *dirs, *files]:
            path = Path(top) if name is None else Path(top) / name
            st = os.lstat(path)
            if name in dirs and stat.S_ISDIR(st.st_mode):
                continue  # visited as its own ``top``
            if _tighten(path, st):
                changed.append(path)
    return changed


def _tighten(path: Path, st: os.stat_result) -> bool:
    if stat.S_ISDIR(st.st_mode):
        want = DIR_MODE
    elif stat.S_ISREG(st.st_mode):
        want = FILE_MODE
    else:
        return False
    mode = stat.S_IMODE(st.st_mode)
    if mode & ~want == 0:
        return False
    if st.st_uid != os.geteuid():
        raise FileModeError(
            f"{path} is owned by uid {st.st_uid}, not by this user, and readable by others "
            f"(mode {mode:o}); give it to this user or remove it"
        )
    os.chmod(path, mode & want)
    log.warning("%s was open to other users (mode %o); now %o", path, mode, mode & want)
    return True
