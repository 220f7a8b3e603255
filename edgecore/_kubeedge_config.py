"""KubeEdge's own ``edgecore.yaml`` (``edgecore.config.kubeedge.io/v1alpha2``) in kubeshore's keys, so an
edge node migrating from KubeEdge keeps its configuration file.

What carries over: the node name (``modules.edged.hostnameOverride``), the cloud's addresses
(``modules.edgeHub.websocket.server``, ``httpServer``), the node certificate files and the join
``token`` (used when the certificate files are not there yet), heartbeat, handshake timeout and
certificate rotation, the database (a file of kubeshore's beside KubeEdge's), the DMI socket directory
(``modules.deviceTwin.dmiSockPath``), the external MQTT broker with its credentials and TLS
(``modules.eventBus``), the MetaServer address, edged (``enable``, ``rootDirectory``, and of
``tailoredKubeletConfig`` the CRI endpoint, cgroup driver and root, runtime request timeout and node status
frequencies).

What is named in the warning line: every other key that carries a value (a section with many such keys
once, with their number). A section switched off (``enable: false``) and empty values carry nothing and
are not named. What kubeshore cannot do at all (a websocket-less edgehub over QUIC, a database other
than SQLite) is an error naming the key.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath
from typing import Any

from kubeshore.config import ConfigError, Translated

API_VERSION = "edgecore.config.kubeedge.io/v1alpha2"

# Modules kubeshore's edgecore always runs: ``enable: false`` there cannot be honoured, so it is named.
_ALWAYS_ON = ("edgeHub", "metaManager", "deviceTwin", "eventBus")
# KubeEdge's external-broker mode; the others run a broker inside edgecore, which kubeshore does not.
_MQTT_EXTERNAL = 2
# A section with more ignored keys than this is named once, with their number (the kubelet's settings).
_MANY = 8
_GO_DURATION = re.compile(r"(\d+(?:\.\d+)?)(h|ms|us|µs|ns|m|s)")
_UNIT_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}


class _Reader:
    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc
        # edgecoreVersion is not a setting: KubeEdge's edgecore writes its own version there.
        self.used: set[str] = {"apiVersion", "kind", "edgecoreVersion"}
        self.out: dict[str, Any] = {}
        self.origin: dict[str, str] = {}

    def get(self, path: str, default: Any = None) -> Any:
        node: Any = self.doc
        for part in path.split("."):
            if not isinstance(node, dict) or part not in node:
                return default
            node = node[part]
        return node

    def take(self, path: str, to: str | None = None, convert: Any = None) -> Any:
        """The value at ``path`` (marked used); with ``to``, also set as kubeshore's key ``to``."""
        value = self.get(path)
        self.used.add(path)
        if to is not None:
            # Also when absent: "Field required" then names the KubeEdge key to set.
            self.origin[to] = path
        if value is None or value == "":
            return None
        if convert is not None:
            value = convert(value, path)
        if to is not None:
            node = self.out
            *parents, last = to.split(".")
            for part in parents:
                node = node.setdefault(part, {})
            node[last] = value
        return value

    def ignored(self) -> list[str]:
        names: list[str] = []
        self._walk(self.doc, "", names)
        return names

    def _walk(self, node: Any, prefix: str, names: list[str]) -> None:
        if prefix in self.used or _empty(node):
            return
        if not isinstance(node, dict):
            names.append(prefix)
            return
        if node.get("enable") is False and prefix not in {f"modules.{m}" for m in _ALWAYS_ON}:
            return
        if prefix and not any(u.startswith(prefix + ".") for u in self.used):
            names.append(prefix)
            return
        inner: list[str] = []
        for key, value in node.items():
            self._walk(value, f"{prefix}.{key}" if prefix else str(key), inner)
        children = prefix != "" and all("." not in n[len(prefix) + 1 :] for n in inner)
        names += [f"{prefix} ({len(inner)} other keys)"] if children and len(inner) > _MANY else inner


def _empty(value: Any) -> bool:
    return value is None or value == "" or value == [] or value == {}


def _host_port(value: Any, path: str) -> str:
    text = str(value)
    for scheme in ("https://", "wss://", "http://"):
        if text.startswith(scheme):
            text = text[len(scheme) :]
    return text.rstrip("/")


