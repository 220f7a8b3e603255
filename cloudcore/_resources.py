"""KubeEdge resources cloudcore reads and writes itself (the devices ones live with their controller)."""

from __future__ import annotations

from kubeclient import Resource

OBJECTSYNCS = Resource("reliablesyncs.kubeedge.io", "v1alpha1", "objectsyncs", "ObjectSync", True)
CLUSTEROBJECTSYNCS = Resource(
    "reliablesyncs.kubeedge.io", "v1alpha1", "clusterobjectsyncs", "ClusterObjectSync", False
)
