"""The SQLite store on its own: a failed commit leaves memory as it was and is answered with 500."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cloudcore.apiserver._store import SQLiteStore
from kubeapi import APIError, ObjectService, Registry
from kubeapi.builtins import builtin_types


async def test_failed_commit_is_undone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    registry = Registry()
    registry.add(*builtin_types())
    store = SQLiteStore(tmp_path / "db.sqlite", registry)
    await store.open()
    try:
        service = ObjectService(store, registry)
        ns = registry.get("", "v1", "namespaces")
        cm = registry.get("", "v1", "configmaps")
        assert ns is not None and cm is not None
        await service.create(ns, "", {"metadata": {"name": "default"}})
        kept = await service.create(cm, "default", {"metadata": {"name": "kept"}, "data": {"v": "1"}})

        def broken(*_: Any) -> None:
            raise OSError("disk full")

        monkeypatch.setattr(store, "_write_batch", broken)
        with pytest.raises(APIError) as exc:
            await service.create(cm, "default", {"metadata": {"name": "lost"}})
        assert exc.value.code == 500 and "disk full" in exc.value.message
        assert await store.get(cm, "default", "lost") is None
        with pytest.raises(APIError):
            await service.patch(cm, "default", "kept", "application/merge-patch+json", {"data": {"v": "2"}})
        with pytest.raises(APIError):
            await service.delete(cm, "default", "kept")
        current = await store.get(cm, "default", "kept")
        assert current is not None and current.raw == kept.raw
        monkeypatch.undo()
        await service.patch(cm, "default", "kept", "application/merge-patch+json", {"data": {"v": "3"}})
    finally:
        await store.close()
    reopened = SQLiteStore(tmp_path / "db.sqlite", registry)
    await reopened.open()
    try:
        cm = registry.get("", "v1", "configmaps")
        assert cm is not None
        stored = await reopened.get(cm, "default", "kept")
        assert stored is not None and stored.object()["data"] == {"v": "3"}
        assert await reopened.get(cm, "default", "lost") is None
    finally:
        await reopened.close()
