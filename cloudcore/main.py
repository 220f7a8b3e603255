"""``cloudcore``: the cloud side of the edge channel.

cloudcore --kubeconfig FILE [flags]
cloudcore --standalone --data-dir DIR [flags]
cloudcore --config cloudcore.yaml        # the same keys as the flags, camelCase
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Sequence
from typing import Any

from kubeshore.config import ConfigError, load_config
from kubeshore.logs import add_logging_flags, setup_from_args

# flag -> config key (the YAML file uses the same keys)
_FLAGS: dict[str, tuple[str, type, str]] = {
    "--kubeconfig": ("kubeconfig", str, "kubeconfig of the Kubernetes API server to use"),
    "--data-dir": ("dataDir", str, "state directory (standalone: API server data, admin.kubeconfig)"),
    "--bind": ("bind", str, "address to listen on (default 0.0.0.0; 127.0.0.1 with --standalone)"),
    "--advertise-address": ("advertiseAddress", str, "extra name/IP for the server certificate (repeatable)"),
    "--websocket-port": ("websocketPort", int, "CloudHub websocket port (default 10000; 0 = any free port)"),
    "--https-port": ("httpsPort", int, "certificate server port (default 10002; 0 = any free port)"),
    "--apiserver-port": (
        "apiserverPort",
        int,
        "standalone API server port (default 6443; 0 = any free port)",
    ),
    "--webhook-port": (
        "webhookPort",
        int,
        "HTTPS port of the Device validating webhook (default: not served; 0 = any free port)",
    ),
    "--metrics-port": ("metricsPort", int, "/metrics, /healthz, /livez, /readyz port (default 9091)"),
    "--metrics-bind": ("metricsBind", str, "address the metrics port listens on (default 127.0.0.1)"),
    "--node-grace-period": ("nodeGracePeriod", float, "seconds of silence before a node is Ready=Unknown"),
    "--keepalive-timeout": ("keepaliveTimeout", float, "seconds of silence before a session is closed"),
    "--node-status-update-period": ("nodeStatusUpdatePeriod", float, "seconds between heartbeat writes"),
    "--node-limit": ("nodeLimit", int, "maximum connected nodes (default 1000)"),
    "--max-frame-bytes": ("maxFrameBytes", int, "largest accepted websocket frame"),
    "--ack-timeout": ("ackTimeout", float, "seconds before an unacknowledged message is resent"),
    "--resync-period": ("resyncPeriod", float, "seconds between full consistency checks"),
}


def parse_args(argv: Sequence[str]) -> tuple[argparse.Namespace, dict[str, Any]]:
    p = argparse.ArgumentParser(prog="cloudcore", description="kubeshore cloudcore (KubeEdge-compatible)")
    p.add_argument("--config", help="YAML configuration file (same keys as the flags, camelCase)")
    p.add_argument("--standalone", action="store_true", default=None, help="run an embedded API server")
    add_logging_flags(p)
    for flag, (key, typ, help_text) in _FLAGS.items():
        if key == "advertiseAddress":
            p.add_argument(flag, dest=key, action="append", help=help_text)
        else:
            p.add_argument(flag, dest=key, type=typ, help=help_text)
    ns = p.parse_args(list(argv))
    overrides: dict[str, Any] = {key: getattr(ns, key) for key, _, _ in _FLAGS.values()}
    overrides["standalone"] = ns.standalone
    return ns, overrides


def main(argv: Sequence[str] | None = None) -> int:
    ns, overrides = parse_args(sys.argv[1:] if argv is None else argv)
    setup_from_args(ns)
    from kubeshore.filemodes import private_umask

    private_umask()
    from cloudcore.config import CloudCoreConfig

    try:
        cfg = load_config(CloudCoreConfig, ns.config, overrides)
    except ConfigError as exc:
        print(f"cloudcore: {exc}", file=sys.stderr)
        return 2
    from cloudcore._app import run

    async def runner() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await run(cfg, stop)

    try:
        asyncio.run(runner())
    except (OSError, RuntimeError) as exc:  # FileModeError is an OSError
        print(f"cloudcore: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
