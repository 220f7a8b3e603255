"""Every generator of the repository, in the order ``python -m codegen`` runs them."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import cast

from codegen._files import REPO_ROOT, Files, GenerationError, stale

# By name, not imported: codegen sits below the packages whose generators use it. kubeapi.generate
# reads the descriptors of k8sproto's generated modules, so k8sproto's come first.
GENERATORS = ("crds.generate", "dmi.generate", "cri.generate", "k8sproto.generate", "kubeapi.generate")


def generator(name: str) -> tuple[Callable[[], Files], tuple[str, ...]]:
    """A generator module's ``render`` (its defaults) and ``OWNED`` globs (for orphans)."""
    module = importlib.import_module(name)
    return cast(Callable[[], Files], module.render), tuple(getattr(module, "OWNED", ()))


def check_all(
    names: Iterable[str] = GENERATORS, root: Path = REPO_ROOT
) -> dict[str, list[str] | GenerationError]:
    """Each generator's stale files (``[]`` when fresh), or the error that kept it from rendering."""
    results: dict[str, list[str] | GenerationError] = {}
    for name in names:
        render, owned = generator(name)
        try:
            results[name] = stale(render(), root, owned)
        except GenerationError as exc:
            results[name] = exc
    return results
