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
from collections.abc import Iterable
from pathlib import Path

log = logging.getLogger(__name__)

DIR_MODE = 0o700
FILE_MODE = 0o600


class FileModeError(OSError):
    """A private path is open to other users and cannot be narrowed (another owner, read-only)."""


def private_umask() -> None:
    """Every file this process creates from now on (SQLite stores, WAL files, logs) is owner-only."""
    os.umask(0o077)


# Directories a data directory must never be: tightening them would lock everyone else out.
_SYSTEM_DIRS = frozenset(
    Path(p)
    for p in ("/", "/etc", "/var", "/var/lib", "/usr", "/home", "/tmp", "/opt", "/root", "/srv", "/run")
)


def _check_not_system(path: Path) -> None:
    if path.resolve() in _SYSTEM_DIRS:
        raise FileModeError(f"{path} cannot be a data directory: give kubeshore a directory of its own")


def private_dir(path: Path) -> Path:
    """``path`` (and missing parents) created 0700; an existing one is tightened."""
    _check_not_system(path)
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


def secure_tree(root: Path, *, keep: Iterable[Path] = ()) -> list[Path]:
    """Tighten ``root`` (a directory or one file) and everything below it to 0700 (directories) and
    0600 (files); returns the paths that were wider. Symbolic links are not followed; sockets keep
    their mode (their owners choose who may connect); below a directory of ``keep`` (Pod volumes,
    whose modes the Pod chose) nothing is changed, the directory itself is tightened."""
    if not root.exists():
        return []
    if not root.is_dir():
        return [root] if _tighten(root, os.lstat(root)) else []
    _check_not_system(root)
    kept = {k.resolve() for k in keep}
    changed: list[Path] = []
    for top, dirs, files in os.walk(root, followlinks=False):
        if Path(top).resolve() in kept:
            dirs.clear()
            files = []
        for name in [None, *dirs, *files]:
            path = Path(top) if name is None else Path(top) / name
            st = os.lstat(path)
            if name in dirs and stat.S_ISDIR(st.st_mode):
                continue  # visited as its own ``top``
            if _tighten(path, st):
                changed.append(path)
    return changed


def secure_data_dir(root: Path, entries: Iterable[str], *, keep: Iterable[Path] = ()) -> list[Path]:
    """The data directory ``root`` made 0700 (created if missing) and, below it, only ``entries``
    (kubeshore's own files and directories, each with everything under it) tightened: a directory
    given by mistake (a home directory) keeps everything else as it was."""
    private_dir(root)
    kept = list(keep)
    changed: list[Path] = []
    for name in entries:
        changed += secure_tree(root / name, keep=kept)
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
    try:
        os.chmod(path, mode & want)
    except OSError as exc:
        # A read-only file system, say: the secret stays open, so nothing starts on it.
        raise FileModeError(
            f"{path} is open to other users (mode {mode:o}) and cannot be narrowed: {exc.strerror}"
        ) from exc
    log.warning("%s was open to other users (mode %o); now %o", path, mode, mode & want)
    return True
