"""Measurements every benchmark takes the same way: percentiles, the time of a call, a process's RSS and
CPU time; and how every benchmark writes its results file."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

_CLK_TCK = os.sysconf("SC_CLK_TCK")


def percentile(samples: list[float], p: float) -> float:
    """Nearest-rank percentile (``p`` in 0..1; 1.0 is the maximum); NaN without samples."""
    if not samples:
        return float("nan")
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))]


def call_times_us(fn: Callable[[], object], rounds: int, warmup: int = 100) -> list[float]:
    """How long each of ``rounds`` calls of ``fn`` took, in µs, after ``warmup`` calls."""
    for _ in range(min(warmup, rounds)):
        fn()
    samples = []
    for _ in range(rounds):
        start = time.perf_counter_ns()
        fn()
        samples.append((time.perf_counter_ns() - start) / 1000)
    return samples


def time_calls(fn: Callable[[], object], rounds: int, warmup: int = 100) -> dict[str, float]:
    """Median and p99 of one call of ``fn`` in µs over ``rounds`` calls, after ``warmup`` calls."""
    samples = call_times_us(fn, rounds, warmup)
    return {
        "median_us": round(percentile(samples, 0.5), 2),
        "p99_us": round(percentile(samples, 0.99), 2),
        "rounds": rounds,
    }


def write_results(path: Path, result: Mapping[str, Any], *, show: bool = True) -> None:
    """Write ``bench/results/<name>.json`` (what docs/performance.md is rendered from); with ``show``,
    print it too."""
    text = json.dumps(result, indent=2)
    if show:
        print(text)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n")


def rss_mb(pid: int | str = "self") -> float:
    """Resident memory of a process in MB, to 0.1 MB; 0.0 once it is gone."""
    return _status_mb(pid, "VmRSS:")


def peak_rss_mb(pid: int | str = "self") -> float:
    """The highest resident memory a process has had (VmHWM), in MB; 0.0 once it is gone."""
    return _status_mb(pid, "VmHWM:")


def _status_mb(pid: int | str, field: str) -> float:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return 0.0
    for line in status.splitlines():
        if line.startswith(field):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def cpu_seconds(pid: int | str = "self") -> float:
    """User + system CPU time a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK
