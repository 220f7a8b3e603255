"""EdgeHub: the edge's connection to cloudcore (websocket, outbox, certificates)."""

from edgecore.edgehub._certificates import (
    Address,
    CertificateRequestError,
    fetch_ca,
    request_certificate,
    write_certificate,
)
from edgecore.edgehub._hub import PROJECT_ID, EdgeHub

__all__ = [
    "PROJECT_ID",
    "Address",
    "CertificateRequestError",
    "EdgeHub",
    "fetch_ca",
    "request_certificate",
    "write_certificate",
]
