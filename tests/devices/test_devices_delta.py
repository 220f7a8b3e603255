"""The delta document: published while desired and reported differ, by value rather than by text."""

from __future__ import annotations

import pytest

from edgecore.devicetwin._formats import twin_delta
from edgecore.devicetwin._state import Device, Twin


def _device(twin: Twin) -> Device:
    device = Device(id="default/thermo", namespace="default", name="thermo", body={})
    device.twins[twin.name] = twin
    return device


@pytest.mark.parametrize(
    ("attr_type", "desired", "reported", "in_sync"),
    [
        ("float", "19", "19.0", True),
        ("double", "1e3", "1000", True),
        ("int", "7", "7", True),
        ("int", "7", "8", False),
        ("float", "19", "not-a-number", False),
        ("boolean", "true", "True", True),
        ("string", "19", "19.0", False),
        ("float", "19", None, False),
    ],
)
def test_delta_compares_values_by_type(
    attr_type: str, desired: str, reported: str | None, in_sync: bool
) -> None:
    twin = Twin(name="temp", attr_type=attr_type, expected=desired, actual=reported)
    delta = twin_delta(_device(twin))
    assert (delta is None) is in_sync
    if delta is not None:
        assert delta["delta"] == {"temp": desired}
