import subprocess
import sys


def test_kubeshore_help_lists_commands() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "kubeshore.cli", "--help"], capture_output=True, text=True, check=True
    )
    assert "usage: kubeshore" in out.stdout


def test_unknown_command_is_an_error() -> None:
    out = subprocess.run([sys.executable, "-m", "kubeshore.cli", "nonsense"], capture_output=True, text=True)
    assert out.returncode == 2
    assert "unknown command 'nonsense'" in out.stderr
