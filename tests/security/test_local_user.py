"""A local unprivileged user (``nobody``, through ``setpriv``) against a real standalone cloudcore, a
joined node and its running edgecore: no file of the data directories is readable, and the MetaServer
serves Secrets only to callers holding the node's MetaServer token (which ``nobody`` cannot read)."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _peers import Kubectl
from _stack import Processes, wait_for

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None, reason="needs root and setpriv"),
]
BIN = Path(sys.executable).parent
NOBODY = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]

# Runs as nobody with the system Python (the venv may not be readable by nobody): tries to read each
# path given on stdin and prints those it could read.
_READER = """
import sys
readable = []
for path in sys.stdin.read().split("\\0"):
    if not path:
        continue
    try:
        with open(path, "rb") as f:
            f.read(1)
        readable.append(path)
    except OSError:
        pass
print("\\n".join(readable))
"""


class Site(Kubectl):
    def __init__(self, base: Path, procs: Processes) -> None:
        super().__init__(str(base / "cloud" / "admin.kubeconfig"))
        self.base = base
        self.cloud = base / "cloud"
        self.edge = base / "edge"
        self.procs = procs
        self.token = ""

    def edge_ports(self) -> dict[str, Any]:
        return dict(json.loads((self.edge / "edgecore.json").read_text()))


@pytest.fixture(scope="module")
def site() -> Iterator[Site]:
    # A world-traversable parent, as /var/lib is: only the data directories' own modes protect them.
    base = Path(tempfile.mkdtemp(prefix="kubeshore-security-", dir="/tmp"))
    base.chmod(0o755)
    procs = Processes(base)
    s = Site(base, procs)
    try:
        procs.start(
            "cloudcore", "cloudcore", "--standalone", "--data-dir", str(s.cloud), "--log-level", "debug",
            "--websocket-port", "0", "--https-port", "0", "--apiserver-port", "0", "--metrics-port", "0",
        )  # fmt: skip
        wait_for((s.cloud / "cloudcore.json").exists, 90, "cloudcore.json")
        ports = json.loads((s.cloud / "cloudcore.json").read_text())
        token = subprocess.run(
            [str(BIN / "kubeshore"), "token", "create", "--data-dir", str(s.cloud)],
            capture_output=True, text=True, check=True, timeout=60,
        ).stdout.strip()  # fmt: skip
        subprocess.run(
            [str(BIN / "kubeshore"), "join", "--cloudcore", f"127.0.0.1:{ports['websocketPort']}",
             "--https-port", str(ports["httpsPort"]), "--token", token, "--node-name", "edge-s",
             "--data-dir", str(s.edge), "--metaserver-port", "0", "--metrics-port", "0",
             "--mqtt-url", "tcp://127.0.0.1:9"],
            capture_output=True, text=True, check=True, timeout=60,
        )  # fmt: skip
        s.token = token
        procs.start("edgecore", "edgecore", "--config", str(s.edge / "edgecore.yaml"), "--log-level", "debug")
        wait_for((s.edge / "edgecore.json").exists, 60, "edgecore.json")
        yield s
    finally:
        procs.stop_all()
        shutil.rmtree(base, ignore_errors=True)


def _as_nobody(*argv: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*NOBODY, *argv], input=stdin, capture_output=True, text=True, timeout=60, cwd="/")


def _everything(root: Path) -> list[Path]:
    return [Path(top) / n for top, dirs, files in os.walk(root) for n in [*dirs, *files]]


def test_nobody_reads_nothing_in_the_data_dirs(site: Site) -> None:
    wait_for(lambda: (site.edge / "edgecore.db").exists(), 30, "edgecore.db")
    paths = [site.cloud, site.edge, *_everything(site.cloud), *_everything(site.edge)]
    names = {p.name for p in paths}
    # The secrets of the table: the store with kubeedge/casecret, the edge store, the node key.
    assert {"apiserver.db", "edgecore.db", "server.key", "ca.key", "admin.kubeconfig"} <= names, names
    got = _as_nobody("/usr/bin/python3", "-c", _READER, stdin="\0".join(str(p) for p in paths))
    assert got.returncode == 0, got.stderr
    assert got.stdout.strip() == "", f"readable by nobody:\n{got.stdout}"
    wide = []
    for p in paths:
        st = os.lstat(p)
        if stat.S_ISSOCK(st.st_mode) or stat.S_ISLNK(st.st_mode):
            continue
        if stat.S_IMODE(st.st_mode) & 0o077:
            wide.append(f"{p} {stat.S_IMODE(st.st_mode):o}")
    assert not wide, wide


def _get(url: str, token: str | None = None) -> tuple[int, str]:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_metaserver_serves_secrets_only_with_the_node_token(site: Site) -> None:
    site.kubectl("create", "secret", "generic", "db", "--from-literal=password=hunter2")
    pod = {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "app", "namespace": "default"},
        "spec": {"nodeName": "edge-s", "containers": [{"name": "c", "image": "x"}],
                 "volumes": [{"name": "s", "secret": {"secretName": "db"}}]},
    }  # fmt: skip
    site.kubectl("apply", "-f", "-", stdin=json.dumps(pod))
    base = f"http://127.0.0.1:{site.edge_ports()['metaServerPort']}"
    url = f"{base}/api/v1/namespaces/default/secrets/db"
    token_file = site.edge / "metaserver.token"
    token = token_file.read_text().strip()
    _, body = wait_for(lambda: (r := _get(url, token))[0] == 200 and r, 60, "secret on the edge")
    assert "aHVudGVyMg==" in body  # the owner with the token reads it

    # nobody: without the token, with a guessed one, and trying to read the token file.
    script = (
        "import sys, urllib.request, urllib.error\n"
        "for t in (None, 'guess'):\n"
        "    h = {'Authorization': 'Bearer ' + t} if t else {}\n"
        "    try:\n"
        "        r = urllib.request.urlopen(urllib.request.Request(sys.argv[1], headers=h), timeout=10)\n"
        "        print(r.status, r.read().decode())\n"
        "    except urllib.error.HTTPError as e:\n"
        "        print(e.code, e.read().decode())\n"
    )
    got = _as_nobody("/usr/bin/python3", "-c", script, url)
    assert got.returncode == 0, got.stderr
    lines = got.stdout.strip().splitlines()
    assert lines[0].startswith("403") and "cannot get resource" in lines[0], lines
    assert lines[1].startswith("403"), lines  # a token that is not the node's proves nothing
    assert "aHVudGVyMg==" not in got.stdout
    for listing in (f"{base}/api/v1/secrets", f"{base}/api/v1/namespaces/default/secrets?watch=true"):
        assert _as_nobody("/usr/bin/python3", "-c", script, listing).stdout.startswith("403")
    read = _as_nobody("/usr/bin/cat", str(token_file))
    assert read.returncode != 0 and "Permission denied" in read.stderr
    # Everything else stays open to local callers, as with KubeEdge's MetaServer.
    assert _get(f"{base}/api/v1/namespaces/default/pods/app")[0] == 200
    assert _get(f"{base}/api/v1/namespaces/default/pods/app", "a-service-account-token")[0] == 200


def _listening(pid: int) -> set[str]:
    """Local addresses (hex, as /proc/net/tcp shows them) of the sockets ``pid`` listens on."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        target = os.readlink(fd) if fd.is_symlink() else ""
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    out = set()
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            f = line.split()
            if f[3] == "0A" and f[9] in inodes:  # LISTEN
                out.add(f[1].rsplit(":", 1)[0])
    return out


