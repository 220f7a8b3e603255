"""kubeshore: edge device management, API- and wire-compatible with KubeEdge.

This package holds the `kubeshore` command and the few pieces that every process shares
(configuration loading, PKI, logging). It imports nothing heavy at import time.
"""

__version__ = "0.1.0"
