"""Measurements every benchmark takes the same way: percentiles, and a process's RSS and CPU time."""

from __future__ import annotations

import os
from pathlib import Path

_CLK_TCK = os.sysconf("SC_CLK_TCK")


def percentile(samples: list[float], p: float) -> float:
    """Nearest-rank percentile (``p`` in 0..1; 1.0 is the maximum); NaN without samples."""
    if not samples:
        return float("nan")
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))]


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
