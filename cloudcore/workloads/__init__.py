"""Workload controllers for standalone mode, where no kube-controller-manager or kube-scheduler runs:
Deployment -> ReplicaSet -> Pods, a scheduler, and EndpointSlices from Services. On a real cluster
they are off (its own controllers do this). docs/pods.md, "Workload controllers (standalone only)", says
what they cover and what they don't.

Public surface: ``run_workload_controllers``.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any


async def run_workload_controllers(api_client: Any, stop: asyncio.Event) -> None:
    """Run the four controllers until ``stop`` is set. ``api_client`` may be a kubeconfig path."""
    from cloudcore.workloads._deployments import DeploymentController
    from cloudcore.workloads._endpointslices import EndpointSliceController
    from cloudcore.workloads._replicasets import ReplicaSetController
    from cloudcore.workloads._scheduler import Scheduler
    from kubeclient import Kube, load_api_client

    if isinstance(api_client, str | Path):
        api_client = load_api_client(str(api_client))
    kube = Kube(api_client)
    tasks = [
        asyncio.create_task(DeploymentController(kube).run(stop)),
        asyncio.create_task(ReplicaSetController(kube).run(stop)),
        asyncio.create_task(Scheduler(kube).run(stop)),
        asyncio.create_task(EndpointSliceController(kube).run(stop)),
    ]
    try:
        await stop.wait()
    finally:
        kube.close_streams()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        kube.close()


__all__ = ["run_workload_controllers"]
