"""`kubeshore up`'s data directory and brokers: owner-only from the start, and a node's mosquitto (the
very configuration `up` writes, run as a real process) refuses clients without credentials and lets
only edgecore and mappers write twin topics."""

from __future__ import annotations

import argparse
import asyncio
import os
import stat
import subprocess
from pathlib import Path

import pytest
from _peers import wait_port

from edgecore.eventbus import MqttClient
from up import command
from up._plan import MQTT_ACL, Plan, PlanError, describe, load_or_choose_ports
from up.processes import Processes

TWIN = "$hw/events/device/default/lamp/twin/update"


def _mode(p: Path) -> int:
    return stat.S_IMODE(os.lstat(p).st_mode)


def test_prepare_makes_the_data_dir_owner_only(tmp_path: Path) -> None:
    data = tmp_path / "up"
    data.mkdir(mode=0o755)
    (data / "cloud").mkdir(mode=0o755)
    (data / "cloud" / "apiserver.db").write_bytes(b"")
    (data / "cloud" / "apiserver.db").chmod(0o644)
    args = argparse.Namespace(random_ports=True, examples=None, mappers=None)
    command._prepare(data, args)
    assert _mode(data) == 0o700 and _mode(data / "cloud") == 0o700
    assert _mode(data / "cloud" / "apiserver.db") == 0o600


async def test_up_broker_requires_credentials_and_applies_the_acl(tmp_path: Path) -> None:
    plan = Plan(tmp_path, load_or_choose_ports(tmp_path, well_known=False), examples=None)
    service = plan.mosquitto("edge-1")
    for f in ("passwd", "acl", "edgecore.password", "mapper.password", "app.password"):
        assert _mode(plan.mqtt_dir("edge-1") / f) == 0o600, f
    assert _mode(plan.mqtt_dir("edge-1")) == 0o700 and _mode(Path(service.argv[2])) == 0o600
    assert "edgecore:" in (plan.mqtt_dir("edge-1") / "passwd").read_text()
    password = plan.mqtt_password_file("edge-1", "edgecore").read_text()
    assert password not in (plan.mqtt_dir("edge-1") / "passwd").read_text()  # hashed
    join = plan.join_argv("edge-1")
    assert "--mqtt-password-file" in join and password not in join

    procs = Processes(tmp_path)
    procs.start("mosquitto", *service.argv)
    try:
        url = f"tcp://127.0.0.1:{plan.ports.nodes['edge-1'].mqtt}"
        await asyncio.to_thread(wait_port, plan.ports.nodes["edge-1"].mqtt)

        def creds(user: str) -> dict[str, str]:
            return {"username": user, "password": plan.mqtt_password_file("edge-1", user).read_text()}

        got: list[bytes] = []
        edge = MqttClient(url, "edgecore-edge-1", **creds("edgecore"))
        edge.subscribe("$hw/events/device/+/+/twin/update", lambda t, p: got.append(p))
        anonymous = MqttClient(url, "anonymous", max_backoff=0.2)
        app = MqttClient(url, "app", **creds("app"))
        mapper = MqttClient(url, "mapper", **creds("mapper"))
        for c in (edge, anonymous, app, mapper):
            await c.start()
        try:
            for c in (edge, app, mapper):
                await asyncio.wait_for(c.wait_connected(), 15)
            await asyncio.sleep(0.5)
            assert not anonymous.connected
            assert app.publish(TWIN, b"app", qos=1) and mapper.publish(TWIN, b"mapper", qos=1)
            for _ in range(300):  # up to 15 s on a loaded machine
                if got:
                    break
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.3)
            assert got == [b"mapper"]
        finally:
            for c in (edge, anonymous, app, mapper):
                await c.stop()
    finally:
        procs.stop_all()


def test_describe_names_the_app_password_file(tmp_path: Path) -> None:
    plan = Plan(tmp_path, load_or_choose_ports(tmp_path, well_known=False), examples=None)
    described = describe(plan)["nodes"]["edge-1"]["mqtt_app_password_file"]
    assert described == str(plan.mqtt_password_file("edge-1", "app"))


def test_one_acl_in_up_deploy_and_docs() -> None:
    root = Path(__file__).resolve().parents[2]

    def rules(text: str) -> list[str]:
        return [line for line in text.splitlines() if line.strip() and not line.startswith("#")]

    shipped = rules((root / "deploy" / "mosquitto" / "kubeshore.acl").read_text())
    assert rules(MQTT_ACL.read_text()) == shipped
    docs = (root / "docs" / "security.md").read_text()
    block = docs[docs.index("```text\nuser edgecore") + len("```text\n") :]
    assert rules(block[: block.index("```")]) == shipped


def test_up_passes_the_join_token_in_the_environment_not_the_arguments(tmp_path: Path) -> None:
    plan = Plan(tmp_path, load_or_choose_ports(tmp_path, well_known=False), examples=None)
    argv = plan.join_argv("edge-1")
    assert "--token" not in argv
    # join takes it from there, and says what is missing without it.
    env = {k: v for k, v in os.environ.items() if k != "KUBESHORE_JOIN_TOKEN"}
    out = subprocess.run(argv, capture_output=True, text=True, timeout=60, env=env)
    assert out.returncode == 2 and "KUBESHORE_JOIN_TOKEN" in out.stderr, out.stderr
    bad = subprocess.run(
        argv, capture_output=True, text=True, timeout=60, env={**env, "KUBESHORE_JOIN_TOKEN": "x"}
    )
    assert bad.returncode == 2 and "token must be" in bad.stderr, bad.stderr


def test_up_names_a_data_dir_it_cannot_make_private(tmp_path: Path) -> None:
    args = argparse.Namespace(random_ports=True, examples=None, mappers=None)
    with pytest.raises(PlanError, match="cannot be a data directory"):
        command._prepare(Path("/tmp"), args)
