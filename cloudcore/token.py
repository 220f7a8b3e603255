"""``kubeshore token create (--data-dir DIR | --kubeconfig FILE) [--node NAME]``: print a join token.

Reads cloudcore's CA from the cluster (Secret ``kubeedge/casecret``) and prints the stored token
(``kubeedge/tokensecret``) while it is valid for long enough, otherwise a fresh stored one. That
token obtains a certificate for any node name that has none yet. With ``--node NAME`` it prints a
token for that one name only, also when the name already has a certificate (a replaced machine, a
lost key, a certificate expired while offline); it is not stored, and is valid 1 hour by default.
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
    create.add_argument(
        "--validity-hours", type=float, help="how long the token is valid (default 24; 1 with --node)"
    )
    create.add_argument("--node", help="a token for this node name only, even if it has a certificate")
    ns = p.parse_args(list(sys.argv[1:] if argv is None else argv))
    kubeconfig: Path = ns.kubeconfig or ns.data_dir / "admin.kubeconfig"
    if not kubeconfig.is_file():
        print(f"kubeshore token: {kubeconfig} does not exist (is cloudcore running?)", file=sys.stderr)
        return 1
    from cloudcore._identity import current_token, load_ca
    from kubeclient import ApiError, Kube
    from kubeshore import pki
    from kubeshore.jointoken import create_token

    kube = Kube.from_kubeconfig(str(kubeconfig), workers=1)
    try:
        ca = load_ca(kube)
        if ca is None:
            print("kubeshore token: no kubeedge/casecret in the cluster; start cloudcore", file=sys.stderr)
            return 1
        if ns.node is not None:
            hours = 1.0 if ns.validity_hours is None else ns.validity_hours
            der = pki.cert_to_der(ca.cert), pki.key_to_der(ca.key)
            print(create_token(*der, int(hours * 3600), node=ns.node))
        else:
            hours = 24.0 if ns.validity_hours is None else ns.validity_hours
            print(current_token(kube, ca, int(hours * 3600)).token)
    except (ApiError, OSError) as exc:
        print(f"kubeshore token: cannot read cloudcore's state from the cluster: {exc}", file=sys.stderr)
        return 1
    finally:
        kube.close()
    return 0
