"""Test-only: with ``KUBESHORE_API_TRACE=FILE`` in the environment, every request the official kubernetes
client sends is appended to FILE as one JSON line (method, path, query, HTTP status), so a test can
compare what a process did with what its RBAC grants. On ``PYTHONPATH`` of traced processes only."""

from __future__ import annotations

import json
import os
import threading
from typing import Any
from urllib.parse import parse_qs, urlsplit

_FILE = os.environ.get("KUBESHORE_API_TRACE")


def _install(path: str) -> None:
    from kubernetes.client import api_client
    from kubernetes.client.exceptions import ApiException

    lock = threading.Lock()
    original = api_client.ApiClient.call_api

    def record(method: str, url: str, status: int) -> None:
        parts = urlsplit(url)
        line = {"method": method, "path": parts.path, "query": parse_qs(parts.query), "status": status}
        with lock, open(path, "a") as f:
            f.write(json.dumps(line) + "\n")

    def call_api(self: Any, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        try:
            resp = original(self, method, url, *args, **kwargs)
        except ApiException as exc:
            record(method, url, exc.status or 0)
            raise
        record(method, url, resp.status)
        return resp

    api_client.ApiClient.call_api = call_api  # type: ignore[method-assign]


if _FILE:
    _install(_FILE)
