"""`kubeshore up` and `kubeshore down`: the whole platform on this machine in one command."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from kubeshore import filemodes
from up import containerd
from up._plan import REPO_EXAMPLES, Plan, PlanError, describe, load_or_choose_ports
from up.processes import (
    LOG_DIR,
    ProcessFailed,
    Supervisor,
    live_processes,
    log_tail,
    read_state,
    stop_recorded,
    supervisor_alive,
)

DEFAULT_DATA_DIR = ".kubeshore"


def _parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=f"kubeshore {prog}")
    p.add_argument(
        "--data-dir",
        type=Path,
        default=Path(os.environ.get("KUBESHORE_DATA_DIR", DEFAULT_DATA_DIR)),
        help=f"where everything is kept (default ./{DEFAULT_DATA_DIR}); running again resumes from it",
    )
    return p


def _kubeconfig_line(data_dir: Path) -> str:
    return f"export KUBECONFIG={(data_dir / 'cloud' / 'admin.kubeconfig').resolve()}"


def _summary(console: Console, plan: Plan) -> None:
    info = describe(plan)
    console.print(f"[bold green]kubeshore is up[/] (data in {plan.data_dir.resolve()})")
    console.print(f"  API server   {info['apiserver']}   cloudcore {info['cloudcore']}")
    for node, n in info["nodes"].items():
        line = f"  {node:<12} MQTT {n['mqtt']}   mapper REST {n['mapper_rest']}"
        if n.get("modbus_mapper_rest"):
            line += f"   Modbus mapper REST {n['modbus_mapper_rest']}"
        console.print(line)
    mode, why = plan.mapper_mode()
    console.print(
        f"  mappers      as {'Pods' if mode == 'pods' else 'host processes'}: {why}", highlight=False
    )
    console.print(f"  logs         {(plan.data_dir / LOG_DIR).resolve()}/")
    console.print("Use it with:")
    console.print(f"  {_kubeconfig_line(plan.data_dir)}", highlight=False, soft_wrap=True)


# --- up ---------------------------------------------------------------------------------------------


def up(argv: list[str]) -> int:
    p = _parser("up")
    p.add_argument("--detach", action="store_true", help="start in the background and return once ready")
    p.add_argument("--no-view", action="store_true", help="run in the foreground without the live view")
    p.add_argument(
        "--examples",
        type=Path,
        default=REPO_EXAMPLES,
        help="directory of manifests to apply once the nodes are up (default: the repository's examples/)",
    )
    p.add_argument("--timeout", type=float, default=180.0, help="seconds to wait for everything to be ready")
    p.add_argument(
        "--mappers",
        choices=("pods", "processes"),
        help="run the mappers as Pods on each node's containerd (the default where containerd runs) "
        "or as host processes (the default otherwise)",
    )
    p.add_argument(
        "--random-ports",
        action="store_true",
        help="on the first run, pick any free ports instead of KubeEdge's well-known ones (for tests and CI)",
    )
    args = p.parse_args(argv)
    data_dir: Path = args.data_dir.absolute()
    console = Console(soft_wrap=True)
    if args.detach:
        return _up_detached(data_dir, args, console)
    try:
        return asyncio.run(_up_foreground(data_dir, args, console, view=not args.no_view))
    except KeyboardInterrupt:
        return 130


def _announce_moved(console: Console, plan: Plan) -> None:
    """Say which well-known ports were taken: the README's commands use them."""
    if plan.ports.moved:
        moved = ", ".join(f"{what} {want} -> {got}" for what, (want, got) in plan.ports.moved.items())
        console.print(
            "[yellow]well-known ports taken by other programs, others chosen "
            f"(kept in {plan.data_dir / 'ports.json'}):[/] {moved}; the README's commands need the ports "
            "printed below",
            highlight=False,
        )


def _prepare(data_dir: Path, args: argparse.Namespace) -> Plan:
    # Holds the CA key, the stores and every Secret: owner-only (docs/security.md).
    try:
        filemodes.secure_data_dir(data_dir, ("cloud", "nodes", "logs"), keep=data_dir.glob("nodes/*/edged"))
    except filemodes.FileModeError as exc:
        raise PlanError(str(exc)) from exc
    plan = Plan(
        data_dir,
        load_or_choose_ports(data_dir, well_known=not args.random_ports),
        examples=args.examples,
        mappers=args.mappers or "auto",
    )
    missing = plan.missing()
    if missing:
        raise PlanError("kubeshore up needs:\n  " + "\n  ".join(missing))
    plan.mapper_mode()  # --mappers=pods where Pods cannot run: said now, before anything starts
    return plan


