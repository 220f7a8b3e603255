"""``kubeshore mapper``: run a mapper, or scaffold a new mapper project.

kubeshore mapper run virtual|modbus|opcua|<python.module>[:Class]
                     [--node NAME] [--data-dir DIR] [--edgecore-sock PATH] [--socket PATH]
                     [--rest-port PORT] [--config FILE] [--name NAME] [--log-level LEVEL]
kubeshore mapper new NAME --protocol PROTO [--dir DIR]
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import os
import sys
from pathlib import Path
from typing import Any

BUILTIN = {"virtual": "mappers.virtual", "modbus": "mappers.modbus", "opcua": "mappers.opcua"}


def load_driver(spec: str) -> type[Any]:
    """``virtual``, ``pkg.module`` (its ``Driver``, or its only Driver subclass) or ``pkg.module:Class``."""
    from mappers.sdk.driver import Driver

    module_name, _, attr = BUILTIN.get(spec, spec).partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise SystemExit(f"kubeshore mapper: cannot import {module_name!r}: {exc}") from None
    if attr:
        found = getattr(module, attr, None)
        if not (inspect.isclass(found) and issubclass(found, Driver)):
            raise SystemExit(f"kubeshore mapper: {spec!r} is not a mappers.sdk.Driver subclass")
        return found
    named = getattr(module, "Driver", None)
    if inspect.isclass(named) and issubclass(named, Driver) and named is not Driver:
        return named
    classes = [
        c for c in vars(module).values() if inspect.isclass(c) and issubclass(c, Driver) and c is not Driver
    ]
    if len(classes) != 1:
        raise SystemExit(
            f"kubeshore mapper: {module_name} must define one mappers.sdk.Driver subclass"
            f" (or name it Driver); found {len(classes)}"
        )
    return classes[0]


def node_socket(node: str | None, data_dir: str | None) -> str:
    """edgecore's DMI socket as the node's edgecore.yaml names it.

    ``data_dir`` is the node's data directory (``kubeshore join --data-dir``, where edgecore.yaml is)
    or, with ``node``, a ``kubeshore up`` data directory (default ``$KUBESHORE_DATA_DIR`` or
    ``./.kubeshore``), whose ``nodes/<node>/`` holds it.
    """
    import yaml

    base = Path(data_dir or os.environ.get("KUBESHORE_DATA_DIR") or ".kubeshore")
    candidates = [base / "edgecore.yaml"] if node is None else [base / "nodes" / node / "edgecore.yaml"]
    if node is not None and data_dir is not None:
        candidates.append(base / "edgecore.yaml")
    config = next((c for c in candidates if c.is_file()), None)
    if config is None:
        raise SystemExit(
            "kubeshore mapper: no edgecore.yaml at "
            + " or ".join(str(c.absolute()) for c in candidates)
            + ("; is the node joined (kubeshore join) or kubeshore up running from here?")
        )
    try:
        socket = ((yaml.safe_load(config.read_text()) or {}).get("dmi") or {}).get("socket")
    except yaml.YAMLError as exc:
        raise SystemExit(f"kubeshore mapper: {config}: {exc}") from None
    if not socket:
        raise SystemExit(f"kubeshore mapper: {config} names no dmi.socket")
    path = Path(str(socket))
    return str(path if path.is_absolute() else config.parent / path)


def _run(args: argparse.Namespace) -> int:
    from kubeshore.config import ConfigError, load_config
    from mappers.sdk.app import run
    from mappers.sdk.config import MapperConfig

    driver = load_driver(args.driver)
    edgecore_sock = args.edgecore_sock
    if args.node or args.data_dir:
        if edgecore_sock:
            print(
                "kubeshore mapper: --edgecore-sock and --node/--data-dir exclude each other", file=sys.stderr
            )
            return 2
        edgecore_sock = node_socket(args.node, args.data_dir)
    overrides = {
        "grpc_server": {"socket_path": args.socket},
        "common": {"edgecore_sock": edgecore_sock, "name": args.name},
        "rest": {"port": args.rest_port},
        "log_level": args.log_level or os.environ.get("KUBESHORE_LOG_LEVEL"),
    }
    try:
        config = load_config(MapperConfig, args.config, overrides)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    try:
        run(driver, config, log_format=args.log_format or os.environ.get("KUBESHORE_LOG_FORMAT"))
    except (RuntimeError, ValueError, OSError) as exc:
        print(f"kubeshore mapper: {exc}", file=sys.stderr)
        return 1
    return 0


def _new(args: argparse.Namespace) -> int:
    from mappers._scaffold import ScaffoldError, scaffold

    try:
        path = scaffold(args.name, args.protocol, args.dir)
    except ScaffoldError as exc:
        print(f"kubeshore mapper new: {exc}", file=sys.stderr)
        return 2
    print(f"created {path}\nnext: cd {path} && python -m pytest -q")
    return 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="kubeshore mapper", description="Run or scaffold a device mapper.")
    sub = parser.add_subparsers(dest="command", required=True)
    run_p = sub.add_parser("run", help="run a mapper until SIGINT/SIGTERM")
    run_p.add_argument("driver", help="virtual, modbus, opcua, or a module (pkg.mod or pkg.mod:Class)")
    run_p.add_argument(
        "--node",
        help="a node of `kubeshore up` (or joined with --data-dir): use the DMI socket its config names",
    )
    run_p.add_argument(
        "--data-dir",
        help="the node's data dir (with edgecore.yaml), or with --node a `kubeshore up` data dir",
    )
    run_p.add_argument("--edgecore-sock", help="edgecore's DMI socket (default /etc/kubeedge/dmi.sock)")
    run_p.add_argument("--socket", help="this mapper's DMI socket (default <name>.sock beside edgecore's)")
    run_p.add_argument("--rest-port", type=int, help="REST API port (default: any free port, printed)")
    run_p.add_argument("--config", help="mapper configuration YAML")
    run_p.add_argument("--name", help="mapper name announced to edgecore")
    run_p.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    run_p.add_argument(
        "--log-format", choices=["text", "json"], help="default: text on a terminal, else json"
    )
    run_p.set_defaults(func=_run)
    new_p = sub.add_parser("new", help="scaffold a mapper project")
    new_p.add_argument("name", help="mapper name, e.g. acme-sensor")
    new_p.add_argument("--protocol", required=True, help="protocol name devices use (protocolName)")
    new_p.add_argument("--dir", default=".", help="parent directory (default: current)")
    new_p.set_defaults(func=_new)
    args = parser.parse_args(argv)
    result: int = args.func(args)
    return result
