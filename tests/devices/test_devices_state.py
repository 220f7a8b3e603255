"""Honest device state, as pure rules: lastOnlineTime, what goes to the cloud, and Reporting's reason."""

from __future__ import annotations

from cloudcore.devicecontroller import _conditions as conds
from edgecore.devicetwin._state import Device, apply_state


def _device() -> Device:
    return Device("default/d1", "default", "d1", {"metadata": {"name": "d1"}, "spec": {}})


def test_the_same_state_again_refreshes_last_online_but_is_sent_only_after_a_while() -> None:
    dev = _device()
    assert apply_state(dev, "online") and dev.state_version == 1
    first = dev.last_online
    assert first.endswith("Z")
    for _ in range(5):  # a mapper reporting every cycle
        apply_state(dev, "online")
    assert dev.state_version == 1  # nothing new for the cloud yet
    dev.online_refreshed -= 61  # a minute later the cloud hears lastOnlineTime again
    apply_state(dev, "online")
    assert dev.state_version == 2
    apply_state(dev, "offline")  # a change goes at once; lastOnlineTime stays the last online report
    assert dev.state_version == 3 and dev.last_online >= first
    assert not apply_state(dev, "sleeping")


def test_reporting_names_the_first_cause_a_user_would_fix() -> None:
    def reason(**kw: object) -> str:
        args: dict[str, object] = {
            "namespace": "default", "model": "m", "model_found": True, "node": "edge-1",
            "node_ready": True, "state": "online", "edge": {},
        }  # fmt: skip
        args.update(kw)
        found = conds.device_conditions(**args)  # type: ignore[arg-type]
        return next(c.reason for c in found if c.type == "Reporting")

    no_mapper = conds.Cond("MapperAvailable", "False", "NoMapper", "no mapper for protocol x")
    assert reason() == "Online"
    assert reason(node="") == "NoNode"
    assert reason(node_ready=False, model_found=False) == "NodeNotReady"
    assert reason(model_found=False, edge={"MapperAvailable": no_mapper}) == "ModelNotFound"
    assert reason(edge={"MapperAvailable": no_mapper}, state=None) == "NoMapper"
    assert reason(state="offline") == "DeviceUnreachable"
    assert reason(state=None) == "NoReport"
    rendered = conds.render([conds.Cond("Reporting", "True", "Online", "")], None)
    again = conds.render([conds.Cond("Reporting", "True", "Online", "x")], rendered)
    assert again[0]["lastTransitionTime"] == rendered[0]["lastTransitionTime"]
