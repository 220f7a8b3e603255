"""edged: the Pods of this node, run through CRI on the node's container runtime (containerd)."""

from edgecore.edged._edged import Edged

__all__ = ["Edged"]
