import pytest

from kubeshore.mergepatch import create as create_merge_patch


@pytest.mark.parametrize(
    ("old", "new", "patch"),
    [
        ({"a": 1}, {"a": 1}, {}),
        ({"a": 1}, {"a": 2}, {"a": 2}),
        ({"a": 1, "b": 2}, {"a": 1}, {"b": None}),
        ({"a": {"x": 1, "y": 2}}, {"a": {"x": 1}}, {"a": {"y": None}}),
        ({"l": [1, 2]}, {"l": [2]}, {"l": [2]}),
        ({}, {"n": {"m": 1}}, {"n": {"m": 1}}),
    ],
)
def test_create_merge_patch(old: dict[str, object], new: dict[str, object], patch: dict[str, object]) -> None:
    assert create_merge_patch(old, new) == patch
