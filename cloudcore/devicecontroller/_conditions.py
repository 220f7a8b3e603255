"""The conditions of a Device: why it reports, or why it is silent.

``ModelFound`` is decided here (the cloud has the models); ``MapperAvailable`` and
``DesiredApplied`` come from the edge, which alone sees its mappers (in the ``conditions`` of its
``state/update`` messages); ``Reporting`` sums them up with the node's readiness and the state the
mapper reports. The first failing cause wins, in the order a user would fix them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from crds import DeviceConditionType as C
from kubeshore.events import now_rfc3339

ONLINE = frozenset({"online", "ok"})

# Reasons (also the reasons of the Events recorded when a condition turns False).
MODEL_NOT_FOUND = "ModelNotFound"
NODE_NOT_READY = "NodeNotReady"
NO_NODE = "NoNode"
DEVICE_UNREACHABLE = "DeviceUnreachable"
NO_REPORT = "NoReport"


@dataclass(frozen=True)
class Cond:
    type: str
    status: str  # "True" | "False" | "Unknown"
    reason: str
    message: str

    def to_json(self, last_transition: str) -> dict[str, Any]:
        return {
            "type": self.type,
            "status": self.status,
            "reason": self.reason,
            "message": self.message,
            "lastTransitionTime": last_transition,
        }


def parse_edge_conditions(raw: Any) -> dict[str, Cond]:
    """The conditions an edge node reported (ignoring what is not one of them)."""
    out: dict[str, Cond] = {}
    if not isinstance(raw, list):
        return out
    for item in raw:
        if not isinstance(item, dict):
            continue
        ctype, status = item.get("type"), item.get("status")
        if ctype not in (C.MAPPER_AVAILABLE, C.DESIRED_APPLIED) or status not in ("True", "False", "Unknown"):
            continue
        out[str(ctype)] = Cond(
            str(ctype), str(status), str(item.get("reason") or ""), str(item.get("message") or "")
        )
    return out


def device_conditions(
    *,
    namespace: str,
    model: str,
    model_found: bool,
    node: str,
    node_ready: bool | None,
    state: str | None,
    edge: dict[str, Cond],
) -> list[Cond]:
    """``node_ready`` None: the Node object is not known (yet)."""
    out = []
    if model_found:
        out.append(Cond(C.MODEL_FOUND, "True", "ModelFound", f"DeviceModel {namespace}/{model}"))
    else:
        out.append(
            Cond(
                C.MODEL_FOUND,
                "False",
                MODEL_NOT_FOUND,
                f"DeviceModel {namespace}/{model} does not exist; the device is given to no mapper "
                "and reports nothing until it does",
            )
        )
    mapper = edge.get(C.MAPPER_AVAILABLE)
    if mapper is not None:
        out.append(mapper)
    desired = edge.get(C.DESIRED_APPLIED)
    if desired is not None:
        out.append(desired)
    out.append(_reporting(namespace, model, model_found, node, node_ready, state, mapper))
    return out


def _reporting(
    namespace: str,
    model: str,
    model_found: bool,
    node: str,
    node_ready: bool | None,
    state: str | None,
    mapper: Cond | None,
) -> Cond:
    def no(reason: str, message: str) -> Cond:
        return Cond(C.REPORTING, "False", reason, message)

    if not node:
        return no(NO_NODE, "spec.nodeName is empty: the device is bound to no edge node")
    if node_ready is False:
        return no(NODE_NOT_READY, f"node {node} is not ready: the device's state is unknown")
    if not model_found:
        return no(MODEL_NOT_FOUND, f"DeviceModel {namespace}/{model} does not exist")
    if mapper is not None and mapper.status == "False":
        return no(mapper.reason, mapper.message)
    if state in ONLINE:
        return Cond(C.REPORTING, "True", "Online", f"the mapper reports the device {state}")
    if state:
        return no(DEVICE_UNREACHABLE, f"the mapper reports the device {state}")
    return no(NO_REPORT, f"no state reported yet from node {node}")


def render(conds: list[Cond], previous: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """Conditions as JSON, keeping each one's lastTransitionTime while its status stays the same."""
    before = {c.get("type"): c for c in previous or [] if isinstance(c, dict)}
    now = now_rfc3339()
    out = []
    for cond in conds:
        old = before.get(cond.type)
        same = old is not None and old.get("status") == cond.status
        out.append(cond.to_json(str(old.get("lastTransitionTime")) if same and old else now))
    return out


def same(a: list[dict[str, Any]] | None, b: list[dict[str, Any]] | None) -> bool:
    """Equal but for lastTransitionTime."""

    def strip(conds: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
        return [{k: v for k, v in c.items() if k != "lastTransitionTime"} for c in conds or []]

    return strip(a) == strip(b)
