from __future__ import annotations

from collections.abc import Iterator

import pytest
from procs import mosquitto


@pytest.fixture
def broker_url() -> Iterator[str]:
    with mosquitto() as url:
        yield url
