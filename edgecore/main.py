"""``edgecore --config DIR/edgecore.yaml``: run an edge node in the foreground."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kubeshore.config import ConfigError, load_config
from kubeshore.logs import add_logging_flags, setup_from_args

if TYPE_CHECKING:
    from edgecore.config import EdgeCoreConfig


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="edgecore", description="kubeshore edgecore (KubeEdge-compatible)")
    p.add_argument(
        "--config",
        required=True,
        type=Path,
        help="edgecore.yaml written by 'kubeshore join', or KubeEdge's own edgecore.yaml",
    )
    p.add_argument("--metrics-port", type=int, help="overrides metrics.port (0 = any free port)")
    add_logging_flags(p)
    ns = p.parse_args(list(sys.argv[1:] if argv is None else argv))
    setup_from_args(ns)
    from kubeshore.filemodes import FileModeError, private_umask, secure_data_dir, secure_tree

    private_umask()
    from edgecore.config import EdgeCoreConfig

    try:
        cfg = load_config(EdgeCoreConfig, ns.config, {"metrics": {"port": ns.metrics_port}})
    except ConfigError as exc:
        print(f"edgecore: {exc}", file=sys.stderr)
        return 2
    if cfg.edge_hub.token and not cfg.certs.cert_file.is_file():
        failure = _bootstrap_certificates(cfg)
        if failure:
            print(f"edgecore: {failure}", file=sys.stderr)
            return 1
    for label, path in (
        ("CA", cfg.certs.ca_file),
        ("certificate", cfg.certs.cert_file),
        ("key", cfg.certs.key_file),
    ):
        if not path.is_file():
            print(
                f"edgecore: {label} file {path} does not exist (run 'kubeshore join' first)", file=sys.stderr
            )
            return 2
    try:
        # join's files, wherever the configuration puts them; Pod volumes (edged) keep their modes.
        secure_data_dir(cfg.data_dir, ("certs", "metaserver.token", "edgecore.json"))
        db = cfg.database.path
        for path in (
            cfg.certs.key_file,
            ns.config,
            db,
            *(db.with_name(db.name + s) for s in ("-wal", "-shm")),
        ):
            secure_tree(path)
    except FileModeError as exc:  # another owner's file, a read-only file system: one line, no traceback
        print(f"edgecore: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(
            f"edgecore: cannot restrict the modes of {exc.filename or path}: {exc.strerror}", file=sys.stderr
        )
        return 1

    async def runner() -> None:
        from edgecore._node import EdgeNode

        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        node = EdgeNode(cfg)
        await node.start()
        if cfg.state_file is not None:
            state: dict[str, Any] = {"pid": os.getpid(), **node.ports()}
            tmp = cfg.state_file.with_suffix(".tmp")
            tmp.write_text(json.dumps(state) + "\n")
            tmp.replace(cfg.state_file)
        try:
            await stop.wait()
        finally:
            await node.stop()

    from edgecore.metamanager import StoreOpenError

    try:
        asyncio.run(runner())
    except (OSError, StoreOpenError) as exc:
        # One line, no traceback: these are the operator's to fix (paths, permissions, disk).
        print(f"edgecore: {exc}", file=sys.stderr)
        return 1
    return 0


def _bootstrap_certificates(cfg: EdgeCoreConfig) -> str | None:
    """Request the node certificate with the configured join token, as KubeEdge's edgecore does on its
    first start; returns what failed, or None."""
    from edgecore.edgehub import Address, CertificateRequestError
    from edgecore.join import obtain_certificates
    from kubeshore.jointoken import JoinToken, TokenError

    assert cfg.edge_hub.token is not None
    try:
        token = JoinToken.parse(cfg.edge_hub.token)
        obtain_certificates(
            Address.parse(cfg.edge_hub.https_server),
            cfg.node_name,
            token,
            cfg.certs.ca_file,
            cfg.certs.cert_file,
            cfg.certs.key_file,
        )
    except TokenError as exc:
        return f"edgeHub.token: {exc}"
    except (CertificateRequestError, ValueError, OSError) as exc:
        return f"cannot obtain the node certificate with the configured token: {exc}"
    return None


if __name__ == "__main__":
    raise SystemExit(main())
