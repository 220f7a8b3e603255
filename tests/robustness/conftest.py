"""The robustness lane: hostile or broken peers, kill -9 and full disks, against the real processes.

One stack (cloudcore, edge-1's edgecore, mosquitto, a DeviceModel and its devices) is shared by the
whole suite; each test states the bound it holds."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from _peers import mosquitto
from _stack import wait_for

from robustness._robust import CLOUD_CONFIG, METERS, MODEL, RobustStack, device, wait_devices

pytest.importorskip("cloudcore.apiserver", reason="standalone mode needs the embedded API server")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.robustness)


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RobustStack]:
    tmp = tmp_path_factory.mktemp("robust")
    with mosquitto() as broker:
        s = RobustStack(tmp, broker)
        try:
            s.start_cloudcore(**CLOUD_CONFIG)
            s.join_edge()
            s.start_edgecore()
            s.apply_objects(MODEL, *(device(n) for n in METERS))
            wait_for(lambda: s.scrape("edgecore", "/readyz")[0] == 200, 60, "edgecore ready")
            asyncio.run(wait_devices(s.dmi_socket(), METERS))
            yield s
        finally:
            s.stop_all()
