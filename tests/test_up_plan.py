"""What `kubeshore up` plans to start: ports kept across runs, joins skipped on resume, clear errors."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import yaml

from up._plan import (
    REPO_EXAMPLES,
    Plan,
    PlanError,
    Ports,
    load_or_choose_ports,
    port_in_use,
    preferred_ports,
)
from up.processes import Supervisor


def test_ports_are_chosen_once_and_kept(tmp_path: Path) -> None:
    first = load_or_choose_ports(tmp_path / "a", well_known=False)
    again = load_or_choose_ports(tmp_path / "a")
    assert first == again
    values = list(first.all().values())
    assert len(set(values)) == len(values) == 4 + 4 * 2 + 2  # + edge-2's Modbus simulator and mapper


def test_ports_added_later_are_chosen_once_and_taken_ones_announced(tmp_path: Path) -> None:
    import json
    import socket

    path = tmp_path / "ports.json"
    load_or_choose_ports(tmp_path, well_known=False)
    old = json.loads(path.read_text())
    for node in old["nodes"].values():  # a ports.json written before the Modbus simulator existed
        node.pop("modbus"), node.pop("modbus_rest")
    path.write_text(json.dumps(old))
    with socket.socket() as busy:  # the simulator's well-known port is taken
        busy.bind(("127.0.0.1", 1502)) if not port_in_use(1502) else None
        upgraded = load_or_choose_ports(tmp_path)
        assert upgraded.nodes["edge-2"].modbus not in (0, 1502)
        assert upgraded.moved["edge-2 modbus"] == (1502, upgraded.nodes["edge-2"].modbus)
    assert load_or_choose_ports(tmp_path).nodes["edge-2"].modbus == upgraded.nodes["edge-2"].modbus
    assert load_or_choose_ports(tmp_path).moved == {}  # announced when chosen, not on every resume


def test_well_known_ports_when_free(tmp_path: Path) -> None:
    ports = load_or_choose_ports(tmp_path)
    preferred = preferred_ports(("edge-1", "edge-2"))
    assert ports.websocket == 10000 or port_in_use(10000)
    assert ports.nodes["edge-1"].rest == 7777 or port_in_use(7777)
    values = list(ports.all().values())
    assert len(set(values)) == len(values)
    assert all(v not in preferred.values() or v == preferred[k] for k, v in _by_key(ports).items())


def _by_key(ports: Ports) -> dict[str, int]:
    out = {
        "apiserver": ports.apiserver,
        "websocket": ports.websocket,
        "https": ports.https,
        "metrics": ports.metrics,
    }
    for node, p in ports.nodes.items():
        out |= {f"{node}.mqtt": p.mqtt, f"{node}.metaserver": p.metaserver, f"{node}.rest": p.rest}
    return out


def test_resume_skips_join(tmp_path: Path) -> None:
    plan = Plan(tmp_path, load_or_choose_ports(tmp_path, well_known=False), examples=None)
    titles = [s.title for s in plan.steps(Supervisor(tmp_path))]
    assert "join edge-1" in titles and "join edge-2" in titles
    plan.edgecore_config("edge-1").parent.mkdir(parents=True, exist_ok=True)
    plan.edgecore_config("edge-1").write_text("{}")
    titles = [s.title for s in plan.steps(Supervisor(tmp_path))]
    assert "join edge-1" not in titles and "join edge-2" in titles
    assert titles[0].startswith("cloudcore") and titles[-1] == "node groups"


def test_join_and_services_use_the_documented_flags(tmp_path: Path) -> None:
    plan = Plan(tmp_path, load_or_choose_ports(tmp_path, well_known=False), examples=None)
    p = plan.ports
    argv = plan.join_argv("edge-2")
    assert argv[argv.index("--cloudcore") + 1] == f"127.0.0.1:{p.websocket}"
    assert argv[argv.index("--mqtt-url") + 1] == f"tcp://127.0.0.1:{p.nodes['edge-2'].mqtt}"
    assert argv[argv.index("--node-name") + 1] == "edge-2"
    if plan.pods_unavailable is None:
        # Each node's Pod cgroups under a root of its own, which `kubeshore down` removes whole.
        roots = {n: plan.join_argv(n)[plan.join_argv(n).index("--cgroup-root") + 1] for n in plan.nodes}
        assert roots["edge-2"] == plan.runtime("edge-2").cgroup_root.rstrip("/")
        assert len(set(roots.values())) == len(plan.nodes) and all("edge-" in r for r in roots.values())
    mapper = plan.mapper("edge-1").argv
    assert mapper[3:6] == ["mapper", "run", "virtual"] and "--edgecore-sock" in mapper
    core = plan.cloudcore().argv
    assert "--standalone" in core and core[core.index("--data-dir") + 1] == str(tmp_path / "cloud")
    broker = plan.mosquitto("edge-1")
    assert broker.argv[1:] == ["-c", str(tmp_path / "nodes" / "edge-1" / "mosquitto.conf")]
    conf = Path(broker.argv[2]).read_text()
    assert f"listener {p.nodes['edge-1'].mqtt} 127.0.0.1" in conf
    assert "set_tcp_nodelay true" in conf  # else twin documents wait ~40 ms for delayed ACKs


def test_nodegroups_put_each_node_in_its_group(tmp_path: Path) -> None:
    plan = Plan(tmp_path, load_or_choose_ports(tmp_path, well_known=False), examples=None)
    groups = list(yaml.safe_load_all(plan.nodegroups_manifest().read_text()))
    assert {(g["metadata"]["name"], tuple(g["spec"]["nodes"])) for g in groups} == {
        ("site-a", ("edge-1",)),
        ("site-b", ("edge-2",)),
    }


def test_examples_bring_the_node_groups(tmp_path: Path) -> None:
    plan = Plan(tmp_path, load_or_choose_ports(tmp_path, well_known=False), examples=REPO_EXAMPLES)
    assert ("NodeGroup", "site-a") in plan.examples_kinds()
    titles = [s.title for s in plan.steps(Supervisor(tmp_path))]
    assert titles[-2].startswith("examples from") and "node groups" not in titles
    assert titles[-1] == "thermostat-1 pointed at the simulator"
    assert "Modbus thermostat simulator on edge-2" in titles
    assert any(t.startswith("Modbus mapper on edge-2") for t in titles)  # "(Pod)" where Pods run
    plan.examples_marker.write_text("applied")
    titles = [s.title for s in plan.steps(Supervisor(tmp_path))]
    assert not any(t.startswith("examples") or t == "node groups" for t in titles)


def test_a_taken_port_is_named(tmp_path: Path) -> None:
    plan = Plan(tmp_path, load_or_choose_ports(tmp_path, well_known=False), examples=None)
    with socket.socket() as s:
        s.bind(("127.0.0.1", plan.ports.websocket))
        s.listen()
        with pytest.raises(PlanError, match=f"websocket {plan.ports.websocket}"):
            plan.check_ports()


def test_mappers_run_as_pods_only_where_they_can_and_say_why(tmp_path: Path) -> None:
    ports = load_or_choose_ports(tmp_path, well_known=False)
    plan = Plan(tmp_path, ports, examples=None, pods_unavailable=None)
    assert plan.mapper_mode()[0] == "pods"
    assert any("(Pod)" in s.title for s in plan.steps(Supervisor(tmp_path)))
    assert plan.dmi_socket("edge-1") == tmp_path / "nodes" / "edge-1" / "dmi" / "dmi.sock"
    chosen = Plan(tmp_path, ports, examples=None, pods_unavailable=None, mappers="processes")
    assert chosen.mapper_mode() == ("processes", "chosen with --mappers=processes")
    assert not any("(Pod)" in s.title for s in chosen.steps(Supervisor(tmp_path)))
    rootless = Plan(tmp_path, ports, examples=None, pods_unavailable="not root")
    mode, why = rootless.mapper_mode()
    assert mode == "processes" and "not root" in why
    with pytest.raises(PlanError, match=r"--mappers=pods: .*not root"):
        Plan(tmp_path, ports, examples=None, pods_unavailable="not root", mappers="pods").mapper_mode()
    # A node joined before the DMI socket had a directory of its own keeps it, and its mappers processes.
    plan.edgecore_config("edge-2").parent.mkdir(parents=True, exist_ok=True)
    old_socket = plan.node_dir("edge-2") / "dmi.sock"
    plan.edgecore_config("edge-2").write_text(yaml.safe_dump({"dmi": {"socket": str(old_socket)}}))
    assert plan.dmi_socket("edge-2") == old_socket
    mode, why = plan.mapper_mode()
    assert mode == "processes" and "edge-2" in why and "nodes/" in why


def test_mapper_pod_manifest_is_deploys_pinned_to_the_node(tmp_path: Path) -> None:
    from up import _mapperpods

    dmi = tmp_path / "nodes" / "edge-2" / "dmi"
    config, deploy = _mapperpods.manifests(
        _mapperpods.TEMPLATE, node="edge-2", driver="modbus", dmi_dir=dmi, rest_port=7999,
        config={"sinks": {"mqtt": {"username": "mapper", "password": "pw"}}}, secret=True,
        labels=_mapperpods.MANAGED,
    )  # fmt: skip
    assert config["kind"] == "Secret" and "data" not in config
    settings = yaml.safe_load(config["stringData"]["config.yaml"])
    assert settings["common"] == {"name": "modbus-mapper", "edgecore_sock": str(dmi / "dmi.sock")}
    assert settings["grpc_server"]["socket_path"] == str(dmi / "modbus-mapper.sock")
    assert settings["rest"]["port"] == 7999 and settings["sinks"]["mqtt"]["password"] == "pw"
    pod = deploy["spec"]["template"]["spec"]
    assert pod["nodeName"] == "edge-2" and pod["hostNetwork"] is True
    # Nodes of one machine share a hostname: bound by name, not by the template's hostname selector.
    assert pod["nodeSelector"] == {"node-role.kubernetes.io/edge": ""}
    c = pod["containers"][0]
    assert c["args"][:3] == ["mapper", "run", "modbus"] and c["readinessProbe"]["httpGet"]["port"] == 7999
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
    dmi_volume = next(n for n, v in volumes.items() if "hostPath" in v)
    assert volumes[dmi_volume]["hostPath"]["path"] == mounts[dmi_volume] == str(dmi)
    assert any(v.get("secret", {}).get("secretName") == "mapper-modbus-edge-2" for v in volumes.values())
    assert deploy["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "kubeshore-up"
    assert deploy["spec"]["selector"]["matchLabels"] == {"app.kubernetes.io/name": "mapper-modbus-edge-2"}