def test_standalone_cloudcore_and_edgecore_listen_on_loopback_only(site: Site) -> None:
    for name in ("cloudcore", "edgecore"):
        addresses = _listening(site.procs.procs[name].pid)
        assert addresses, name
        # 127.0.0.1 as /proc/net/tcp writes it (little-endian hex); nothing on 0.0.0.0 or ::
        assert addresses == {"0100007F"}, (name, addresses)


def test_no_secret_in_any_log_at_debug_level(site: Site) -> None:
    """Runs after the MetaServer test: the Secret has travelled cloud -> edge -> MetaServer by now."""
    ca_key = site.kubectl("get", "secret", "-n", "kubeedge", "casecret", "-o", "jsonpath={.data.cakeydata}")
    secrets = {
        "join token": site.token.split(".", 1)[1],
        "CA key": ca_key,
        "Secret value": "aHVudGVyMg==",
        "Secret value (decoded)": "hunter2",
        "MetaServer token": (site.edge / "metaserver.token").read_text().strip(),
    }
    logs = {name: site.procs.log(name) for name in ("cloudcore", "edgecore")}
    assert "DEBUG" in logs["cloudcore"].upper()
    for what, value in secrets.items():
        assert value
        for name, text in logs.items():
            assert value not in text, f"{what} in {name}'s log"


def test_rejoin_under_a_taken_name_needs_a_token_for_that_node(site: Site) -> None:
    ports = json.loads((site.cloud / "cloudcore.json").read_text())

    def join(token: str, data: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(BIN / "kubeshore"), "join", "--cloudcore", f"127.0.0.1:{ports['websocketPort']}",
             "--https-port", str(ports["httpsPort"]), "--token", token, "--node-name", "edge-s",
             "--data-dir", str(data)],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip

    again = join(site.token, site.base / "thief")
    assert again.returncode == 1 and "already has a certificate" in again.stderr, again.stderr
    assert not (site.base / "thief" / "certs" / "server.crt").exists()
    node_token = subprocess.run(
        [str(BIN / "kubeshore"), "token", "create", "--data-dir", str(site.cloud), "--node", "edge-s"],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout.strip()  # fmt: skip
    assert node_token != site.token
    replaced = join(node_token, site.base / "replacement")
    assert replaced.returncode == 0, replaced.stderr
