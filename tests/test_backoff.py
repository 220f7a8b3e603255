"""The one backoff helper: doubling pauses up to a ceiling, jitter within its bounds, reset after success."""

from __future__ import annotations

from kubeshore.backoff import Backoff, exponential


def test_exponential_doubles_up_to_the_ceiling() -> None:
    assert [exponential(n, 0.5, 4.0) for n in range(6)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]


def test_backoff_jitter_and_reset() -> None:
    b = Backoff(1.0, 8.0, jitter=(0.5, 1.0))
    pauses = [b.next() for _ in range(5)]
    for pause, nominal in zip(pauses, [1.0, 2.0, 4.0, 8.0, 8.0], strict=True):
        assert nominal * 0.5 <= pause <= nominal
    assert b.nominal == 8.0
    b.reset()
    assert b.nominal == 1.0
