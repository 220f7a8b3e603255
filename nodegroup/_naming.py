"""Well-known keys KubeEdge users rely on, and the names of generated objects.

The values are KubeEdge's (``cloud/pkg/controllermanager/nodegroup``), so nodes, Services and
Deployments labelled by KubeEdge keep working when kubeshore takes over, and vice versa.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

BELONGING_TO_LABEL = "apps.kubeedge.io/belonging-to"
ZONE_LABEL = "topology.kubernetes.io/zone"
NODEGROUP_FINALIZER = "apps.kubeedge.io/nodegroup-controller"
SERVICE_TOPOLOGY_ANNOTATION = "apps.kubeedge.io/service-topology"
SERVICE_TOPOLOGY_RANGE_NODEGROUP = "range-nodegroup"
LAST_APPLIED_TEMPLATE_ANNOTATION = "apps.kubeedge.io/last-applied-template"
LAST_CONTAINED_RESOURCES_ANNOTATION = "apps.kubeedge.io/last-contained-resources"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"

# Kubernetes names are DNS subdomains: at most 253 characters.
MAX_NAME_LENGTH = 253


def label_set_suffix(match_labels: Mapping[str, str]) -> str:
    """``ls-`` + the first 4 bytes of sha256 over ``k1 v1 k2 v2 ...`` sorted by key, as KubeEdge names them.

    KubeEdge concatenates keys and values with no separator, so ``{"ab": "c"}`` and ``{"a": "bc"}``
    share a suffix; kubeshore keeps the same hash so that names match KubeEdge's exactly.
    """
    digest = hashlib.sha256()
    for key in sorted(match_labels):
        digest.update(key.encode())
        digest.update(match_labels[key].encode())
    return "ls-" + digest.digest()[:4].hex()


def group_target_name(name: str, group: str) -> str:
    return f"{name}-{group}"


def label_target_name(name: str, match_labels: Mapping[str, str]) -> str:
    return f"{name}-{label_set_suffix(match_labels)}"
