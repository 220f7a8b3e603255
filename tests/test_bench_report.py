import json
import subprocess
import sys
from pathlib import Path

from bench.report import render


def test_renders_targets_and_run_tables(tmp_path: Path) -> None:
    (tmp_path / "apiserver.json").write_text(
        json.dumps(
            {
                "title": "Embedded API server",
                "creates_per_s": 1834.2,
                "watch": {"p50_ms": 2.1, "p99_ms": 9.87},
                "rss_mb": 312,
                "targets": {"creates_per_s": ">= 1500", "watch.p99_ms": "< 50"},
                "runs": [{"clients": 8, "creates_per_s": 1834.2}, {"clients": 1, "creates_per_s": 700}],
            }
        )
    )
    (tmp_path / "mapper.json").write_text(json.dumps({"cpu_cores": 0.21}))
    md = render(tmp_path)
    assert "## Embedded API server" in md
    assert "| creates_per_s | 1,834 | >= 1500 |" in md
    assert "| watch.p99_ms | 9.87 | < 50 |" in md
    assert "| clients | creates_per_s |" in md and "| 8 | 1,834 |" in md
    assert "## mapper" in md and "`python -m bench.mapper`" in md


def test_command_writes_the_page(tmp_path: Path) -> None:
    out = tmp_path / "performance.md"
    subprocess.run(
        [sys.executable, "-m", "bench.report", "--results", str(tmp_path), "--output", str(out)], check=True
    )
    assert "No benchmark has been run yet." in out.read_text()
