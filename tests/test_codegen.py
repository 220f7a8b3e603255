"""Generated code: every generated file is fresh (``python -m codegen --check``, the one check of all five
generators), a stale, missing or orphaned file is named, and a run writes only what changed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import codegen

pytest.importorskip("grpc_tools", reason="grpcio-tools (dev extra) runs protoc")


def test_every_generated_file_is_fresh() -> None:
    results = codegen.check_all()
    assert set(results) == set(codegen.GENERATORS)
    stale = {name: files for name, files in results.items() if isinstance(files, list) and files}
    assert stale == {}, "run make generate (python -m codegen)"
    failed = {
        name: str(error)
        for name, error in results.items()
        if isinstance(error, codegen.GenerationError) and not isinstance(error, codegen.SourceMissing)
    }
    assert failed == {}
    missing = {name: str(e) for name, e in results.items() if isinstance(e, codegen.SourceMissing)}
    if missing:
        pytest.skip(f"sources not on this machine, not checked: {missing}")


def _codegen(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "codegen", *args],
        cwd=codegen.REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_check_names_stale_missing_and_orphaned_files_and_a_run_fixes_only_them(tmp_path: Path) -> None:
    """Against a copy of the generated tree: what the CLI reports, writes and removes."""
    for name in codegen.GENERATORS:
        render, owned = codegen.generator(name)
        try:
            codegen.write(render(), tmp_path, owned)
        except codegen.SourceMissing as exc:
            pytest.skip(str(exc))
    edited = tmp_path / "dmi/v1beta1/api_pb2.pyi"
    edited.write_text(edited.read_text() + "# edited by hand\n")
    (tmp_path / "kubeapi/_generated_inline_fields.py").unlink()
    orphan = tmp_path / "crds/widgets.example.io.yaml"
    orphan.write_text(codegen.header("crds.generate", "the models in crds/") + "{}\n")
    handwritten = tmp_path / "crds/notes.yaml"
    handwritten.write_text("kind: ConfigMap\n")
    untouched = tmp_path / "cri/v1/api_pb2.py"
    mtime = untouched.stat().st_mtime_ns

    checked = _codegen("--check", "--root", str(tmp_path))
    assert checked.returncode == 1, checked.stdout + checked.stderr
    stale_lines = sorted(line for line in checked.stdout.splitlines() if "stale" in line)
    assert stale_lines == [
        "crds.generate: stale generated files: crds/widgets.example.io.yaml; run python -m crds.generate",
        "dmi.generate: stale generated files: dmi/v1beta1/api_pb2.pyi; run python -m dmi.generate",
        "kubeapi.generate: stale generated files: kubeapi/_generated_inline_fields.py;"
        " run python -m kubeapi.generate",
    ]

    written = _codegen("--root", str(tmp_path))
    assert written.returncode == 0, written.stderr
    assert "crds.generate: 1 of 7 generated files changed" in written.stdout
    assert not orphan.exists() and handwritten.exists()
    assert untouched.stat().st_mtime_ns == mtime
    assert _codegen("--check", "--root", str(tmp_path)).returncode == 0


def test_a_missing_source_is_named(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    from kubeapi import generate

    assert generate.main(["--check", "--gnostic-root", str(tmp_path)]) == 2
    error = capsys.readouterr().err
    assert str(tmp_path / "openapiv2/OpenAPIv2.proto") in error and generate.GNOSTIC_PACKAGE in error


def test_generated_text_must_be_marked_and_relative(tmp_path: Path) -> None:
    with pytest.raises(codegen.GenerationError, match="header"):
        codegen.stale({Path("x.py"): "print()\n"}, tmp_path)
    with pytest.raises(codegen.GenerationError, match="relative"):
        codegen.stale({tmp_path / "x.py": codegen.header("x", "y")}, tmp_path)
    assert _codegen("no.such.generator").returncode == 2
