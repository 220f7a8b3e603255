"""NodeGroup and EdgeApplication controllers, and the node-group endpoint filter cloudcore applies.

Public surface: ``run_controllers`` (in-process, used by ``cloudcore --standalone``), the
``nodegroup-controller`` command (``nodegroup.app:main``) and ``nodegroup.endpointfilter``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nodegroup.app import run_controllers

__all__ = ["run_controllers"]


def __getattr__(name: str) -> Any:
    # Lazy, so importing the endpoint filter does not load the kubernetes client.
    if name == "run_controllers":
        from nodegroup.app import run_controllers

        return run_controllers
    raise AttributeError(name)
