"""The `kubeshore up` supervisor with real processes: start, readiness, restart, stop, no orphans."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from up.processes import (
    Processes,
    ProcessFailed,
    Service,
    Supervisor,
    group_members,
    is_alive,
    live_processes,
    read_state,
    start_ticks,
    stop_recorded,
    wait_until,
)

# A service that starts a grandchild (as cloudcore or a shell wrapper would), writes the grandchild's
# pid to a file and then runs until told to stop. The grandchild must die with it.
SERVICE = textwrap.dedent(
    """
    import os, signal, subprocess, sys, time
    out = sys.argv[1]
    mode = sys.argv[2] if len(sys.argv) > 2 else "normal"
    if mode == "stubborn":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    with open(out + ".tmp", "w") as f:
        f.write(f"{os.getpid()} {child.pid}")
    os.replace(out + ".tmp", out)
    print("service up", flush=True)
    if mode == "crash":
        time.sleep(0.2)
        sys.exit(3)
    while True:
        time.sleep(0.1)
    """
)


@pytest.fixture
def script(tmp_path: Path) -> Path:
    path = tmp_path / "service.py"
    path.write_text(SERVICE)
    return path


@pytest.fixture
async def sup(tmp_path: Path) -> AsyncIterator[Supervisor]:
    s = Supervisor(tmp_path / "data", stop_timeout=1.0, max_restarts=2, restart_window=30)
    s.claim()
    yield s
    await s.stop_all()


def _pids(marker: Path) -> tuple[int, int]:
    parent, child = marker.read_text().split()
    return int(parent), int(child)


def service(name: str, script: Path, marker: Path, mode: str = "normal", restart: bool = True) -> Service:
    async def ready() -> bool:
        return await asyncio.to_thread(marker.exists)

    return Service(name, [sys.executable, str(script), str(marker), mode], ready=ready, restart=restart)


async def test_start_ready_and_stop_leaves_nothing(sup: Supervisor, script: Path, tmp_path: Path) -> None:
    markers = [tmp_path / "a", tmp_path / "b"]
    for i, m in enumerate(markers):
        await sup.start(service(f"svc-{i}", script, m))
        await sup.wait_ready(f"svc-{i}", 10)
    pids = [_pids(m) for m in markers]
    assert all(is_alive(p) and is_alive(c) for p, c in pids)
    state = read_state(sup.data_dir)
    assert set(state["processes"]) == {"svc-0", "svc-1"}
    assert state["processes"]["svc-0"]["pid"] == pids[0][0]
    assert "service up" in sup.log_path("svc-0").read_text()

    await sup.stop_all()
    for p, c in pids:
        assert not is_alive(p) and not is_alive(c), "a service or its child survived stop_all"
        assert group_members(p) == []
    assert read_state(sup.data_dir)["processes"] == {}


async def test_sigterm_ignored_gets_sigkill(sup: Supervisor, script: Path, tmp_path: Path) -> None:
    marker = tmp_path / "m"
    await sup.start(service("stubborn", script, marker, "stubborn"))
    await sup.wait_ready("stubborn", 10)
    parent, child = _pids(marker)
    t0 = time.monotonic()
    await sup.stop("stubborn")
    assert time.monotonic() - t0 >= 0.9  # waited the grace period first
    assert not is_alive(parent) and not is_alive(child)


async def test_stop_all_stops_together_and_the_control_plane_last(
    sup: Supervisor, script: Path, tmp_path: Path
) -> None:
    markers = [tmp_path / f"m{i}" for i in range(3)]
    core = service("core", script, markers[0], "stubborn")
    core.stop_last = True
    await sup.start(core)
    for i in (1, 2):
        await sup.start(service(f"edge-{i}", script, markers[i], "stubborn"))
    for name in sup.names:
        await sup.wait_ready(name, 10)
    core_pid = _pids(markers[0])[0]
    t0 = time.monotonic()
    stopped_while_core_ran = []

    async def watch_core() -> None:
        await asyncio.to_thread(wait_until, lambda: sup.names == ["core"] or not is_alive(core_pid), 10, 0.02)
        stopped_while_core_ran.append(is_alive(core_pid))

    watcher = asyncio.create_task(watch_core())
    await sup.stop_all()
    await watcher
    assert stopped_while_core_ran == [True]  # the edges were gone while the core still ran
    # Each service waits its 1 s grace: the edges together, then the core (one after the other: 3 s).
    assert time.monotonic() - t0 < 2.8
    assert not any(is_alive(p) for m in markers for p in _pids(m))


async def test_crashing_service_is_restarted_then_given_up(
    sup: Supervisor, script: Path, tmp_path: Path
) -> None:
    marker = tmp_path / "m"
    await sup.start(service("crashy", script, marker, "crash"))
    await sup.wait_ready("crashy", 10)
    first = sup.pid("crashy")
    first_child = _pids(marker)[1]
    sup.watch()
    for _ in range(100):
        if sup.pid("crashy") != first:
            break
        await asyncio.sleep(0.1)
    assert sup.pid("crashy") != first, "a crashed service was not restarted"
    # The crashed instance's children die with it, before anything is stopped.
    for _ in range(20):
        if not is_alive(first_child):
            break
        await asyncio.sleep(0.1)
    assert not is_alive(first_child), "a crashed service left its child running"
    for _ in range(150):
        if "crashy" in sup.failures:
            break
        await asyncio.sleep(0.1)
    assert "exited 3 times" in sup.failures["crashy"]
    # A crashed service's own children are still cleaned up.
    await sup.stop_all()
    assert not is_alive(_pids(marker)[1])


async def test_service_exiting_before_ready_names_its_log(sup: Supervisor, tmp_path: Path) -> None:
    async def never() -> bool:
        return False

    await sup.start(
        Service("broken", [sys.executable, "-c", "print('bad flag --x'); raise SystemExit(2)"], ready=never)
    )
    with pytest.raises(ProcessFailed, match=r"broken exited with code 2[\s\S]*bad flag --x"):
        await sup.wait_ready("broken", 10)


async def test_not_ready_in_time(sup: Supervisor, script: Path, tmp_path: Path) -> None:
    async def never() -> bool:
        return False

    await sup.start(Service("slow", [sys.executable, str(script), str(tmp_path / "m")], ready=never))
    with pytest.raises(ProcessFailed, match="slow was not ready within 1 s"):
        await sup.wait_ready("slow", 1)


async def test_missing_binary_is_a_clear_error(sup: Supervisor) -> None:
    with pytest.raises(ProcessFailed, match="cannot start /nonexistent/cloudcore"):
        await sup.start(Service("cloudcore", ["/nonexistent/cloudcore"]))


async def test_run_once(sup: Supervisor) -> None:
    out = await sup.run_once("echo", [sys.executable, "-c", "print('tok.en')"])
    assert out.strip() == "tok.en"
    with pytest.raises(ProcessFailed, match=r"join failed \(exit 1\): token expired"):
        await sup.run_once("join", [sys.executable, "-c", "import sys; sys.exit('token expired')"])
    assert "token expired" in sup.log_path("join").read_text()


async def test_run_once_timeout_kills_the_group(sup: Supervisor, tmp_path: Path) -> None:
    marker = tmp_path / "m"
    code = (
        "import subprocess, sys, time;"
        "c = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)']);"
        f"open({str(marker)!r}, 'w').write(str(c.pid)); time.sleep(600)"
    )
    with pytest.raises(TimeoutError):
        await sup.run_once("hang", [sys.executable, "-c", code], within=3)
    assert not is_alive(int(marker.read_text()))


# --- the synchronous core that the tests and benchmarks use directly ---------------------------------------


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Processes]:
    p = Processes(tmp_path / "logs")
    yield p
    p.stop_all()


def _argv(script: Path, marker: Path, mode: str = "normal") -> list[str]:
    return [sys.executable, str(script), str(marker), mode]


def _wait_marker(marker: Path) -> tuple[int, int]:
    assert wait_until(marker.exists, 10), "the service did not start"
    return _pids(marker)


def test_kill9_takes_the_group_and_the_name_starts_again(
    procs: Processes, script: Path, tmp_path: Path
) -> None:
    marker = tmp_path / "m"
    first = procs.start("svc", *_argv(script, marker))
    parent, child = _wait_marker(marker)
    assert parent == first.pid and procs.alive("svc")
    procs.kill9("svc")
    assert first.returncode == -signal.SIGKILL  # reaped
    assert not is_alive(parent) and not is_alive(child) and group_members(parent) == []
    marker.unlink()
    procs.start("svc", *_argv(script, marker))
    assert _wait_marker(marker)[0] != parent
    assert procs.log("svc").count(" start: ") == 2 and "service up" in procs.log("svc")


def test_stop_waits_the_grace_then_kills(procs: Processes, script: Path, tmp_path: Path) -> None:
    marker = tmp_path / "m"
    procs.start("stubborn", *_argv(script, marker, "stubborn"))
    parent, child = _wait_marker(marker)
    t0 = time.monotonic()
    procs.stop("stubborn", grace=1.0)
    assert time.monotonic() - t0 >= 0.9
    assert not is_alive(parent) and not is_alive(child) and "stubborn" not in procs.procs


def test_a_leader_that_exited_leaves_no_child_behind(procs: Processes, script: Path, tmp_path: Path) -> None:
    """A process that crashed leaves its children in its group: stop_all, and starting the name again,
    end them (a shell wrapper or a daemon that forks must not outlive its test)."""
    markers = [tmp_path / "a", tmp_path / "b"]
    for name, marker in zip(("a", "b"), markers, strict=True):
        procs.start(name, *_argv(script, marker, "crash"))
    (_, child_a), (_, child_b) = (_wait_marker(m) for m in markers)
    assert wait_until(lambda: not procs.alive("a") and not procs.alive("b"), 10)
    assert is_alive(child_a) and is_alive(child_b)  # orphans, still in the crashed leaders' groups
    markers[0].unlink()
    procs.start("a", *_argv(script, markers[0]))
    assert not is_alive(child_a), "starting a crashed name again left its child running"
    procs.stop_all()
    assert not is_alive(child_b), "stop_all left the child of a crashed process running"
    assert procs.procs == {}


def test_a_command_that_cannot_start_is_named(procs: Processes) -> None:
    with pytest.raises(ProcessFailed, match="edgecore: cannot start /nonexistent/edgecore"):
        procs.start("edgecore", "/nonexistent/edgecore")
    assert procs.procs == {}


def test_a_running_name_is_not_started_twice(procs: Processes, script: Path, tmp_path: Path) -> None:
    procs.start("svc", *_argv(script, tmp_path / "m"))
    with pytest.raises(ValueError, match="svc is already running"):
        procs.start("svc", *_argv(script, tmp_path / "m2"))


# --- a supervisor killed with -9 leaves services; `down` and the next `up` must find and stop them -------

SUPERVISOR = textwrap.dedent(
    """
    import asyncio, sys
    from pathlib import Path
    from up.processes import Service, Supervisor

    async def main() -> None:
        sup = Supervisor(Path(sys.argv[1]))
        sup.claim()
        for i in range(2):
            marker = Path(sys.argv[1]) / f"m{i}"
            async def ready(marker=marker) -> bool:
                return marker.exists()
            await sup.start(Service(f"svc-{i}", [sys.executable, sys.argv[2], str(marker)], ready=ready))
            await sup.wait_ready(f"svc-{i}", 10)
        sup.update(ready=True)
        try:
            await asyncio.Event().wait()
        finally:
            await sup.stop_all()

    asyncio.run(main())
    """
)


@pytest.fixture
def supervisor_process(tmp_path: Path, script: Path) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    data = tmp_path / "data"
    data.mkdir()
    runner = tmp_path / "runner.py"
    runner.write_text(SUPERVISOR)
    proc = subprocess.Popen([sys.executable, str(runner), str(data), str(script)], start_new_session=True)
    try:
        for _ in range(200):
            if read_state(data).get("ready"):
                break
            time.sleep(0.05)
        assert read_state(data).get("ready"), "the supervisor did not start its services"
        yield proc, data
    finally:
        asyncio.run(stop_recorded(data, grace=2))
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def test_stop_recorded_asks_the_supervisor(supervisor_process: tuple[subprocess.Popen[bytes], Path]) -> None:
    proc, data = supervisor_process
    pids = [_pids(data / f"m{i}") for i in range(2)]
    stopped = asyncio.run(stop_recorded(data))
    assert stopped[0] == "supervisor"
    assert proc.wait(5) == 0 or proc.returncode is not None
    assert not any(is_alive(p) or is_alive(c) for p, c in pids)
    assert read_state(data)["processes"] == {}


def test_orphans_of_a_killed_supervisor_are_stopped(
    supervisor_process: tuple[subprocess.Popen[bytes], Path],
) -> None:
    proc, data = supervisor_process
    pids = [_pids(data / f"m{i}") for i in range(2)]
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    state = read_state(data)
    assert set(live_processes(state)) == {"svc-0", "svc-1"}  # what the next `up` or `down` sees
    stopped = asyncio.run(stop_recorded(data))
    assert set(stopped) == {"svc-0", "svc-1"}
    assert not any(is_alive(p) or is_alive(c) for p, c in pids)
    assert live_processes(state) == {}


def test_a_recycled_pid_is_never_signalled(tmp_path: Path) -> None:
    bystander = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(600)"], start_new_session=True
    )
    try:
        data = tmp_path / "data"
        data.mkdir()
        ticks = start_ticks(bystander.pid)
        assert ticks is not None
        record = {"pid": bystander.pid, "ticks": ticks - 1}
        (data / "up.json").write_text(json.dumps({"processes": {"old": record}, "supervisor": {}}))
        assert asyncio.run(stop_recorded(data, grace=1)) == []
        assert is_alive(bystander.pid)
    finally:
        bystander.kill()
        bystander.wait()