async def _up_foreground(data_dir: Path, args: argparse.Namespace, console: Console, view: bool) -> int:
    state = read_state(data_dir)
    if supervisor_alive(state):
        console.print(
            f"kubeshore is already running from {data_dir} (supervisor pid {state['supervisor']['pid']})."
        )
        console.print(f"  {_kubeconfig_line(data_dir)}", highlight=False)
        console.print(f"Stop it with: {_kubeshore_command()} down --data-dir {data_dir}", highlight=False)
        if view:
            # Watching a detached platform: Ctrl-C leaves the view, not the platform.
            from up._view import live_view

            console.print("Ctrl-C leaves this view; the platform keeps running.")
            kubeconfig = Path(state.get("kubeconfig") or data_dir / "cloud" / "admin.kubeconfig")
            with contextlib.suppress(asyncio.CancelledError):
                await live_view(kubeconfig, lambda: "", console)
        return 0
    leftovers = live_processes(state)
    if leftovers:
        console.print(f"stopping what a previous run left behind: {', '.join(leftovers)}")
        await stop_recorded(data_dir)
    try:
        plan = _prepare(data_dir, args)
        _announce_moved(console, plan)
        plan.check_ports()
    except PlanError as exc:
        console.print(f"[red]error:[/] {exc}", highlight=False)
        return 1

    sup = Supervisor(data_dir)
    sup.claim()
    loop = asyncio.get_running_loop()
    # Ctrl-C (SIGINT to the whole foreground group), SIGTERM and SIGHUP set an event that this
    # coroutine waits for next to the platform's task, which is then cancelled until it is done: a
    # cancellation that an inner await swallows (Python 3.11's wait_for, when its inner task has just
    # finished) is sent again instead of being lost.
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        loop.add_signal_handler(sig, stop.set)
    code = 0
    try:
        code = await run_until(
            stop, _run(plan, sup, data_dir, args, console, view), lambda: console.print("stopping…")
        )
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(sig)
        # A second Ctrl-C while stopping must not leave services behind.
        with _ignoring_interrupts():
            await sup.stop_all()
            # containerd's shims outlive it by design; the Pods of a stopped platform go with it.
            await asyncio.to_thread(containerd.cleanup_all, data_dir / "runtime")
            sup.update(phase="stopped", ready=False, supervisor={})
    if code == 0:
        console.print(f"stopped; `{_kubeshore_command()} up --data-dir {data_dir}` resumes.", highlight=False)
    return code


