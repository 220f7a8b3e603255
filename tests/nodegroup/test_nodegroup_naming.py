import hashlib

import pytest

from nodegroup._naming import group_target_name, label_set_suffix, label_target_name


def _kubeedge_suffix(labels: dict[str, str]) -> str:
    # The same computation written out the long way: sha256 over k1 v1 k2 v2 ... sorted by key.
    data = "".join(k + labels[k] for k in sorted(labels)).encode()
    return "ls-" + hashlib.sha256(data).hexdigest()[:8]


@pytest.mark.parametrize(
    "labels",
    [{"zone": "edge"}, {"tier": "backend", "environment": "production"}, {"a": ""}],
)
def test_label_set_suffix_matches_kubeedge(labels: dict[str, str]) -> None:
    assert label_set_suffix(labels) == _kubeedge_suffix(labels)
    assert len(label_set_suffix(labels)) == len("ls-") + 8


def test_label_set_suffix_ignores_key_order() -> None:
    assert label_set_suffix({"a": "1", "b": "2"}) == label_set_suffix({"b": "2", "a": "1"})


def test_names() -> None:
    assert group_target_name("nginx", "hangzhou") == "nginx-hangzhou"
    assert label_target_name("nginx", {"zone": "edge"}).startswith("nginx-ls-")
