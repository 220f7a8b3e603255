"""Running the real `kubectl` against the platform's kubeconfig (the same thing a user types)."""

from __future__ import annotations

import asyncio
import json
import shutil
from dataclasses import dataclass
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
            out, err = await asyncio.wait_for(proc.communicate(stdin), within)
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

    async def node_ready(self, name: str) -> bool:
        out = await self.run(
            "get", "node", name, "-o", 'jsonpath={.status.conditions[?(@.type=="Ready")].status}', within=10
        )
        return out.strip() == "True"

    async def api_ready(self) -> bool:
        if not self.kubeconfig.exists():
            return False
        return (await self.run("get", "--raw", "/readyz", within=5)).strip() == "ok"