async def run_until(stop: asyncio.Event, work: Coroutine[Any, Any, int], stopping: Callable[[], None]) -> int:
    """Run ``work`` until it returns or ``stop`` is set; then cancel it, again every second until it is
    done, and return 0. Returns ``work``'s result when it ends by itself."""
    body = asyncio.create_task(work)
    stopper = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({body, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if body.done():
            return 0 if body.cancelled() else body.result()
        stopping()
        while not body.done():
            body.cancel()
            await asyncio.wait({body}, timeout=1.0)
        return 0
    finally:
        stopper.cancel()


async def _run(
    plan: Plan, sup: Supervisor, data_dir: Path, args: argparse.Namespace, console: Console, view: bool
) -> int:
    """Start every step, then show the live view (or report failures) until cancelled."""
    steps = plan.steps(sup)
    try:
        started = time.monotonic()
        async with asyncio.timeout(args.timeout):
            for i, step in enumerate(steps, 1):
                label = f"[{i}/{len(steps)}] {step.title}"
                sup.update(phase=step.title, step=i, steps=len(steps))
                t0 = time.monotonic()
                if view:
                    with console.status(f"{label}…"):
                        await step.run()
                else:
                    console.print(f"{label}…", highlight=False)
                    await step.run()
                console.print(f"[green]✓[/] {label} ({time.monotonic() - t0:.1f} s)", highlight=False)
        sup.update(phase="running", ready=True, **describe(plan))
        console.print(f"ready in {time.monotonic() - started:.1f} s")
        _summary(console, plan)
        sup.watch()
        if view:
            from up._view import live_view

            console.print("Ctrl-C stops everything.")

            mode, why = plan.mapper_mode()
            mappers = escape(f"mappers as {'Pods' if mode == 'pods' else 'host processes'}: {why}")

            def header() -> str:
                failed = "".join(f"\n[red]{msg}[/]" for msg in sup.failures.values())
                return f"[dim]{_kubeconfig_line(data_dir)}\n{mappers}[/]{failed}"

            await live_view(plan.kubeconfig, header, console)
        else:
            reported: set[str] = set()
            while True:
                await asyncio.sleep(1)
                for name, msg in sup.failures.items():
                    if name not in reported:
                        reported.add(name)
                        console.print(f"[red]{msg}[/]", highlight=False)
    except TimeoutError:
        console.print(
            f"[red]error:[/] not ready within {args.timeout:.0f} s; logs are in {data_dir / LOG_DIR}"
        )
        return 1
    except (ProcessFailed, PlanError, OSError) as exc:
        console.print(f"[red]error:[/] {exc}", highlight=False)
        return 1
    except Exception as exc:  # the user must still get every process stopped
        console.print(f"[red]error:[/] {type(exc).__name__}: {exc}", highlight=False)
        return 1
    return 0


def _kubeshore_command() -> str:
    """How the user runs kubeshore: bare when it is on PATH, else the path of this venv's script."""
    script = Path(sys.executable).parent / "kubeshore"
    found = shutil.which("kubeshore")
    if found and Path(found).resolve() == script.resolve():
        return "kubeshore"
    return str(script) if script.exists() else f"{sys.executable} -m kubeshore.cli"


@contextlib.contextmanager
def _ignoring_interrupts():  # type: ignore[no-untyped-def]
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _up_detached(data_dir: Path, args: argparse.Namespace, console: Console) -> int:
    state = read_state(data_dir)
    if supervisor_alive(state):
        console.print(f"kubeshore is already running from {data_dir}.")
        console.print(_kubeconfig_line(data_dir), highlight=False, soft_wrap=True)
        return 0
    try:
        _announce_moved(console, _prepare(data_dir, args))
    except PlanError as exc:
        console.print(f"[red]error:[/] {exc}", highlight=False)
        return 1
    (data_dir / LOG_DIR).mkdir(parents=True, exist_ok=True)
    log_path = data_dir / LOG_DIR / "up.log"
    argv = [sys.executable, "-m", "kubeshore.cli", "up", "--data-dir", str(data_dir), "--no-view"]
    argv += ["--examples", str(args.examples)]
    argv += ["--timeout", str(args.timeout)]
    if args.mappers:
        argv += ["--mappers", args.mappers]
    with log_path.open("ab") as log:
        child = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    deadline = time.monotonic() + args.timeout
    with console.status("starting…") as status:
        while True:
            time.sleep(0.2)
            state = read_state(data_dir)
            mine = (state.get("supervisor") or {}).get("pid") == child.pid
            if mine and state.get("ready"):
                break
            if mine and state.get("phase") not in (None, "starting"):
                status.update(f"[{state.get('step', '?')}/{state.get('steps', '?')}] {state['phase']}…")
            if child.poll() is not None:
                console.print(f"[red]kubeshore up failed[/] (exit {child.returncode}); end of {log_path}:")
                console.print(log_tail(log_path, 30), highlight=False, markup=False)
                return 1
            if time.monotonic() > deadline:
                console.print(f"[red]not ready within {args.timeout:.0f} s[/]; stopping. End of {log_path}:")
                console.print(log_tail(log_path, 30), highlight=False, markup=False)
                asyncio.run(stop_recorded(data_dir))
                return 1
    plan = Plan(data_dir, load_or_choose_ports(data_dir), mappers=args.mappers or "auto")
    _summary(console, plan)
    console.print(
        f"Running in the background (pid {child.pid}); stop it with: "
        f"{_kubeshore_command()} down --data-dir {data_dir}",
        highlight=False,
    )
    return 0


# --- down -------------------------------------------------------------------------------------------


def down(argv: list[str]) -> int:
    args = _parser("down").parse_args(argv)
    data_dir: Path = args.data_dir.absolute()
    state = read_state(data_dir)
    if not state:
        print(f"nothing was started from {data_dir}")
        return 0
    running = list(live_processes(state))
    stopped = asyncio.run(stop_recorded(data_dir))
    containerd.cleanup_all(data_dir / "runtime")
    left = live_processes(state)
    if left:
        print(f"could not stop: {', '.join(f'{n} (pgid {pid})' for n, pid in left.items())}", file=sys.stderr)
        return 1
    if not stopped:
        print(f"nothing was running from {data_dir}")
    else:
        print(f"stopped {', '.join(running) or 'kubeshore up'}; `kubeshore up --data-dir {data_dir}` resumes")
    return 0
