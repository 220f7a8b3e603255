"""kubeclient against a scripted API server on loopback, through the real ``kubernetes`` client:
typed errors, patch content types, list+watch with bookmarks, relist after 410 Gone, shutdown."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from kubeclient import CONFIGMAPS, JSON_PATCH, ApiError, Informer, Kube, Obj

PATH = "/api/v1/namespaces/ns/configmaps"


def cm(name: str, rv: int, **data: str) -> Obj:
    return {"metadata": {"name": name, "namespace": "ns", "resourceVersion": str(rv)}, "data": data}


@dataclass
class Scripted:
    """Serves the lists in ``lists`` and, per watch, the next script of events (then holds open)."""

    lists: list[tuple[list[Obj], int]] = field(default_factory=list)
    watches: list[list[dict[str, Any]]] = field(default_factory=list)
    seen: list[tuple[str, str, dict[str, str], str]] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.text()
        self.seen.append((request.method, request.path, dict(request.query), body))
        ctype = request.headers.get("Content-Type", "")
        if request.path.endswith("/missing"):
            status = {
                "kind": "Status",
                "code": 404,
                "reason": "NotFound",
                "message": 'configmaps "missing" not found',
            }
            return web.json_response(status, status=404)
        if request.method == "PATCH":
            return web.json_response({"echo": json.loads(body), "contentType": ctype})
        if request.query.get("watch") != "true":
            items, rv = self.lists.pop(0)
            return web.json_response({"items": items, "metadata": {"resourceVersion": str(rv)}})
        response = web.StreamResponse()
        await response.prepare(request)
        for event in self.watches.pop(0) if self.watches else []:
            await response.write(json.dumps(event).encode() + b"\n")
        await self.release.wait()
        return response


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[tuple[Scripted, Path]]:
    scripted = Scripted()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", scripted.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": f"http://127.0.0.1:{port}"}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        )
    )
    yield scripted, kubeconfig
    scripted.release.set()
    await runner.cleanup()


async def test_errors_are_typed_and_patches_say_their_kind(server: tuple[Scripted, Path]) -> None:
    scripted, kubeconfig = server
    kube = Kube.from_kubeconfig(str(kubeconfig))
    try:
        assert await kube.run(kube.get, CONFIGMAPS, "missing", "ns") is None
        assert await kube.aget_or_none(f"{PATH}/missing") is None
        with pytest.raises(ApiError) as info:
            await kube.aget(f"{PATH}/missing")
        assert (info.value.status, info.value.reason) == (404, "NotFound")
        assert "not found" in info.value.message
        assert await kube.adelete(f"{PATH}/missing") is False

        merged = await kube.apatch(f"{PATH}/a", {"data": {"k": "v"}})
        assert merged["contentType"] == "application/merge-patch+json"
        ops = [{"op": "add", "path": "/data/k", "value": "v"}]
        patched = await kube.run(kube.patch, CONFIGMAPS, "a", ops, "ns", content_type=JSON_PATCH)
        assert (patched["echo"], patched["contentType"]) == (ops, JSON_PATCH)
        assert scripted.seen[-1][1] == f"{PATH}/a"
    finally:
        kube.close()


async def test_informer_follows_bookmarks_and_relists_after_410(server: tuple[Scripted, Path]) -> None:
    scripted, kubeconfig = server
    scripted.lists = [([cm("a", 3), cm("b", 4)], 5), ([cm("a", 8, k="2"), cm("c", 9)], 10)]
    scripted.watches = [
        [
            {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "7"}}},
            {"type": "MODIFIED", "object": cm("a", 8, k="2")},
            {
                "type": "ERROR",
                "object": {"kind": "Status", "code": 410, "reason": "Expired", "message": "too old"},
            },
        ],
    ]
    events: list[tuple[str, str, str | None]] = []
    done = asyncio.Event()

    async def handler(kind: str, obj: Obj, old: Obj | None) -> None:
        events.append((kind, obj["metadata"]["name"], old["metadata"]["resourceVersion"] if old else None))
        if obj["metadata"]["name"] == "c":
            done.set()

    kube = Kube.from_kubeconfig(str(kubeconfig))
    informer = Informer(kube, CONFIGMAPS, handler, label_selector="app=x")
    try:
        await informer.start()
        await asyncio.wait_for(informer.wait_synced(), 10)
        await asyncio.wait_for(done.wait(), 10)
        assert events == [
            ("ADDED", "a", None),
            ("ADDED", "b", None),
            ("MODIFIED", "a", "3"),
            # The relist after 410 brings what the watch missed: b went, c came, a is unchanged.
            ("DELETED", "b", "4"),
            ("ADDED", "c", None),
        ]
        assert sorted(informer.cache) == [("ns", "a"), ("ns", "c")]
        assert informer.get("a", "ns") == cm("a", 8, k="2") | {"apiVersion": "v1", "kind": "ConfigMap"}
        watches = [q for method, _, q, _ in scripted.seen if q.get("watch") == "true"]
        assert watches[0]["resourceVersion"] == "5" and watches[0]["allowWatchBookmarks"] == "true"
        assert all(q.get("labelSelector") == "app=x" for _, _, q, _ in scripted.seen)
        # The second watch resumes from the relist, not from the expired version.
        for _ in range(100):
            watches = [q for _, _, q, _ in scripted.seen if q.get("watch") == "true"]
            if len(watches) == 2:
                break
            await asyncio.sleep(0.05)
        assert watches[1]["resourceVersion"] == "10"
    finally:
        await informer.stop()
        kube.close()


async def test_close_streams_ends_a_blocked_watch_at_once(server: tuple[Scripted, Path]) -> None:
    scripted, kubeconfig = server
    scripted.watches = [[{"type": "ADDED", "object": cm("a", 2)}]]
    kube = Kube.from_kubeconfig(str(kubeconfig))
    got: list[str] = []
    ended = threading.Event()

    def read() -> None:
        for kind, _ in kube.watch(CONFIGMAPS, "1", timeout_seconds=60):
            got.append(kind)
        ended.set()

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    try:
        for _ in range(100):
            if got:
                break
            await asyncio.sleep(0.05)
        assert got == ["ADDED"]
        kube.close_streams()
        assert await asyncio.to_thread(ended.wait, 5)
        # Closed means closed: a new watch ends at once without asking the server.
        assert list(kube.watch(CONFIGMAPS, "1")) == []
    finally:
        kube.close()
