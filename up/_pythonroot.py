"""A root filesystem that runs kubeshore's mappers: this machine's Python (interpreter, standard library
and the shared libraries they load, found with ``ldd``) and kubeshore with the ``[mapper]`` extra's
dependencies, copied from the environment kubeshore runs in. Nothing is downloaded: machines here are
offline, and the image then runs exactly the code installed here.

Layout: the interpreter keeps its own absolute paths (its prefix is found from where the binary is,
and ``libpython`` through the binary's run path), ``/usr/bin/python3`` links to it; the packages live
in ``SITE`` (on ``PYTHONPATH``) and ``/usr/local/bin/kubeshore`` is the console script.
"""

from __future__ import annotations

import hashlib
import importlib.metadata as metadata
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Iterator
from pathlib import Path

SITE = "/opt/kubeshore/lib"
ENV = (
    "PATH=/usr/local/bin:/usr/bin:/bin",
    f"PYTHONPATH={SITE}",
    "PYTHONUNBUFFERED=1",
    "PYTHONDONTWRITEBYTECODE=1",
)
# kubeshore's own packages a mapper may import (docs/development.md: dmi, crds, kubeshore); the
# cloud and edge packages of the same distribution stay out.
PACKAGES = ("kubeshore", "crds", "dmi", "mappers")
EXTRA = "mapper"
# Parts of the standard library no mapper runs: its tests, GUIs, build files, the installer of pip.
_STDLIB_SKIP = {
    "test", "idlelib", "tkinter", "turtledemo", "ensurepip", "lib2to3", "distutils", "pydoc_data",
    "site-packages", "dist-packages", "__phello__", "turtle.py",
}  # fmt: skip
_IGNORE = shutil.ignore_patterns(
    "*.opt-1.pyc", "*.opt-2.pyc", "test", "tests", "*.pyi", "*.a", "_tkinter*", "_test*"
)
_EXTRA_MARKER = re.compile(r"""extra\s*==\s*['"]([^'"]+)['"]""")
_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[([^\]]*)\])?")


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def closure(root: str = "kubeshore", extras: tuple[str, ...] = (EXTRA,)) -> list[metadata.Distribution]:
    """The installed distributions ``root[extras]`` needs, ``root`` excluded. A requirement under an
    ``extra ==`` marker counts only for the extras asked for; other markers are not evaluated: a
    distribution installed here whose marker is false is carried along (harmless, and rare)."""
    found: dict[str, metadata.Distribution] = {}
    todo: list[tuple[str, tuple[str, ...]]] = [(root, extras)]
    seen: set[tuple[str, tuple[str, ...]]] = set()
    while todo:
        name, want = todo.pop()
        if (_normal(name), want) in seen:
            continue
        seen.add((_normal(name), want))
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue  # a marker that is false here (another platform or Python)
        if _normal(name) != _normal(root):
            found[_normal(name)] = dist
        for req in dist.requires or []:
            spec, _, marker = req.partition(";")
            extra = _EXTRA_MARKER.search(marker)
            if extra and extra.group(1) not in want:
                continue
            m = _NAME.match(spec)
            if m:
                sub = tuple(sorted(e.strip() for e in (m.group(2) or "").split(",") if e.strip()))
                todo.append((m.group(1), sub))
    return sorted(found.values(), key=lambda d: _normal(d.metadata["Name"]))


def _own_packages() -> Iterator[Path]:
    import kubeshore

    src = Path(kubeshore.__file__).resolve().parents[1]
    for name in PACKAGES:
        yield src / name


def _stdlib() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def _interpreter() -> Path:
    return Path(sys.executable).resolve()


def digest() -> str:
    """Changes whenever what goes into the root filesystem changes: this module, the interpreter, a
    distribution's version, or any file of kubeshore's packages."""
    h = hashlib.sha256(Path(__file__).read_bytes())  # and how it is filled
    exe = _interpreter()
    h.update(f"{exe}:{exe.stat().st_size}:{exe.stat().st_mtime_ns}\n".encode())
    for dist in closure():
        h.update(f"{dist.metadata['Name']}=={dist.version}\n".encode())
    for pkg in _own_packages():
        for f in sorted(pkg.rglob("*")):
            if f.is_file() and "__pycache__" not in f.parts:
                st = f.stat()
                h.update(f"{f.relative_to(pkg.parent)}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def _put(root: Path, path: Path) -> None:
    """``path`` at the same absolute path under ``root`` (symlinks followed: the file itself)."""
    dest = root / path.relative_to("/")
    if not dest.exists():
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, dest)


