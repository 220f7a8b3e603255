"""A simulated device for the quickstart, tests and benchmarks.

Protocol ``virtual``. Each property's visitor ``configData`` picks a signal:

- ``kind: constant`` (default): ``value``, writable.
- ``kind: random``: a random walk from ``value`` by at most ``step`` per read within ``[min, max]``.
- ``kind: sine``: ``offset + amplitude * sin(2π t / period_ms)``.
- ``kind: counter``: ``value`` plus one per read.

Writing any property sets its current value (for ``sine`` its offset). The device's protocol
``configData`` can simulate trouble: ``latencyMs`` (every call sleeps), ``offline: true`` (open
fails), ``failReads: true`` (reads raise).
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Mapping
from typing import Any, ClassVar

from mappers.sdk import DeviceUnavailable, Driver


def _key(visitor: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((k, repr(v)) for k, v in visitor.items()))


class VirtualDriver(Driver):
    protocol: ClassVar[str] = "virtual"

    async def open(self, protocol: Mapping[str, Any]) -> None:
        self._latency = float(protocol.get("latencyMs", 0)) / 1000
        self._fail_reads = bool(protocol.get("failReads", False))
        self._values: dict[tuple[tuple[str, str], ...], Any] = {}
        self._rng = random.Random(str(protocol.get("seed", self.device.id)))
        if protocol.get("offline"):
            raise DeviceUnavailable("simulated device is offline")

    async def read(self, visitor: Mapping[str, Any]) -> Any:
        if self._latency:
            await asyncio.sleep(self._latency)
        if self._fail_reads:
            raise ValueError("simulated read failure")
        kind = str(visitor.get("kind", "constant"))
        key = _key(visitor)
        if kind == "sine":
            offset = float(self._values.get(key, visitor.get("offset", 0)))
            period = float(visitor.get("period_ms", visitor.get("periodMs", 10_000))) / 1000
            return offset + float(visitor.get("amplitude", 1)) * math.sin(2 * math.pi * time.time() / period)
        if kind == "random":
            low, high = float(visitor.get("min", 0)), float(visitor.get("max", 100))
            current = float(self._values.get(key, visitor.get("value", (low + high) / 2)))
            step = float(visitor.get("step", 1))
            current = min(high, max(low, current + self._rng.uniform(-step, step)))
            self._values[key] = current
            return current
        if kind == "counter":
            current = int(self._values.get(key, visitor.get("value", 0))) + 1
            self._values[key] = current
            return current
        return self._values.get(key, visitor.get("value", 0))

    async def write(self, visitor: Mapping[str, Any], value: Any) -> None:
        if self._latency:
            await asyncio.sleep(self._latency)
        self._values[_key(visitor)] = value
