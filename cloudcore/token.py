"""``kubeshore token create (--data-dir DIR | --kubeconfig FILE)``: print a join token.

Reads cloudcore's CA from the cluster (Secret ``kubeedge/casecret``) and prints the stored token
(``kubeedge/tokensecret``) while it is valid for long enough, otherwise a fresh stored one.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="kubeshore token", description="manage edge join tokens")
    sub = p.add_subparsers(dest="action", required=True)
    create = sub.add_parser("create", help="print a join token")
    where = create.add_mutually_exclusive_group(required=True)
    where.add_argument("--data-dir", type=Path, help="standalone cloudcore's data directory")
    where.add_argument("--kubeconfig", type=Path, help="kubeconfig of the cluster cloudcore uses")
    create.add_argument("--validity-hours", type=float, default=24.0)
    ns = p.parse_args(list(sys.argv[1:] if argv is None else argv))
    kubeconfig: Path = ns.kubeconfig or ns.data_dir / "admin.kubeconfig"
    if not kubeconfig.is_file():
        print(f"kubeshore token: {kubeconfig} does not exist (is cloudcore running?)", file=sys.stderr)
        return 1
    from cloudcore._identity import current_token, load_ca
    from kubeclient import ApiError, Kube

    kube = Kube.from_kubeconfig(str(kubeconfig), workers=1)
    try:
        ca = load_ca(kube)
        if ca is None:
            print("kubeshore token: no kubeedge/casecret in the cluster; start cloudcore", file=sys.stderr)
            return 1
        print(current_token(kube, ca, int(ns.validity_hours * 3600)).token)
    except (ApiError, OSError) as exc:
        print(f"kubeshore token: cannot read cloudcore's state from the cluster: {exc}", file=sys.stderr)
        return 1
    finally:
        kube.close()
    return 0
