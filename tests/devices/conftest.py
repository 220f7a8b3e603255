from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# The channel tests' helpers (in-memory API server, join) are reused here.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _peers import mosquitto


@pytest.fixture
def broker_url() -> Iterator[str]:
    with mosquitto() as url:
        yield url
