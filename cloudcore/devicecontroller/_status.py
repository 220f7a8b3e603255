"""Upstream: twin reports and device states from the edge -> the DeviceStatus object.

Reports are coalesced per device: whatever arrives during one flush interval becomes at most one
merge patch of that device's DeviceStatus, carrying the newest value of every property. Each device
is paced on its own (written when its last write is an interval old), not all devices at one tick:
a first report is written at once, and writes spread over the interval instead of arriving as one
burst whose last write waits for all the others. A value
is only ever replaced by one with a newer source timestamp, so a late or retried message never
makes status go backwards, and no value is lost: a write that fails stays pending and is retried
at the next flush. The edge gets its reply (which clears its retry state) once the values of its
message are written.

Only changes are written: a report that changes no value, state or condition (a value read again,
a state reported again with a newer lastOnlineTime) is answered at once and written with the next
change, or after ``refresh_interval`` when nothing changes, so timestamps stay honest without a
write per report. KubeEdge writes every report.

New values are written at most once per the device's report cycle (``cycle``: the shortest
``reportCycle`` of its properties, KubeEdge's 1 s where none is set), however often the mapper reads
them; a change of state or condition is written at the flush interval, taking the values waiting
with it, so ``offline`` or ``unknown`` never waits for a long cycle.

A write the API server refuses as it is (400, 413 too large, 422 invalid) is not retried for ever:
it is tried once more with only the properties the Device declares (junk twins from an edge are
left out), and if that is refused too the values are dropped, counted (``refused``), logged once per
device a minute and reported through ``on_refused`` (an Event on the Device); the edge's messages
are answered with the refusal so it stops resending them, and the device's next values are written.

Unlike KubeEdge the first report of a property already carries its value (KubeEdge's
``findOrCreateTwinByName`` pointer bug only appends the name), and state, lastOnlineTime and
twins of a device share one write.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from kubeshore.logs import Throttled

log = logging.getLogger(__name__)
_throttled = Throttled(log)

#: HTTP codes of a write the API server will refuse again as long as it is the same
REFUSED_CODES = frozenset({400, 413, 422})

Key = tuple[str, str]  # (namespace, name)
Patch = Callable[[str, str, dict[str, Any]], Awaitable[bool]]
"""``patch(namespace, name, merge_patch)``: True when written, False when the DeviceStatus is gone
(the Device was deleted: the values are dropped); raises on a transient failure (kept, retried)."""


def _ts(side: dict[str, Any] | None) -> int:
    if not side:
        return -1
    try:
        return int((side.get("metadata") or {}).get("timestamp") or 0)
    except (TypeError, ValueError):
        return 0


@dataclass
class _Pending:
    twins: dict[str, dict[str, Any]] = field(default_factory=dict)  # property -> {reported, observedDesired}
    state: str | None = None
    last_online: str | None = None
    conditions: list[dict[str, Any]] | None = None
    replies: list[Callable[[], None]] = field(default_factory=list)
    refusals: list[Callable[[str], None]] = field(default_factory=list)
    held: bool = False  # changes nothing but timestamps: waits for the refresh interval


class StatusWriter:
    def __init__(
        self,
        patch: Patch,
        current: Callable[[str, str], dict[str, Any] | None],
        *,
        flush_interval: float = 0.5,
        concurrency: int = 4,
        refresh_interval: float = 60.0,
        properties: Callable[[str, str], set[str] | None] | None = None,
        on_refused: Callable[[Key, str], None] | None = None,
        cycle: Callable[[str, str], float] | None = None,
    ) -> None:
        """``concurrency``: DeviceStatus writes in flight at once; ``refresh_interval``: how long a
        report that changes nothing (only timestamps) may wait for the next write;
        ``properties(ns, name)``: the property names the Device declares (None: unknown);
        ``on_refused(key, reason)``: a write was refused for good (its values dropped);
        ``cycle(ns, name)``: seconds between writes of new values only (None: the flush interval)."""
        self.cycle = cycle
        self.patch = patch
        self.refresh_interval = refresh_interval
        self.properties = properties
        self.on_refused = on_refused
        self.concurrency = concurrency
        self.current = current  # the DeviceStatus as the informer last saw it
        self.flush_interval = flush_interval
        self._pending: dict[Key, _Pending] = {}
        # What this writer last wrote, per device and property: the informer cache may lag behind.
        self._written: dict[Key, dict[str, dict[str, Any]]] = {}
        self._written_state: dict[Key, str] = {}
        self._written_conditions: dict[Key, list[dict[str, Any]]] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._last_write: dict[Key, float] = {}  # loop time each device's last write started
        self._writing: set[Key] = set()
        # A few writes at a time, not a whole batch: each one is an API request (a thread of the
        # client pool, and in standalone mode a request this process serves too), and a burst of
        # hundreds at once makes every other request and watch event of the process (a user's
        # Device change on its way to the node) wait behind it.
        self._limit = asyncio.Semaphore(concurrency)
        self._writes: set[asyncio.Task[None]] = set()
        self.writes = 0
        #: for /metrics: DeviceStatus patches by result (ok, gone, error) and reports received
        self.write_results: Counter[str] = Counter()
        self.twin_updates = 0
        self.state_updates = 0

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="devicestatus-writer")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._writes:
            await asyncio.gather(*self._writes, return_exceptions=True)
        with contextlib.suppress(Exception):
            await self.flush()

    def pending_devices(self) -> int:
        return len(self._pending)

    def forget(self, key: Key) -> None:
        self._written.pop(key, None)
        self._written_state.pop(key, None)
        self._written_conditions.pop(key, None)
        self._last_write.pop(key, None)

    def conditions_report(self, key: Key, conditions: list[dict[str, Any]]) -> None:
        """The device's conditions as they are now (written with its next write)."""
        pending = self._pending.get(key)
        if pending is None:
            pending = self._pending[key] = _Pending()
            self._wake.set()
        pending.conditions = conditions
        self._changed_state(key, pending)

    def _changed_state(self, key: Key, pending: _Pending) -> None:
        """After a state or conditions report: a device waiting for its report cycle (or held) whose
        state or conditions now change is rescheduled at the flush interval."""
        if pending.held:
            self._recheck(key, pending)
        elif self.cycle is not None and self._changes_state(key, pending):
            self._wake.set()

    def _recheck(self, key: Key, pending: _Pending) -> None:
        """A held device got another report: write it soon if that changed something, else answer."""
        if self._changes_something(key, pending):
            pending.held = False
            self._wake.set()
        else:
            for reply in pending.replies:
                reply()
            pending.replies.clear()

    # input ------------------------------------------------------------------------------------

    def twin_report(
        self,
        key: Key,
        twins: dict[str, Any],
        reply: Callable[[], None] | None = None,
        refused: Callable[[str], None] | None = None,
    ) -> None:
        """``twins`` is the ``twin`` map of a ``twin/edge_updated`` message; ``reply`` is called once
        its values are written, ``refused(reason)`` instead when the API server refused them for good."""
        pending = self._pending.get(key)
        if pending is None:
            # Only a device that was not pending yet needs the loop: the others are scheduled.
            pending = self._pending[key] = _Pending()
            self._wake.set()
        for name, twin in twins.items():
            if not isinstance(twin, dict):
                continue
            self.twin_updates += 1
            entry = pending.twins.setdefault(name, {})
            for src, dst in (("actual", "reported"), ("expected", "observedDesired")):
                side = twin.get(src)
                if not isinstance(side, dict) or side.get("value") is None:
                    continue
                value = {
                    "value": str(side["value"]),
                    "metadata": {
                        "timestamp": str(_ts(side)),
                        "type": str((twin.get("metadata") or {}).get("type") or "string"),
                    },
                }
                if _ts(value) >= _ts(entry.get(dst)):
                    entry[dst] = value
        if reply is not None:
            pending.replies.append(reply)
        if refused is not None:
            pending.refusals.append(refused)
        if pending.held:
            self._recheck(key, pending)

    def state_report(
        self,
        key: Key,
        state: str,
        last_online: str,
        reply: Callable[[], None] | None = None,
        refused: Callable[[str], None] | None = None,
    ) -> None:
        pending = self._pending.get(key)
        if pending is None:
            pending = self._pending[key] = _Pending()
            self._wake.set()
        self.state_updates += 1
        pending.state = state
        if last_online:
            pending.last_online = last_online
        if reply is not None:
            pending.replies.append(reply)
        if refused is not None:
            pending.refusals.append(refused)
        self._changed_state(key, pending)

    # output -----------------------------------------------------------------------------------

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        timer: asyncio.TimerHandle | None = None
        while True:
            await self._wake.wait()
            self._wake.clear()
            if timer is not None:
                timer.cancel()
                timer = None
            now = loop.time()
            next_due: float | None = None
            for key in list(self._pending):
                if key in self._writing:
                    continue  # its next write waits for this one (and then for the interval)
                pending = self._pending[key]
                interval = self.flush_interval
                state_changes = self._changes_state(key, pending)
                pending.held = not state_changes and not self._changes_values(key, pending)
                if pending.held:
                    # Only newer timestamps: answer the edge now, write them later (or with a change).
                    for reply in pending.replies:
                        reply()
                    pending.replies.clear()
                    interval = max(self.refresh_interval, self.flush_interval)
                elif self.cycle is not None and not state_changes:
                    interval = max(self.cycle(*key), self.flush_interval)
                due = self._last_write.get(key, -interval) + interval
                if due <= now:
                    self._start_write(key, self._pending.pop(key), now)
                elif next_due is None or due < next_due:
                    next_due = due
            if next_due is not None:
                timer = loop.call_at(next_due, self._wake.set)

    def _current_state(self, key: Key) -> tuple[str | None, list[dict[str, Any]] | None]:
        cached = (self.current(*key) or {}).get("status") or {}
        state = self._written_state.get(key, cached.get("state"))
        conditions = self._written_conditions.get(key, cached.get("conditions"))
        return state, conditions

    def _changes_state(self, key: Key, pending: _Pending) -> bool:
        """Whether writing ``pending`` changes the state or a condition."""
        state, conditions = self._current_state(key)
        if pending.state is not None and pending.state != state:
            return True
        return pending.conditions is not None and pending.conditions != conditions

    def _changes_something(self, key: Key, pending: _Pending) -> bool:
        """Whether writing ``pending`` changes a value, the state or a condition (not just timestamps)."""
        return self._changes_state(key, pending) or self._changes_values(key, pending)

    def _changes_values(self, key: Key, pending: _Pending) -> bool:
        if not pending.twins:
            return False
        current = self._merged_twins(key)
        for name, entry in pending.twins.items():
            twin = current.get(name) or {}
            for side, value in entry.items():
                now = twin.get(side) or {}
                if value.get("value") != now.get("value") and _ts(value) >= _ts(now):
                    return True
        return False

    def _start_write(self, key: Key, pending: _Pending, now: float) -> None:
        self._last_write[key] = now
        self._writing.add(key)

        async def write() -> None:
            try:
                await self._write_and_reply(key, pending)
            finally:
                self._writing.discard(key)
                if key in self._pending:
                    self._wake.set()

        task = asyncio.create_task(write())
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def _write_and_reply(self, key: Key, pending: _Pending) -> None:
        try:
            async with self._limit:
                try:
                    await self._write(key, pending)
                except Exception as exc:
                    if getattr(exc, "status", None) not in REFUSED_CODES:
                        raise
                    if not await self._salvage(key, pending, exc):
                        return
        except Exception as exc:
            self.write_results["error"] += 1
            _throttled.warning(
                f"error/{key[0]}/{key[1]}", "DeviceStatus %s/%s not written (will retry): %s", *key, exc
            )
            self._requeue(key, pending)
            return
        for reply in pending.replies:
            reply()

    async def _salvage(self, key: Key, pending: _Pending, exc: Exception) -> bool:
        """After a refusal: write again with only the Device's properties if that leaves something
        out; True when written, False when refused for good (values dropped and reported)."""
        known = self.properties(*key) if self.properties is not None else None
        if known is not None:
            extra = [n for n in pending.twins if n not in known]
            stored = [n for n in self._merged_twins(key) if n not in known]
            if extra or stored:
                kept = _Pending(
                    twins={n: t for n, t in pending.twins.items() if n in known},
                    state=pending.state,
                    last_online=pending.last_online,
                    conditions=pending.conditions,
                )
                try:
                    await self._write(key, kept, only=known)
                except Exception as again:
                    if getattr(again, "status", None) not in REFUSED_CODES:
                        raise
                    exc = again
                else:
                    self._report_refusal(
                        key, f"twins that are not properties of the Device were left out: {exc}", pending
                    )
                    return True
        self._report_refusal(key, str(exc), pending)
        for refused in pending.refusals:
            refused(str(exc)[:300])
        return False

    def _report_refusal(self, key: Key, reason: str, pending: _Pending) -> None:
        self.write_results["refused"] += 1
        _throttled.warning(
            f"refused/{key[0]}/{key[1]}",
            "DeviceStatus %s/%s: the API server refused the write (%d twins); not retried: %.300s",
            key[0],
            key[1],
            len(pending.twins),
            reason,
        )
        if self.on_refused is not None:
            self.on_refused(key, reason)

    async def flush(self) -> None:
        """Write everything pending now, whatever the pacing (for stop and tests)."""
        batch, self._pending = self._pending, {}
        if not batch:
            return
        await asyncio.gather(*(self._write_and_reply(k, p) for k, p in batch.items()))

    def _requeue(self, key: Key, old: _Pending) -> None:
        newer = self._pending.get(key)
        if newer is None:
            self._pending[key] = old
        else:
            for name, entry in old.twins.items():
                target = newer.twins.setdefault(name, {})
                for side, value in entry.items():
                    if _ts(value) > _ts(target.get(side)):
                        target[side] = value
            if newer.state is None:
                newer.state = old.state
            if newer.last_online is None:
                newer.last_online = old.last_online
            if newer.conditions is None:
                newer.conditions = old.conditions
            newer.replies[:0] = old.replies
            newer.refusals[:0] = old.refusals
        self._wake.set()

    async def _write(self, key: Key, pending: _Pending, only: set[str] | None = None) -> None:
        status: dict[str, Any] = {}
        if pending.twins or only is not None:
            merged = self._merged_twins(key)
            changed = False
            if only is not None:
                changed = any(n not in only for n in merged)
                merged = {n: t for n, t in merged.items() if n in only}
            for name, entry in pending.twins.items():
                twin = merged.setdefault(name, {"propertyName": name})
                for side, value in entry.items():
                    if _ts(value) >= _ts(twin.get(side)) and twin.get(side) != value:
                        twin[side] = value
                        changed = True
            if changed:
                status["twins"] = [merged[n] for n in sorted(merged)]
        state, conditions = self._current_state(key)
        if pending.state is not None and pending.state != state:
            status["state"] = pending.state
        if pending.last_online:
            cached = (self.current(*key) or {}).get("status") or {}
            if pending.last_online != cached.get("lastOnlineTime"):
                status["lastOnlineTime"] = pending.last_online
        if pending.conditions is not None and pending.conditions != conditions:
            status["conditions"] = pending.conditions
        if not status:
            return
        written = await self.patch(key[0], key[1], {"status": status})
        self.writes += 1
        self.write_results["ok" if written else "gone"] += 1
        if written and "twins" in status:
            self._written[key] = {t["propertyName"]: t for t in status["twins"]}
        if written and "state" in status:
            self._written_state[key] = status["state"]
        if written and "conditions" in status:
            self._written_conditions[key] = status["conditions"]

    def _merged_twins(self, key: Key) -> dict[str, dict[str, Any]]:
        cached = self.current(*key) or {}
        out: dict[str, dict[str, Any]] = {}
        for twin in (cached.get("status") or {}).get("twins") or []:
            if isinstance(twin, dict) and twin.get("propertyName"):
                out[str(twin["propertyName"])] = dict(twin)
        for name, twin in self._written.get(key, {}).items():
            base = out.setdefault(name, {"propertyName": name})
            for side in ("reported", "observedDesired"):
                if _ts(twin.get(side)) > _ts(base.get(side)):
                    base[side] = twin[side]
        return out
