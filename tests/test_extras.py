"""Each extra of pyproject.toml is enough for its process, and carries nothing that process does not run.

``kubeshore[edge]``, ``kubeshore[mapper]`` and ``kubeshore[cloud]`` are installed from the checkout's
wheel into clean venvs (in parallel, from pip's cache), then each side runs from its own venv as in the
field: ``cloudcore --standalone`` (cloud venv), ``kubeshore join`` + ``edgecore`` joining it (edge venv),
the virtual mapper registering with that edgecore (mapper venv). A module an extra lacks makes its
process exit, and the test fails with that process's log. The same steps measure install size and RSS
in ``python -m bench.install`` (docs/install.md).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from _peers import mosquitto

from bench.install import SIDES, build_wheel, distributions, install, run_sides, size_mb

pytestmark = pytest.mark.slow

# Cloud-only or test-only distributions an edge node or a mapper host must not install.
NOT_ON_THE_EDGE = {"kubernetes", "grpcio", "grpcio_reflection", "rich", "uvloop", "paho_mqtt"}
TEST_ONLY = {"grpcio", "grpcio_reflection", "paho_mqtt", "pytest", "h2"}


@pytest.fixture(scope="module")
def venvs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:

    tmp = tmp_path_factory.mktemp("extras")
    wheel = build_wheel(tmp / "wheel")
    paths = {side: tmp / f"venv-{side}" for side in SIDES}
    install({side: (path, side) for side, path in paths.items()}, wheel)
    yield paths


def test_each_extra_installs_only_what_its_side_runs(venvs: dict[str, Path]) -> None:
    installed = {side: set(distributions(path)) for side, path in venvs.items()}
    assert installed["edge"] & NOT_ON_THE_EDGE == set()
    assert installed["mapper"] & NOT_ON_THE_EDGE == set()
    assert installed["cloud"] & TEST_ONLY == set()
    assert "kubernetes" in installed["cloud"]
    assert {"pymodbus", "asyncua"} <= installed["mapper"]
    sizes = {side: size_mb(path) for side, path in venvs.items()}
    print(f"site-packages MB: {sizes}")


def test_each_side_runs_from_its_own_extra(venvs: dict[str, Path], tmp_path: Path) -> None:
    """cloudcore starts, edgecore joins it (node Ready), a mapper registers with that edgecore: each
    from the venv of its extra alone."""
    with mosquitto() as broker, run_sides(tmp_path, venvs, broker) as running:
        assert running.registered_mappers() == 1
        for name in ("cloudcore", "edgecore", "mapper"):
            assert running.procs.procs[name].poll() is None, running.procs.log(name)
