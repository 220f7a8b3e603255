"""``kubeshore join``: obtain this node's certificate from cloudcore and write ``DIR/edgecore.yaml``.

    kubeshore join --cloudcore HOST:PORT --token TOKEN --node-name NAME --data-dir DIR
                   [--https-port P] [--metaserver-port P] [--metrics-port P]
                   [--mqtt-url URL] [--mqtt-username USER --mqtt-password-file FILE]
                   [--dmi-socket PATH]

The token may come from $KUBESHORE_JOIN_TOKEN instead (other users see arguments in ps).
HOST:PORT is cloudcore's websocket address; certificates come from HOST:--https-port (default 10002).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from edgecore.config import (
    CertsConfig,
    DatabaseConfig,
    DmiConfig,
    EdgeCoreConfig,
    EdgedConfig,
    EdgeHubConfig,
    EventBusConfig,
    MetaServerConfig,
    MetricsConfig,
    TailoredKubeletConfig,
)
from edgecore.edgehub import (
    Address,
    CertificateRequestError,
    fetch_ca,
    request_certificate,
    write_certificate,
)
from kubeshore import filemodes, pki
from kubeshore.config import dump_config
from kubeshore.jointoken import JoinToken, TokenError

DEFAULT_HTTPS_PORT = 10002
TOKEN_ENV = "KUBESHORE_JOIN_TOKEN"


def obtain_certificates(
    https_addr: Address, node_name: str, token: JoinToken, ca_file: Path, cert_file: Path, key_file: Path
) -> None:
    """Fetch the CA (checked against the token's hash) and a node certificate requested with the token;
    write them to the given files. Raises ``CertificateRequestError`` saying what failed."""
    ca_der = fetch_ca(https_addr)
    if not token.matches_ca(ca_der):
        raise CertificateRequestError(
            f"the CA served by {https_addr} does not match the token's CA hash: "
            "wrong token or wrong cloudcore"
        )
    from cryptography import x509

    ca_pem = pki.cert_to_pem(x509.load_der_x509_certificate(ca_der))
    cert_pem, key_pem = request_certificate(https_addr, node_name, ca_pem, bearer=token.jwt)
    ca_file.parent.mkdir(parents=True, exist_ok=True)
    ca_file.write_bytes(ca_pem)
    write_certificate(cert_file, key_file, cert_pem, key_pem)


def _edged_config(endpoint: str | None, cgroup_driver: str, cgroup_root: str) -> EdgedConfig:
    if not endpoint:
        return EdgedConfig()
    return EdgedConfig(
        enable=True,
        tailored_kubelet_config=TailoredKubeletConfig(
            container_runtime_endpoint=endpoint, cgroup_driver=cgroup_driver, cgroup_root=cgroup_root
        ),
    )


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="kubeshore join", description="join this machine to cloudcore as an edge node"
    )
    p.add_argument("--cloudcore", required=True, help="cloudcore websocket address HOST:PORT")
    p.add_argument(
        "--token",
        help=f"join token from 'kubeshore token create' (or ${TOKEN_ENV}: other users see arguments in ps)",
    )
    p.add_argument("--node-name", required=True)
    p.add_argument("--data-dir", required=True, type=Path, help="where certificates, store and config live")
    p.add_argument(
        "--https-port", type=int, default=DEFAULT_HTTPS_PORT, help="certificate port (default 10002)"
    )
    p.add_argument("--metaserver-port", type=int, default=10550)
    p.add_argument(
        "--metrics-port", type=int, default=10352, help="/metrics and health port on 127.0.0.1 (0 = any free)"
    )
    p.add_argument("--mqtt-url", default="tcp://127.0.0.1:1883")
    p.add_argument("--mqtt-username", help="edgecore's MQTT user name (eventBus mqttUsername)")
    p.add_argument(
        "--mqtt-password-file",
        type=Path,
        help="file holding edgecore's MQTT password (not an argument: ps shows those)",
    )
    p.add_argument("--dmi-socket", type=Path, help="DMI unix socket (default DIR/dmi.sock)")
    p.add_argument(
        "--remote-runtime-endpoint",
        help="CRI socket (e.g. unix:///run/containerd/containerd.sock): run this node's Pods with edged",
    )
    p.add_argument("--cgroupdriver", choices=("cgroupfs", "systemd"), default="cgroupfs")
    p.add_argument(
        "--cgroup-root",
        default="/",
        help="cgroup under which this node's Pod cgroups live (<root>/kubepods/pod<uid>; default /)",
    )
    ns = p.parse_args(list(sys.argv[1:] if argv is None else argv))

    def fail(reason: str, code: int = 1) -> int:
        print(f"kubeshore join: {reason}", file=sys.stderr)
        return code

    try:
        ws_addr = Address.parse(ns.cloudcore)
    except ValueError as exc:
        return fail(f"--cloudcore: {exc}", 2)
    text = ns.token or os.environ.get(TOKEN_ENV, "")
    if not text:
        return fail(f"a join token is required: --token TOKEN or ${TOKEN_ENV}", 2)
    try:
        token = JoinToken.parse(text)
    except TokenError as exc:
        return fail(f"--token: {exc}", 2)
    password = ""
    if ns.mqtt_password_file is not None:
        if not ns.mqtt_username:
            return fail("--mqtt-password-file needs --mqtt-username", 2)
        try:
            password = ns.mqtt_password_file.read_text().strip()
        except OSError as exc:
            return fail(f"--mqtt-password-file: {exc}", 2)
    data_dir: Path = ns.data_dir.resolve()
    https_addr = Address(ws_addr.host, ns.https_port)
    filemodes.private_dir(data_dir)
    certs = filemodes.private_dir(data_dir / "certs")
    try:
        obtain_certificates(
            https_addr, ns.node_name, token, certs / "ca.crt", certs / "server.crt", certs / "server.key"
        )
    except CertificateRequestError as exc:
        return fail(str(exc))
    try:
        cfg = EdgeCoreConfig(
            node_name=ns.node_name,
            data_dir=data_dir,
            edge_hub=EdgeHubConfig(server=str(ws_addr), https_server=str(https_addr)),
            certs=CertsConfig(
                ca_file=certs / "ca.crt", cert_file=certs / "server.crt", key_file=certs / "server.key"
            ),
            database=DatabaseConfig(path=data_dir / "edgecore.db"),
            meta_server=MetaServerConfig(port=ns.metaserver_port),
            metrics=MetricsConfig(port=ns.metrics_port),
            event_bus=EventBusConfig(
                mqtt_url=ns.mqtt_url, mqtt_username=ns.mqtt_username or "", mqtt_password=password
            ),
            dmi=DmiConfig(socket=ns.dmi_socket or data_dir / "dmi.sock"),
            edged=_edged_config(ns.remote_runtime_endpoint, ns.cgroupdriver, ns.cgroup_root),
            state_file=data_dir / "edgecore.json",
        )
    except ValueError as exc:
        return fail(f"invalid settings: {exc}", 2)
    config_path = data_dir / "edgecore.yaml"
    dump_config(cfg, config_path)
    print(f"node {ns.node_name} joined cloudcore {ws_addr}; configuration written to {config_path}")
    print(f"next: edgecore --config {config_path}")
    return 0
