"""kubeshore.logs.Throttled: one line per key and interval, the next one counting what was left out."""

from __future__ import annotations

import logging

import pytest

from kubeshore.logs import Throttled


def test_repeats_are_counted_not_logged(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [100.0]
    monkeypatch.setattr("kubeshore.logs.time.monotonic", lambda: now[0])
    t = Throttled(logging.getLogger("throttled-test"), interval=60)
    with caplog.at_level(logging.WARNING, "throttled-test"):
        assert t.warning("a", "bad input %d", 1)
        for i in range(1000):
            assert not t.warning("a", "bad input %d", i)
        assert t.warning("b", "other input")  # another key has its own budget
        now[0] += 61
        assert t.warning("a", "bad input %d", 2)
    records = [(r.getMessage(), getattr(r, "suppressed", 0)) for r in caplog.records]
    assert records == [("bad input 1", 0), ("other input", 0), ("bad input 2", 1000)]


def test_keys_are_bounded() -> None:
    t = Throttled(logging.getLogger("throttled-test"), max_keys=10)
    for i in range(1000):
        t.warning(f"k{i}", "line")
    assert len(t._last) <= 10