def _seconds(value: Any, path: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{path}: expected a number of seconds, got {value!r}")
    return float(value)


def _duration(value: Any, path: str) -> float:
    """A Go duration (``2m0s``, ``10s``, ``1h30m``) in seconds."""
    text = str(value)
    parts = _GO_DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ConfigError(f"{path}: {value!r} is not a duration such as 10s or 2m0s")
    return sum(float(n) * _UNIT_SECONDS[u] for n, u in parts)


def translate(doc: dict[str, Any]) -> Translated:
    """KubeEdge's edgecore.yaml as kubeshore's edgecore configuration (see the module's description)."""
    r = _Reader(doc)
    hub = "modules.edgeHub"
    for module in _ALWAYS_ON:
        if r.get(f"modules.{module}.enable") is not False:
            r.used.add(f"modules.{module}.enable")
    if r.get(f"{hub}.websocket.enable") is False:
        raise ConfigError(
            f"{hub}.websocket.enable: false is not supported: kubeshore's edgehub speaks websocket only "
            "(QUIC is not implemented)"
        )
    r.used.add(f"{hub}.websocket.enable")
    r.take("modules.edged.hostnameOverride", "nodeName")
    r.take(f"{hub}.websocket.server", "edgeHub.server")
    r.take(f"{hub}.httpServer", "edgeHub.httpsServer", _host_port)
    r.take(f"{hub}.heartbeat", "edgeHub.heartbeat", _seconds)
    r.take(f"{hub}.websocket.handshakeTimeout", "edgeHub.handshakeTimeout", _seconds)
    r.take(f"{hub}.rotateCertificates", "edgeHub.rotateCertificates")
    r.take(f"{hub}.token", "edgeHub.token")
    r.take(f"{hub}.tlsCaFile", "certs.caFile")
    r.take(f"{hub}.tlsCertFile", "certs.certFile")
    r.take(f"{hub}.tlsPrivateKeyFile", "certs.keyFile")

    driver = r.take("database.driverName")
    if driver is not None and driver != "sqlite3":
        raise ConfigError(f"database.driverName: {driver!r} is not supported (kubeshore stores in SQLite)")
    db = r.take("database.dataSource")
    if db is not None:
        # Beside KubeEdge's file, not in it: its tables have other columns under the same names
        # (device, device_twin, meta), and leaving it untouched lets the node go back to KubeEdge.
        # The edge store refills from the cloud.
        source = PurePosixPath(str(db))
        r.out["database"] = {
            "path": str(source.with_name(f"{source.stem}.kubeshore{source.suffix or '.db'}"))
        }
        r.out["dataDir"] = str(source.parent)
        r.origin.update({"database.path": "database.dataSource", "dataDir": "database.dataSource"})

    sock_dir = r.take("modules.deviceTwin.dmiSockPath")
    if sock_dir is not None:
        # KubeEdge names a directory; its edgecore listens on dmi.sock inside it.
        r.out["dmi"] = {"socket": str(PurePosixPath(str(sock_dir)) / "dmi.sock")}
        r.origin["dmi.socket"] = "modules.deviceTwin.dmiSockPath"

    bus = "modules.eventBus"
    mode = r.get(f"{bus}.mqttMode", _MQTT_EXTERNAL)
    if mode == _MQTT_EXTERNAL:
        r.used.update({f"{bus}.mqttMode", f"{bus}.mqttServerInternal", f"{bus}.mqttSessionQueueSize"})
    r.take(f"{bus}.mqttServerExternal", "eventBus.mqttUrl")
    r.take(f"{bus}.mqttUsername", "eventBus.mqttUsername")
    r.take(f"{bus}.mqttPassword", "eventBus.mqttPassword")
    tls = f"{bus}.eventBusTLS"
    if r.get(f"{tls}.enable"):
        for key in ("enable", "tlsMqttCAFile", "tlsMqttCertFile", "tlsMqttPrivateKeyFile"):
            r.take(f"{tls}.{key}", f"eventBus.eventBusTLS.{key}")
    else:
        # KubeEdge writes the TLS file paths even when TLS is off: nothing to carry, nothing to name.
        r.used.update(
            f"{tls}.{k}" for k in ("enable", "tlsMqttCAFile", "tlsMqttCertFile", "tlsMqttPrivateKeyFile")
        )

    edged = "modules.edged"
    kubelet = f"{edged}.tailoredKubeletConfig"
    if r.take(f"{edged}.enable", "edged.enable"):
        r.take(f"{edged}.rootDirectory", "edged.rootDirectory")
        r.take(f"{kubelet}.containerRuntimeEndpoint", "edged.tailoredKubeletConfig.containerRuntimeEndpoint")
        r.take(f"{kubelet}.cgroupDriver", "edged.tailoredKubeletConfig.cgroupDriver")
        r.take(f"{kubelet}.cgroupRoot", "edged.tailoredKubeletConfig.cgroupRoot")
        r.take(
            f"{kubelet}.runtimeRequestTimeout", "edged.tailoredKubeletConfig.runtimeRequestTimeout", _duration
        )
    # The kubelet's node status timings are edgecore's, edged on or off.
    r.take(f"{kubelet}.nodeStatusUpdateFrequency", "nodeStatusCheckPeriod", _duration)
    r.take(f"{kubelet}.nodeStatusReportFrequency", "nodeStatusReportPeriod", _duration)

    meta = "modules.metaManager.metaServer"
    enabled = r.take(f"{meta}.enable", "metaServer.enable")
    server = r.take(f"{meta}.server")
    if enabled and server is not None:
        host, _, port = str(server).rpartition(":")
        if not host or not port.isdigit():
            raise ConfigError(f"{meta}.server: {server!r} is not HOST:PORT")
        r.out["metaServer"].update(address=host, port=int(port))
        r.origin.update({"metaServer.address": f"{meta}.server", "metaServer.port": f"{meta}.server"})
    return Translated(data=r.out, ignored=r.ignored(), origin=r.origin)
