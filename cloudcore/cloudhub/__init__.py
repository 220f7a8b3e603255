"""CloudHub: the websocket server edge nodes connect to, and the HTTPS certificate server."""

from cloudcore.cloudhub._certserver import CertServer
from cloudcore.cloudhub._server import (
    CloudHub,
    CloudHubSettings,
    MessageValidator,
    NodeListener,
    UpstreamHandler,
    node_from_transport,
)
from cloudcore.cloudhub._session import NodeStats

__all__ = [
    "CertServer",
    "CloudHub",
    "CloudHubSettings",
    "MessageValidator",
    "NodeListener",
    "NodeStats",
    "UpstreamHandler",
    "node_from_transport",
]
