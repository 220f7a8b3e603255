"""The embedded, SQLite-backed Kubernetes-compatible API server (see docs/apiserver.md)."""

from cloudcore.apiserver._command import APIServerConfig, main
from cloudcore.apiserver._server import EmbeddedAPIServer

__all__ = ["APIServerConfig", "EmbeddedAPIServer", "main"]
