"""Runs the NodeGroup and EdgeApplication controllers: ``nodegroup-controller --kubeconfig FILE``,
or in-process through ``run_controllers`` (as ``cloudcore --standalone`` does).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from kubeclient import Kube, load_api_client
from kubeshore.logs import add_logging_flags, setup_logging
from nodegroup.edgeapplication_controller import EdgeApplicationController
from nodegroup.nodegroup_controller import NodeGroupController

log = logging.getLogger("nodegroup")


async def run_controllers(
    api_client: Any,
    stop: asyncio.Event,
    resync_seconds: float = 60.0,
) -> None:
    """Run both controllers until ``stop`` is set. ``api_client`` may be a kubeconfig path."""
    if isinstance(api_client, str | Path):
        api_client = load_api_client(str(api_client))
    kube = Kube(api_client)
    nodegroups = NodeGroupController(kube)
    edgeapps = EdgeApplicationController(kube, resync_seconds=resync_seconds)
    tasks = [asyncio.create_task(nodegroups.run(stop)), asyncio.create_task(edgeapps.run(stop))]
    stopper = asyncio.create_task(stop.wait())
    try:
        done, _ = await asyncio.wait({*tasks, stopper}, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            if task is not stopper and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
    finally:
        stop.set()
        # Watches block in threads; closing their sockets lets those threads end now.
        kube.close_streams()
        for task in tasks:
            task.cancel()
        stopper.cancel()
        await asyncio.gather(*tasks, stopper, return_exceptions=True)
        kube.close()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nodegroup-controller", description="Run the NodeGroup and EdgeApplication controllers."
    )
    parser.add_argument("--kubeconfig", required=True, help="kubeconfig of the API server to reconcile")
    parser.add_argument("--resync-seconds", type=float, default=60.0, help="full resync period (default 60)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages (--log-level debug)")
    add_logging_flags(parser)
    return parser


async def _serve(kubeconfig: str, resync_seconds: float) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await run_controllers(kubeconfig, stop, resync_seconds=resync_seconds)


def cli(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    setup_logging("debug" if args.verbose else args.log_level, args.log_format)
    if not Path(args.kubeconfig).is_file():
        print(f"nodegroup-controller: kubeconfig {args.kubeconfig!r} does not exist", file=sys.stderr)
        return 2
    try:
        load_api_client(args.kubeconfig)
    except Exception as exc:
        print(f"nodegroup-controller: cannot use kubeconfig {args.kubeconfig!r}: {exc}", file=sys.stderr)
        return 2
    log.info("nodegroup-controller starting against %s", args.kubeconfig)
    asyncio.run(_serve(args.kubeconfig, args.resync_seconds))
    return 0


def main() -> None:
    raise SystemExit(cli())
