"""cloudcore's own HTTPS endpoints (certificates, the Device webhook): an aiohttp app on one address."""

from __future__ import annotations

import ssl

from aiohttp import web


async def serve(
    app: web.Application,
    bind: str,
    port: int,
    ssl_context: ssl.SSLContext | None,
    *,
    keepalive_timeout: float = 75.0,
) -> tuple[web.AppRunner, int]:
    """Start ``app`` on ``bind:port`` (0: a free port); its runner (to clean up) and the port it got.
    ``keepalive_timeout``: seconds an idle connection is kept (aiohttp's default 75)."""
    app_runner = web.AppRunner(app, access_log=None, keepalive_timeout=keepalive_timeout)
    await app_runner.setup()
    site = web.TCPSite(app_runner, bind, port, ssl_context=ssl_context)
    await site.start()
    server = site._server
    assert server is not None
    return app_runner, server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
