"""Every command takes --log-level/--log-format and logs JSON lines with --log-format json."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest

from kubeshore.logs import JsonFormatter


@pytest.fixture(autouse=True)
def _restore_root_logger() -> object:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield None
    for h in list(root.handlers):
        root.removeHandler(h)
    for h in handlers:
        root.addHandler(h)
    root.setLevel(level)


def test_edgecore_logs_json(tmp_path: Path) -> None:
    cfg = tmp_path / "edgecore.yaml"
    cfg.write_text("nodeName: bad name\n")
    # A config error is reported on stderr as a message; the logger itself is set up first.
    from edgecore.main import main

    assert main(["--config", str(cfg), "--log-format", "json", "--log-level", "DEBUG"]) == 2
    root = logging.getLogger()
    assert root.level == logging.DEBUG and isinstance(root.handlers[0].formatter, JsonFormatter)


def test_cloudcore_logs_json(tmp_path: Path) -> None:
    from cloudcore.main import main

    assert main(["--log-format", "json"]) == 2  # no kubeconfig: refused after logging is set up
    assert isinstance(logging.getLogger().handlers[0].formatter, JsonFormatter)


def test_nodegroup_controller_logs_json(tmp_path: Path) -> None:
    from nodegroup.app import cli

    assert (
        cli(["--kubeconfig", str(tmp_path / "missing"), "--log-format", "json", "--log-level", "warning"])
        == 2
    )
    root = logging.getLogger()
    assert root.level == logging.WARNING and isinstance(root.handlers[0].formatter, JsonFormatter)


def test_apiserver_log_flags(tmp_path: Path) -> None:
    argv = [sys.executable, "-m", "kubeshore.cli", "apiserver", "--data-dir", str(tmp_path), "--port", "0"]
    bad = subprocess.run([*argv, "--log-format", "xml"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "log format 'xml'" in bad.stderr
    bad = subprocess.run([*argv, "--log-level", "loud"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "log level 'loud'" in bad.stderr
