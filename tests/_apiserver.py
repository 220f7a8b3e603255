"""The one API test double: the embedded API server itself (cloudcore.apiserver), run in this process
on an event loop and thread of its own, with a real ``kubeclient.Kube`` pointed at it.

Its own thread, because ``Kube`` is blocking (the kubernetes client) and tests call it from coroutines
on the test's loop: a server on that same loop could never answer them. Everything a test sees is what
a real client of the embedded server sees: resourceVersions, watches, admission, 404/409s.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from cloudcore._app import install_crds
from cloudcore.apiserver import EmbeddedAPIServer
from kubeclient import ApiError, Kube, Obj, Resource


class EmbeddedKube(Kube):
    """A client of the embedded API server; :meth:`put` creates or merge-patches an object, as a test
    arranging state wants."""

    kubeconfig: Path  # the server's admin kubeconfig, for kubectl
    requests = 0  # every request made through this client, so a test can bound a component's traffic

    def request(self, method: str, path: str, **options: Any) -> Any:
        self.requests += 1
        return super().request(method, path, **options)

    def put(self, res: Resource, obj: Obj) -> Obj:
        md = obj["metadata"]
        try:
            return self.create(res, obj, md.get("namespace"))
        except ApiError as exc:
            if exc.status != 409:
                raise
        return self.patch(res, md["name"], obj, md.get("namespace"))


@contextlib.contextmanager
def embedded_kube(data_dir: Path | None = None, *, crds: bool = True) -> Iterator[EmbeddedKube]:
    """An embedded API server on 127.0.0.1 (any free port), storing under ``data_dir`` (default: a
    temporary directory), serving KubeEdge's CRDs as standalone cloudcore's does (unless not ``crds``), and a
    client of it; both stop when the block ends."""
    with contextlib.ExitStack() as stack:
        if data_dir is None:
            data_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="apiserver-")))
        loop = asyncio.new_event_loop()
        started: Future[EmbeddedAPIServer] = Future()
        stop = asyncio.Event()

        async def serve() -> None:
            try:
                async with EmbeddedAPIServer(data_dir, "127.0.0.1", 0) as server:
                    started.set_result(server)
                    await stop.wait()
            except BaseException as exc:
                if not started.done():
                    started.set_exception(exc)
                raise

        thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
        thread.start()
        try:
            server = started.result(timeout=60)
            kube = EmbeddedKube.from_kubeconfig(str(server.kubeconfig))
            assert isinstance(kube, EmbeddedKube)
            kube.kubeconfig = server.kubeconfig
            if crds:
                install_crds(kube)
            try:
                yield kube
            finally:
                kube.close()
        finally:
            loop.call_soon_threadsafe(stop.set)
            thread.join(30)
            loop.close()
