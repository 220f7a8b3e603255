"""A simulated device for the quickstart, tests and benchmarks.

Protocol ``virtual``. Each property's visitor ``configData`` picks a signal with ``generator`` (or
``kind``):

- ``constant`` / ``writable`` (default): ``initial`` (or ``value``), writable.
- ``random-walk``: from ``initial`` by at most ``step`` per read, within ``[min, max]``.
- ``sine``: between ``min`` and ``max`` (or ``offset`` ± ``amplitude``), period ``periodSeconds``
  (or ``periodMs``).
- ``counter``: ``initial`` plus one per read.

Writing any property sets its current value (for ``sine`` the centre of the wave). The device's
protocol ``configData`` can simulate trouble: ``latencyMs`` (every call sleeps), ``offline: true``
(open fails), ``failReads: true`` (reads raise); ``seed`` makes random walks repeatable.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Mapping
from typing import Any, ClassVar

from mappers.sdk import DeviceUnavailable, Driver

_GENERATORS = {
    "constant": "constant",
    "writable": "constant",
    "random-walk": "random",
    "randomwalk": "random",
    "random": "random",
    "sine": "sine",
    "counter": "counter",
}


def _key(visitor: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((k, repr(v)) for k, v in visitor.items()))


def _num(visitor: Mapping[str, Any], *names: str, default: float) -> float:
    for name in names:
        if name in visitor:
            return float(visitor[name])
    return default


class VirtualDriver(Driver):
    protocol: ClassVar[str] = "virtual"

    async def open(self, protocol: Mapping[str, Any]) -> None:
        self._latency = float(protocol.get("latencyMs", 0)) / 1000
        self._fail_reads = bool(protocol.get("failReads", False))
        self._values: dict[tuple[tuple[str, str], ...], Any] = {}
        self._keys: dict[int, tuple[Mapping[str, Any], tuple[tuple[str, str], ...]]] = {}
        self._rng = random.Random(str(protocol.get("seed", self.device.id)))
        self._phase = self._rng.uniform(0, 2 * math.pi)
        if protocol.get("offline"):
            raise DeviceUnavailable("simulated device is offline")

    def _key(self, visitor: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
        # The SDK passes the same visitor object on every read; computing its key once matters at
        # thousands of reads per second.
        cached = self._keys.get(id(visitor))
        if cached is None or cached[0] is not visitor:
            cached = (visitor, _key(visitor))
            self._keys[id(visitor)] = cached
        return cached[1]

    async def read(self, visitor: Mapping[str, Any]) -> Any:
        if self._latency:
            await asyncio.sleep(self._latency)
        if self._fail_reads:
            raise ValueError("simulated read failure")
        name = str(visitor.get("generator", visitor.get("kind", "constant"))).lower()
        kind = _GENERATORS.get(name)
        if kind is None:
            raise ValueError(f"virtual generator {name!r} is not one of {', '.join(sorted(_GENERATORS))}")
        key = self._key(visitor)
        initial = visitor.get("initial", visitor.get("value", 0))
        if kind == "sine":
            if "min" in visitor or "max" in visitor:
                low, high = _num(visitor, "min", default=0), _num(visitor, "max", default=1)
                centre, amplitude = (low + high) / 2, (high - low) / 2
            else:
                centre, amplitude = _num(visitor, "offset", default=0), _num(visitor, "amplitude", default=1)
            centre = float(self._values.get(key, centre))
            period = (
                _num(visitor, "periodSeconds", default=0) or _num(visitor, "periodMs", default=10_000) / 1000
            )
            return centre + amplitude * math.sin(2 * math.pi * time.time() / period + self._phase)
        if kind == "random":
            low, high = _num(visitor, "min", default=0), _num(visitor, "max", default=100)
            start = visitor.get("initial", visitor.get("value", (low + high) / 2))
            current = float(self._values.get(key, start))
            step = _num(visitor, "step", default=1)
            current = min(high, max(low, current + self._rng.uniform(-step, step)))
            self._values[key] = current
            return current
        if kind == "counter":
            current = int(self._values.get(key, initial)) + 1
            self._values[key] = current
            return current
        return self._values.get(key, initial)

    async def write(self, visitor: Mapping[str, Any], value: Any) -> None:
        if self._latency:
            await asyncio.sleep(self._latency)
        self._values[self._key(visitor)] = value
