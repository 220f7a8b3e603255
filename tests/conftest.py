"""Fixtures every test gets."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def _restore_umask() -> Iterator[None]:
    # The processes' entry points (cloudcore, edgecore, kubeshore main) set a private umask for their
    # whole process; run in-process by a test, that would leak into every later test's files.
    old = os.umask(0o022)
    os.umask(old)
    yield
    os.umask(old)