def _shared_libraries(objects: list[Path]) -> set[Path]:
    """What the dynamic loader loads for ``objects`` (``ldd``), the loader itself included."""
    out: set[Path] = set()
    for chunk in range(0, len(objects), 200):
        done = subprocess.run(
            ["ldd", *map(str, objects[chunk : chunk + 200])], capture_output=True, text=True, timeout=120
        )
        for line in done.stdout.splitlines():
            line = line.strip()
            if line.endswith(":"):
                continue  # the name of the next object, when ldd is given several
            target = line.split("=>", 1)[1] if "=>" in line else line
            word = target.strip().split(" ", 1)[0]
            if word.startswith("/"):
                out.add(Path(word))
    return out


def _strip(prefix: Path) -> None:
    """The interpreter's own binaries without their debugging symbols (pyenv builds keep them: 23 MB of
    ``libpython`` become 6), when binutils' ``strip`` is here; the code is the same."""
    strip = shutil.which("strip")
    if strip is None:
        return
    binaries = [
        p
        for p in prefix.rglob("*")
        if p.is_file() and not p.is_symlink() and (".so" in p.suffixes or p.parent.name == "bin")
    ]
    subprocess.run([strip, "--strip-unneeded", *map(str, binaries)], capture_output=True, timeout=300)


def fill(root: Path) -> None:
    """Copy the interpreter, its standard library, kubeshore's mapper packages, the ``[mapper]``
    dependencies and every shared library they load into ``root``."""
    exe = _interpreter()
    _put(root, exe)
    (root / "usr" / "bin").mkdir(parents=True, exist_ok=True)
    (root / "usr" / "bin" / "python3").symlink_to(exe)
    stdlib = _stdlib()
    dest = root / stdlib.relative_to("/")
    dest.mkdir(parents=True, exist_ok=True)
    for entry in stdlib.iterdir():
        if entry.name in _STDLIB_SKIP or entry.name.startswith("config-"):
            continue
        if entry.is_dir():
            shutil.copytree(entry, dest / entry.name, ignore=_IGNORE, symlinks=True)
        else:
            shutil.copy2(entry, dest / entry.name)
    site = root / SITE.lstrip("/")
    site.mkdir(parents=True)
    for pkg in _own_packages():
        shutil.copytree(pkg, site / pkg.name, ignore=shutil.ignore_patterns("__pycache__", "*.pyi"))
    for dist in closure():
        base = Path(str(dist.locate_file("")))
        for rel in dist.files or []:
            src = base / rel
            # Files a RECORD names outside site-packages (console scripts) are not needed.
            if rel.parts[0] == ".." or not src.is_file() or any(p in ("tests", "test") for p in rel.parts):
                continue
            if rel.suffix == ".pyc" and (".opt-1." in rel.name or ".opt-2." in rel.name):
                continue
            target = site / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, target)
    # Sources only for kubeshore's packages (mtimes kept): compiled here once, not in every container.
    subprocess.run(
        [str(exe), "-m", "compileall", "-q", "-j", "0", *(str(site / p) for p in PACKAGES)],
        check=True, capture_output=True, timeout=600,
    )  # fmt: skip
    objects = [exe, *dest.rglob("*.so"), *site.rglob("*.so"), *site.rglob("*.so.*")]
    own = {str(Path(str(d.locate_file(""))).resolve()) for d in closure()} | {str(root.resolve())}
    for lib in _shared_libraries(objects):
        # Libraries a wheel carries (``<pkg>.libs``) came with it; found through $ORIGIN there.
        if not any(str(lib.resolve()).startswith(o + os.sep) for o in own):
            _put(root, lib)
    _strip(root / Path(sys.base_prefix).relative_to("/"))
    script = root / "usr" / "local" / "bin" / "kubeshore"
    script.parent.mkdir(parents=True, exist_ok=True)
    script.write_text("#!/usr/bin/python3\nimport sys\nfrom kubeshore.cli import main\nsys.exit(main())\n")
    script.chmod(0o755)
    etc = root / "etc"
    etc.mkdir(exist_ok=True)
    (etc / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n")
    (etc / "group").write_text("root:x:0:\nnogroup:x:65534:\n")
