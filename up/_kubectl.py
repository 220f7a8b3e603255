"""Running the real `kubectl` against the platform's kubeconfig (the same thing a user types)."""

from __future__ import annotations

import asyncio
import json
import shutil
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any


class KubectlError(Exception):
    pass


@dataclass(frozen=True)
class Kubectl:
    kubeconfig: Path
    binary: str = "kubectl"

    @staticmethod
    def available(binary: str = "kubectl") -> bool:
        return shutil.which(binary) is not None

    async def run(self, *args: str, within: float = 30.0, stdin: bytes | None = None) -> str:
        proc = await asyncio.create_subprocess_exec(
            self.binary,
            "--kubeconfig",
            str(self.kubeconfig),
            *args,
            stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            async with asyncio.timeout(within):
                out, err = await proc.communicate(stdin)
        except (TimeoutError, asyncio.CancelledError):
            proc.kill()
            await proc.wait()
            raise
        if proc.returncode != 0:
            raise KubectlError(f"kubectl {' '.join(args)}: {err.decode(errors='replace').strip()}")
        return out.decode()

    async def get_items(self, resource: str, *args: str, within: float = 10.0) -> list[dict[str, Any]]:
        """``kubectl get RESOURCE -o json`` -> the list's items."""
        out = await self.run("get", resource, "-o", "json", *args, within=within)
        loaded = json.loads(out)
        items = loaded.get("items", []) if isinstance(loaded, dict) else []
        return [i for i in items if isinstance(i, dict)]

    async def node_ready(self, name: str, since: float | None = None) -> bool:
        """Ready=True, and (with ``since``, a wall-clock time) reported at or after ``since``: a Node
        keeps saying Ready for a grace period after its edgecore stopped, so a restarted edgecore is
        only known to be connected once cloudcore has written a newer heartbeat."""
        ready = '{.status.conditions[?(@.type=="Ready")]}'
        out = await self.run("get", "node", name, "-o", f"jsonpath={ready}", within=10)
        if not out.strip():
            return False
        condition = json.loads(out)
        if condition.get("status") != "True":
            return False
        if since is None:
            return True
        beat = condition.get("lastHeartbeatTime") or ""
        try:
            stamp = datetime.fromisoformat(beat.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return False
        # Heartbeat times have whole seconds.
        return stamp >= int(since)

    async def api_ready(self) -> bool:
        if not self.kubeconfig.exists():
            return False
        return (await self.run("get", "--raw", "/readyz", within=5)).strip() == "ok"
