"""Standalone mode: run the embedded API server (cloudcore.apiserver) in this process."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path


@contextlib.asynccontextmanager
async def embedded_apiserver(data_dir: Path, bind: str, port: int) -> AsyncIterator[tuple[str, int]]:
    """Yields (kubeconfig path, port) of an embedded API server that writes DIR/admin.kubeconfig."""
    try:
        from cloudcore.apiserver import EmbeddedAPIServer  # type: ignore[import-not-found,unused-ignore]
    except ImportError as exc:
        raise RuntimeError("standalone mode needs the embedded API server (cloudcore.apiserver)") from exc
    async with EmbeddedAPIServer(data_dir, bind, port) as server:
        yield str(data_dir / "admin.kubeconfig"), int(server.port)
