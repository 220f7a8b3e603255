"""A small process supervisor for `kubeshore up`.

Every long-running service starts in its own session (so its process group id is its pid and a
terminal Ctrl-C reaches only the supervisor, which then stops services in reverse order), logs to
``DIR/logs/<name>.log`` and is recorded in ``DIR/up.json`` together with its kernel start time, so
that `kubeshore down` and a later `kubeshore up` can find what is still running without ever
signalling a recycled pid.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ReadyCheck = Callable[[], Awaitable[bool]]

STATE_FILE = "up.json"
LOG_DIR = "logs"


class ProcessFailed(Exception):
    """A service exited, or a one-shot command failed; the message carries the end of its log."""


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
    process: asyncio.subprocess.Process
    start_ticks: int
    restarts: list[float] = field(default_factory=list)
    stopping: bool = False
    group_reaped: bool = False


# --- /proc helpers: pid liveness that survives pid reuse, and process-group membership -------------


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


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


async def poll_until(condition: Callable[[], bool], within: float, step: float = 0.05) -> bool:
    """Check ``condition`` every ``step`` seconds for up to ``within`` seconds (for /proc state,
    which has no event to wait on)."""
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(step)
    return True


async def stop_group(pgid: int, ticks: int | None, grace: float = 10.0) -> bool:
    """SIGTERM the process group led by ``pgid``, SIGKILL what is left after ``grace`` seconds.

    Returns True when something was running. A leader that is gone (or is another process now) with
    members left behind still has its group signalled: those members are exactly the orphans we owe.
    """
    leader_ours = is_alive(pgid, ticks)
    if not leader_ours and (is_alive(pgid) or not group_members(pgid)):
        return False
    _signal_group(pgid, signal.SIGTERM)
    if not await poll_until(lambda: not group_members(pgid), grace):
        _signal_group(pgid, signal.SIGKILL)
        await poll_until(lambda: not group_members(pgid), 5)
    return True


# --- the state file -------------------------------------------------------------------------------------


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


async def stop_recorded(data_dir: Path, grace: float = 20.0) -> list[str]:
    """Stop whatever ``DIR/up.json`` says runs: first the supervisor (which stops its services in
    order), then any service group still alive (the supervisor was killed with -9, say).

    Returns the names of what had to be stopped.
    """
    state = read_state(data_dir)
    stopped = []
    sup = state.get("supervisor") or {}
    if sup and is_alive(int(sup["pid"]), sup.get("ticks")):
        stopped.append("supervisor")
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(sup["pid"]), signal.SIGTERM)
        gone = await poll_until(lambda: not is_alive(int(sup["pid"]), sup.get("ticks")), grace, 0.1)
        if not gone:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(sup["pid"]), signal.SIGKILL)
        state = read_state(data_dir)
    records = state.get("processes") or {}
    for name in reversed(list(records)):
        rec = records[name]
        if await stop_group(int(rec["pid"]), rec.get("ticks"), grace=10):
            stopped.append(name)
    state = read_state(data_dir)
    if state:
        state["processes"] = {}
        state["supervisor"] = {}
        state["phase"] = "stopped"
        state["ready"] = False
        write_state(data_dir, state)
    return stopped


# --- the supervisor -------------------------------------------------------------------------------------


def log_tail(path: Path, lines: int = 20) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


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
                "pid": r.process.pid,
                "ticks": r.start_ticks,
                "argv": list(r.service.argv),
                "log": str(self.log_path(name)),
            }
            for name, r in self._running.items()
        }
        write_state(self.data_dir, self._state)

    def log_path(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"

    @property
    def names(self) -> list[str]:
        return list(self._running)

    def pid(self, name: str) -> int:
        return self._running[name].process.pid

    # starting --------------------------------------------------------------------------------------

    async def _spawn(self, service: Service) -> asyncio.subprocess.Process:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        if service.env:
            env.update(service.env)
        with self.log_path(service.name).open("ab") as log:
            log.write(f"--- {time.strftime('%Y-%m-%dT%H:%M:%S')} start: {' '.join(service.argv)}\n".encode())
            log.flush()
            try:
                return await asyncio.create_subprocess_exec(
                    *service.argv,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=log,
                    stderr=asyncio.subprocess.STDOUT,
                    cwd=service.cwd,
                    env=env,
                    start_new_session=True,
                )
            except OSError as exc:
                raise ProcessFailed(
                    f"{service.name}: cannot start {service.argv[0]}: {exc.strerror}"
                ) from exc

    async def start(self, service: Service) -> None:
        if service.name in self._running:
            raise ValueError(f"{service.name} is already running")
        process = await self._spawn(service)
        self._running[service.name] = _Running(service, process, start_ticks(process.pid) or 0)
        self._record()

    async def wait_ready(self, name: str, within: float, interval: float = 0.2) -> None:
        """Poll the service's readiness check; raise ProcessFailed if it exits or times out."""
        running = self._running[name]
        check = running.service.ready
        deadline = time.monotonic() + within
        while True:
            running = self._running[name]
            if running.process.returncode is not None:
                raise ProcessFailed(
                    f"{name} exited with code {running.process.returncode} before it was ready; "
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
        full_env = dict(os.environ)
        if env:
            full_env.update(env)
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=full_env,
                start_new_session=True,
            )
        except OSError as exc:
            raise ProcessFailed(f"{name}: cannot start {argv[0]}: {exc.strerror}") from exc
        try:
            async with asyncio.timeout(within):
                out, err = await proc.communicate()
        except (TimeoutError, asyncio.CancelledError):
            await stop_group(proc.pid, None, grace=2)
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
                if running.stopping or running.process.returncode is None:
                    continue
                if not running.group_reaped:
                    # A crashed service can leave children in its process group (each service is
                    # its own session); they must not outlive it or hold its ports on restart.
                    running.group_reaped = True
                    _signal_group(running.process.pid, signal.SIGKILL)
                if not running.service.restart:
                    continue
                if name in self.failures:
                    continue
                now = time.monotonic()
                running.restarts = [t for t in running.restarts if now - t < self.restart_window]
                if len(running.restarts) >= self.max_restarts:
                    self.failures[name] = (
                        f"{name} exited {len(running.restarts) + 1} times within "
                        f"{self.restart_window:.0f} s (last code {running.process.returncode}); "
                        f"see {self.log_path(name)}"
                    )
                    continue
                # Back off a little more with each crash so a broken service does not spin.
                await asyncio.sleep(min(0.5 * 2 ** len(running.restarts), 8.0))
                if running.stopping:
                    continue
                try:
                    process = await self._spawn(running.service)
                except ProcessFailed as exc:
                    self.failures[name] = str(exc)
                    continue
                running.restarts.append(now)
                self._running[name] = _Running(
                    running.service, process, start_ticks(process.pid) or 0, running.restarts
                )
                self._record()

    def restarts(self, name: str) -> int:
        return len(self._running[name].restarts)

    # stopping --------------------------------------------------------------------------------------

    async def stop(self, name: str) -> None:
        running = self._running[name]
        running.stopping = True
        await stop_group(running.process.pid, running.start_ticks, self.stop_timeout)
        with contextlib.suppress(ProcessLookupError):
            await running.process.wait()
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
        first = [n for n, r in self._running.items() if not r.service.stop_last]
        await asyncio.gather(*(self.stop(n) for n in first))
        for name in reversed(list(self._running)):
            await self.stop(name)
