"""The one process supervisor: what `kubeshore up`, the end-to-end tests and the benchmarks start their
long-running processes with.

Every process starts in a session of its own, so its process group id is its pid: a terminal's Ctrl-C
reaches only whoever started it, and kill -9 or a graceful stop of the group reaches the process and
everything it started (shells, containerd's children), never a bystander. Each logs to
``<log dir>/<name>.log``. Liveness is judged by pid *and* kernel start time, so that a recorded pid that
has since been reused is never signalled.

:class:`Processes` is the synchronous core (start, kill -9, stop with a deadline, logs), used as it is by
tests and benchmarks. :class:`Supervisor` builds `kubeshore up` on it: services with readiness checks, a
restart policy, and ``DIR/up.json``, which lets `kubeshore down` and a later `kubeshore up` find what
still runs after the supervisor itself was killed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ReadyCheck = Callable[[], Awaitable[bool]]

STATE_FILE = "up.json"
LOG_DIR = "logs"


class ProcessFailed(Exception):
    """A process could not start or exited, or a one-shot command failed; the message says which and why."""


# --- /proc: pid liveness that survives pid reuse, and process-group membership ---------------------------


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name may contain spaces and parentheses; the fields after the last ')' are fixed.
    return raw[raw.rfind(")") + 2 :].split()


def start_ticks(pid: int) -> int | None:
    """The kernel start time of ``pid`` (clock ticks since boot), None when there is no such process."""
    fields = _stat_fields(pid)
    if fields is None or fields[0] == "Z":
        return None
    return int(fields[19])


def is_alive(pid: int, ticks: int | None = None) -> bool:
    """True when ``pid`` runs (not a zombie) and, if ``ticks`` is given, is the same process as recorded."""
    now = start_ticks(pid)
    return now is not None and (ticks is None or now == ticks)


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes whose process group is ``pgid``."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields is not None and fields[0] != "Z" and int(fields[2]) == pgid:
            members.append(int(entry.name))
    return members


def wait_until(condition: Callable[[], bool], within: float, step: float = 0.05) -> bool:
    """Check ``condition`` every ``step`` seconds for up to ``within`` seconds (for /proc state, which
    has no event to wait on); False when it never held."""
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() >= deadline:
            return False
        time.sleep(step)
    return True


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _ours(pgid: int, ticks: int | None) -> bool:
    # A leader that is gone (or is another process now) with members left behind still has its group
    # signalled: those members are exactly the orphans we owe. A pid cannot be reused while it names a
    # process group that has members, so signalling that group reaches no bystander.
    return is_alive(pgid, ticks) or (not is_alive(pgid) and bool(group_members(pgid)))


def stop_groups(groups: Iterable[tuple[int, int | None]], grace: float) -> list[int]:
    """Stop process groups given as (pgid, the leader's start ticks or None), all at once: SIGTERM,
    then SIGKILL to what is left after ``grace`` seconds (at once when ``grace`` is 0), then wait (up to
    10 s more) until no member is left. Returns the pgids that had something running."""
    ours = [pgid for pgid, ticks in groups if _ours(pgid, ticks)]
    if grace > 0:
        for pgid in ours:
            _signal_group(pgid, signal.SIGTERM)
        if wait_until(lambda: not any(group_members(p) for p in ours), grace):
            return ours
    for pgid in ours:
        _signal_group(pgid, signal.SIGKILL)
    wait_until(lambda: not any(group_members(p) for p in ours), 10)
    return ours


def log_tail(path: Path, lines: int = 20) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


# --- the core: named processes ----------------------------------------------------------------------------


class Processes:
    """Named long-running processes, each in a session of its own and logging to ``log_dir/<name>.log``
    (appended to, after a line saying when and what started). ``procs`` holds the running ones by name."""

    def __init__(self, log_dir: Path, *, cwd: Path | None = None) -> None:
        self.log_dir = log_dir
        self.cwd = cwd
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self._ticks: dict[str, int | None] = {}

    def log_path(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"

    def log(self, name: str) -> str:
        return self.log_path(name).read_text(errors="replace")

    def start(
        self, name: str, *argv: str, env: Mapping[str, str] | None = None, cwd: Path | None = None
    ) -> subprocess.Popen[bytes]:
        """Start ``argv`` as ``name``; ``env`` is added to this process's environment. Raises
        ProcessFailed when it cannot start, ValueError when ``name`` still runs."""
        old = self.procs.get(name)
        if old is not None:
            if old.poll() is None:
                raise ValueError(f"{name} is already running")
            self._end(name, grace=0)  # what the exited one left in its group goes with it
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with self.log_path(name).open("ab") as log:
            log.write(f"--- {time.strftime('%Y-%m-%dT%H:%M:%S')} start: {' '.join(argv)}\n".encode())
            log.flush()
            try:
                proc = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=cwd or self.cwd,
                    env={**os.environ, **env} if env else None,
                    start_new_session=True,
                )
            except OSError as exc:
                raise ProcessFailed(f"{name}: cannot start {argv[0]}: {exc.strerror}") from exc
        self.procs[name] = proc
        self._ticks[name] = start_ticks(proc.pid)
        return proc

    def pid(self, name: str) -> int:
        return self.procs[name].pid

    def ticks(self, name: str) -> int | None:
        """The kernel start time of ``name``'s process, for records that must survive pid reuse."""
        return self._ticks[name]

    def alive(self, name: str) -> bool:
        return name in self.procs and self.procs[name].poll() is None

    def kill9(self, name: str) -> None:
        """SIGKILL ``name``'s whole process group, reap it and forget it."""
        self._end(name, grace=0)

    def stop(self, name: str, grace: float = 10.0) -> None:
        """SIGTERM ``name``'s process group, SIGKILL what is left after ``grace`` seconds; reap, forget."""
        self._end(name, grace)

    def stop_all(self, grace: float = 0.0) -> None:
        """Stop every process at once (kill -9 when ``grace`` is 0): nothing of any group is left."""
        names = list(self.procs)
        stop_groups([(self.procs[n].pid, self._ticks[n]) for n in names], grace)
        for name in names:
            self._forget(name)

    def _end(self, name: str, grace: float) -> None:
        stop_groups([(self.procs[name].pid, self._ticks[name])], grace)
        self._forget(name)

    def _forget(self, name: str) -> None:
        proc = self.procs.pop(name)
        del self._ticks[name]
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(10)


# --- `kubeshore up`: services with readiness, restarts and a state file -----------------------------------


@dataclass
class Service:
    """A long-running command; ``ready`` answers True once it serves."""

    name: str
    argv: Sequence[str]
    env: Mapping[str, str] | None = None
    cwd: Path | None = None
    ready: ReadyCheck | None = None
    restart: bool = True
    stop_last: bool = False
    """Stopped only after every other service (the control plane, which the others report to)."""


@dataclass
class _Running:
    service: Service
    restarts: list[float] = field(default_factory=list)
    stopping: bool = False
    group_reaped: bool = False


def read_state(data_dir: Path) -> dict[str, Any]:
    try:
        loaded = json.loads((data_dir / STATE_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return loaded if isinstance(loaded, dict) else {}


def write_state(data_dir: Path, state: Mapping[str, Any]) -> None:
    # Written whole and renamed so that a reader never sees half a file.
    tmp = data_dir / f".{STATE_FILE}.tmp"
    # Key order is start order: `down` stops what a dead supervisor left in reverse of it.
    tmp.write_text(json.dumps(state, indent=2))
    tmp.replace(data_dir / STATE_FILE)


def supervisor_alive(state: Mapping[str, Any]) -> bool:
    sup = state.get("supervisor") or {}
    return bool(sup) and is_alive(int(sup["pid"]), sup.get("ticks"))


def live_processes(state: Mapping[str, Any]) -> dict[str, int]:
    """Recorded services whose process group still has members: name -> pgid."""
    out = {}
    for name, rec in (state.get("processes") or {}).items():
        pid = int(rec["pid"])
        if is_alive(pid, rec.get("ticks")) or group_members(pid):
            out[name] = pid
    return out


def _stop_recorded(data_dir: Path, grace: float) -> list[str]:
    state = read_state(data_dir)
    stopped = []
    sup = state.get("supervisor") or {}
    if sup and is_alive(int(sup["pid"]), sup.get("ticks")):
        stopped.append("supervisor")
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(sup["pid"]), signal.SIGTERM)
        if not wait_until(lambda: not is_alive(int(sup["pid"]), sup.get("ticks")), grace, 0.1):
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(sup["pid"]), signal.SIGKILL)
        state = read_state(data_dir)
    records = state.get("processes") or {}
    for name in reversed(list(records)):
        rec = records[name]
        if stop_groups([(int(rec["pid"]), rec.get("ticks"))], grace=10):
            stopped.append(name)
    state = read_state(data_dir)
    if state:
        state["processes"] = {}
        state["supervisor"] = {}
        state["phase"] = "stopped"
        state["ready"] = False
        write_state(data_dir, state)
    return stopped


async def stop_recorded(data_dir: Path, grace: float = 20.0) -> list[str]:
    """Stop whatever ``DIR/up.json`` says runs: first the supervisor (which stops its services in
    order), then any service group still alive (the supervisor was killed with -9, say).

    Returns the names of what had to be stopped.
    """
    return await asyncio.to_thread(_stop_recorded, data_dir, grace)


class Supervisor:
    """Starts services and one-shot commands, watches them, restarts crashed services, stops all.

    ``max_restarts`` crashes within ``restart_window`` seconds make a service count as failed; the
    failure is reported through ``failures`` rather than looping forever.
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        max_restarts: int = 5,
        restart_window: float = 60.0,
        stop_timeout: float = 10.0,
    ) -> None:
        self.data_dir = data_dir
        self.log_dir = data_dir / LOG_DIR
        self.max_restarts = max_restarts
        self.restart_window = restart_window
        self.stop_timeout = stop_timeout
        self.processes = Processes(self.log_dir)
        self._running: dict[str, _Running] = {}
        self.failures: dict[str, str] = {}
        self._monitor: asyncio.Task[None] | None = None
        self._state: dict[str, Any] = {}

    # state ---------------------------------------------------------------------------------------

    def claim(self) -> None:
        """Record this process as the supervisor of ``data_dir`` (fresh state, nothing running)."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(exist_ok=True)
        me = os.getpid()
        self._state = {
            "supervisor": {"pid": me, "ticks": start_ticks(me)},
            "processes": {},
            "phase": "starting",
            "ready": False,
        }
        write_state(self.data_dir, self._state)

    def update(self, **fields: Any) -> None:
        """Merge ``fields`` (phase, ready, kubeconfig, …) into the state file."""
        self._state.update(fields)
        write_state(self.data_dir, self._state)

    def _record(self) -> None:
        self._state["processes"] = {
            name: {
                "pid": self.processes.pid(name),
                "ticks": self.processes.ticks(name) or 0,
                "argv": list(r.service.argv),
                "log": str(self.log_path(name)),
            }
            for name, r in self._running.items()
        }
        write_state(self.data_dir, self._state)

    def log_path(self, name: str) -> Path:
        return self.processes.log_path(name)

    @property
    def names(self) -> list[str]:
        return list(self._running)

    def pid(self, name: str) -> int:
        return self.processes.pid(name)

    # starting --------------------------------------------------------------------------------------

    def _spawn(self, service: Service) -> None:
        self.processes.start(service.name, *service.argv, env=service.env, cwd=service.cwd)

    async def start(self, service: Service) -> None:
        if service.name in self._running:
            raise ValueError(f"{service.name} is already running")
        self._spawn(service)
        self._running[service.name] = _Running(service)
        self._record()

    async def wait_ready(self, name: str, within: float, interval: float = 0.2) -> None:
        """Poll the service's readiness check; raise ProcessFailed if it exits or times out."""
        check = self._running[name].service.ready
        deadline = time.monotonic() + within
        while True:
            code = self.processes.procs[name].poll()
            if code is not None:
                raise ProcessFailed(
                    f"{name} exited with code {code} before it was ready; "
                    f"end of {self.log_path(name)}:\n{log_tail(self.log_path(name))}"
                )
            if check is None:
                return
            with contextlib.suppress(Exception):
                if await check():
                    return
            if time.monotonic() > deadline:
                raise ProcessFailed(
                    f"{name} was not ready within {within:.0f} s; "
                    f"end of {self.log_path(name)}:\n{log_tail(self.log_path(name))}"
                )
            await asyncio.sleep(interval)

    async def run_once(
        self,
        name: str,
        argv: Sequence[str],
        within: float = 60.0,
        env: Mapping[str, str] | None = None,
        *,
        secret_stdout: bool = False,
    ) -> str:
        """Run a short command to completion; returns its stdout, raises with its stderr on failure.

        Both streams are appended to ``DIR/logs/<name>.log``, but not stdout when ``secret_stdout`` (it
        prints a token; pass secrets to commands in ``env``, never in ``argv``). The command gets its
        own process group so a timeout kills everything it started.
        """
        self.log_dir.mkdir(parents=True, exist_ok=True)
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env={**os.environ, **env} if env else None,
                start_new_session=True,
            )
        except OSError as exc:
            raise ProcessFailed(f"{name}: cannot start {argv[0]}: {exc.strerror}") from exc
        try:
            async with asyncio.timeout(within):
                out, err = await proc.communicate()
        except (TimeoutError, asyncio.CancelledError):
            await asyncio.to_thread(stop_groups, [(proc.pid, None)], 2)
            await proc.wait()
            raise
        with self.log_path(name).open("ab") as log:
            text = f"--- {time.strftime('%Y-%m-%dT%H:%M:%S')} run: {' '.join(argv)}\n".encode()
            text += (b"<stdout not logged: it holds a secret>\n" if secret_stdout else out) + err
            log.write(text)
        if proc.returncode != 0:
            message = (err or out).decode(errors="replace").strip()
            raise ProcessFailed(f"{name} failed (exit {proc.returncode}): {message}")
        return out.decode()

    # watching --------------------------------------------------------------------------------------

    def watch(self) -> None:
        """Start restarting services that exit on their own (in a background task)."""
        if self._monitor is None:
            self._monitor = asyncio.get_running_loop().create_task(self._watch())

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(0.2)
            for name, running in list(self._running.items()):
                proc = self.processes.procs[name]
                if running.stopping or proc.poll() is None:
                    continue
                if not running.group_reaped:
                    # A crashed service can leave children in its process group (each service is
                    # its own session); they must not outlive it or hold its ports on restart.
                    running.group_reaped = True
                    _signal_group(proc.pid, signal.SIGKILL)
                if not running.service.restart:
                    continue
                if name in self.failures:
                    continue
                now = time.monotonic()
                running.restarts = [t for t in running.restarts if now - t < self.restart_window]
                if len(running.restarts) >= self.max_restarts:
                    self.failures[name] = (
                        f"{name} exited {len(running.restarts) + 1} times within "
                        f"{self.restart_window:.0f} s (last code {proc.returncode}); "
                        f"see {self.log_path(name)}"
                    )
                    continue
                # Back off a little more with each crash so a broken service does not spin.
                await asyncio.sleep(min(0.5 * 2 ** len(running.restarts), 8.0))
                if running.stopping:
                    continue
                try:
                    self._spawn(running.service)
                except ProcessFailed as exc:
                    self.failures[name] = str(exc)
                    continue
                running.restarts.append(now)
                running.group_reaped = False
                self._record()

    def restarts(self, name: str) -> int:
        return len(self._running[name].restarts)

    # stopping --------------------------------------------------------------------------------------

    async def stop(self, name: str) -> None:
        await self._stop([name])

    async def _stop(self, names: list[str]) -> None:
        for name in names:
            self._running[name].stopping = True
        # One thread stops them all at once: its SIGTERMs go out together, and it waits out one grace.
        groups = [(self.processes.pid(n), self.processes.ticks(n)) for n in names]
        await asyncio.to_thread(stop_groups, groups, self.stop_timeout)
        for name in names:
            self.processes.kill9(name)  # reaps the leader; its group is empty by now
            del self._running[name]
        self._record()

    async def stop_all(self) -> None:
        """Stop every service, each SIGTERM then SIGKILL: all at once, except those marked
        ``stop_last``, which follow in reverse start order once the others are gone."""
        if self._monitor is not None:
            self._monitor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._monitor
            self._monitor = None
        for running in self._running.values():
            running.stopping = True
        await self._stop([n for n, r in self._running.items() if not r.service.stop_last])
        for name in reversed(list(self._running)):
            await self.stop(name)
