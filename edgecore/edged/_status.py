"""A Pod's status as the kubelet reports it, computed from what the runtime shows.

Pure functions: the pod worker gathers the observations (containers of the current sandbox, probe
verdicts, reasons a container cannot start) and these turn them into ``status``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from cri.v1 import api_pb2 as cri

Obj = dict[str, Any]

RUNTIME_PREFIX = "containerd://"


def rfc3339(ns: int) -> str | None:
    if ns <= 0:
        return None
    return dt.datetime.fromtimestamp(ns / 1e9, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Observed:
    """What the pod worker saw of one container (init or regular)."""

    name: str
    image: str
    current: cri.ContainerStatus | None = None  # newest instance
    previous: cri.ContainerStatus | None = None  # the one before it, for lastState
    waiting: tuple[str, str] | None = None  # (reason, message) while it cannot run
    ready: bool = False
    started: bool = False


@dataclass
class PodObservation:
    pod: Obj
    host_ip: str
    pod_ip: str = ""
    start_time: str | None = None
    init: list[Observed] = field(default_factory=list)
    containers: list[Observed] = field(default_factory=list)
    sandbox_error: tuple[str, str] | None = None
    init_failed: bool = False
    terminal: str | None = None  # "Succeeded" | "Failed" once the pod will not run again


def _terminated(s: cri.ContainerStatus) -> Obj:
    out: Obj = {"exitCode": s.exit_code, "reason": s.reason or ("Completed" if s.exit_code == 0 else "Error")}
    if s.message:
        out["message"] = s.message
    if t := rfc3339(s.started_at):
        out["startedAt"] = t
    if t := rfc3339(s.finished_at):
        out["finishedAt"] = t
    out["containerID"] = RUNTIME_PREFIX + s.id
    return out


def container_status(o: Observed) -> Obj:
    out: Obj = {"name": o.name, "image": o.image, "imageID": "", "ready": False, "restartCount": 0}
    cur = o.current
    if cur is not None:
        out["restartCount"] = cur.metadata.attempt
        out["containerID"] = RUNTIME_PREFIX + cur.id
        out["imageID"] = cur.image_ref
    if o.waiting is not None:
        reason, message = o.waiting
        out["state"] = {"waiting": {"reason": reason, **({"message": message} if message else {})}}
        if cur is not None and cur.state == cri.CONTAINER_EXITED:
            out["lastState"] = {"terminated": _terminated(cur)}
    elif cur is None or cur.state in (cri.CONTAINER_CREATED, cri.CONTAINER_UNKNOWN):
        out["state"] = {"waiting": {"reason": "ContainerCreating"}}
    elif cur.state == cri.CONTAINER_RUNNING:
        out["state"] = {"running": {"startedAt": rfc3339(cur.started_at)}}
        out["ready"] = o.ready
        out["started"] = o.started
    else:
        out["state"] = {"terminated": _terminated(cur)}
        out["started"] = False
    if "lastState" not in out:
        prev = o.previous
        out["lastState"] = {"terminated": _terminated(prev)} if prev is not None else {}
    return out


def _condition(kind: str, ok: bool, reason: str = "", message: str = "") -> Obj:
    c: Obj = {"type": kind, "status": "True" if ok else "False", "lastProbeTime": None}
    if reason:
        c["reason"] = reason
    if message:
        c["message"] = message
    return c


def _qos(pod: Obj) -> str:
    containers = (pod.get("spec") or {}).get("containers") or []
    requests_any = False
    guaranteed = True
    for c in containers:
        res = c.get("resources") or {}
        lim, req = res.get("limits") or {}, res.get("requests") or {}
        if lim or req:
            requests_any = True
        for r in ("cpu", "memory"):
            if r not in lim or req.get(r, lim.get(r)) != lim.get(r):
                guaranteed = False
    if not requests_any:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


def pod_status(o: PodObservation, previous: Obj | None = None) -> Obj:
    """``status`` of the Pod; conditions keep their lastTransitionTime while their status holds."""
    init_statuses = [container_status(c) for c in o.init]
    statuses = [container_status(c) for c in o.containers]
    init_done = all(
        c.current is not None and c.current.state == cri.CONTAINER_EXITED and c.current.exit_code == 0
        for c in o.init
    )
    all_ready = bool(o.containers) and all(s.get("ready") for s in statuses)
    ever_started = all(c.current is not None for c in o.containers)
    phase = "Pending"
    if o.terminal:
        phase = o.terminal
    elif o.init_failed:
        phase = "Failed"
    elif init_done and ever_started and o.sandbox_error is None:
        phase = "Running"
    unready = [s["name"] for s in statuses if not s.get("ready")]
    unready_msg = f"containers with unready status: [{' '.join(unready)}]" if unready else ""
    conditions = [
        _condition("PodReadyToStartContainers", o.sandbox_error is None and bool(o.pod_ip or o.host_ip)),
        _condition(
            "Initialized",
            init_done,
            "" if init_done else "ContainersNotInitialized",
            ""
            if init_done
            else "containers with incomplete status: [{}]".format(
                " ".join(c.name for c in o.init if not (c.current and c.current.exit_code == 0))
            ),
        ),
        _condition(
            "Ready", all_ready and phase == "Running", "" if all_ready else "ContainersNotReady", unready_msg
        ),
        _condition("ContainersReady", all_ready, "" if all_ready else "ContainersNotReady", unready_msg),
        _condition("PodScheduled", True),
    ]
    before = {c.get("type"): c for c in (previous or {}).get("conditions") or []}
    stamp = now()
    for c in conditions:
        old = before.get(c["type"])
        c["lastTransitionTime"] = (
            old.get("lastTransitionTime") if old and old.get("status") == c["status"] else stamp
        )
    status: Obj = {
        "phase": phase,
        "conditions": conditions,
        "hostIP": o.host_ip,
        "hostIPs": [{"ip": o.host_ip}] if o.host_ip else [],
        "containerStatuses": statuses,
        "qosClass": _qos(o.pod),
    }
    if o.init:
        status["initContainerStatuses"] = init_statuses
    if o.pod_ip:
        status["podIP"] = o.pod_ip
        status["podIPs"] = [{"ip": o.pod_ip}]
    if o.start_time:
        status["startTime"] = o.start_time
    if o.sandbox_error is not None:
        status["reason"], status["message"] = o.sandbox_error
    return status


def status_patch(uid: str, status: Obj) -> Obj:
    """The strategic merge patch that makes the API's Pod status ``status``: a condition's reason or
    message that no longer applies, and a pod-level one from a sandbox error now gone, are sent as null
    (deleted), as the kubelet's two-way patch does; leaving them out would keep the stale text under a
    status that changed (``Ready True`` still saying "containers with unready status")."""
    out = dict(status)
    for key in ("reason", "message"):
        out.setdefault(key, None)
    out["conditions"] = [{**{"reason": None, "message": None}, **c} for c in status.get("conditions") or []]
    return {"metadata": {"uid": uid}, "status": out}


def without_times(status: Obj) -> Obj:
    """The status without probe/transition stamps, to decide whether anything changed."""
    out = dict(status)
    out["conditions"] = [
        {k: v for k, v in c.items() if k != "lastTransitionTime"} for c in status.get("conditions") or []
    ]
    return out
