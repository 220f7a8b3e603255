"""edgecore's MQTT client (the eventbus) against a real mosquitto that requires credentials, applies the
ACL of docs/security.md and offers TLS with certificates from kubeshore's PKI."""

from __future__ import annotations

import asyncio
import logging
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from _peers import Mosquitto, free_port, wait_port

from edgecore.config import EventBusConfig
from edgecore.eventbus import MqttClient
from kubeshore import pki

TWIN = "$hw/events/device/default/lamp/twin/update"

# The ACL kubeshore ships for edge brokers (and docs/security.md shows).
ACL = Path(__file__).resolve().parents[2] / "deploy" / "mosquitto" / "kubeshore.acl"


class Broker:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.ca = pki.CertificateAuthority.create("mqtt-test-ca")
        cert, key = self.ca.issue("broker", server_names=["127.0.0.1", "localhost"], server=True)
        (tmp / "ca.crt").write_bytes(pki.cert_to_pem(self.ca.cert))
        (tmp / "broker.crt").write_bytes(pki.cert_to_pem(cert))
        pki.write_private(tmp / "broker.key", pki.key_to_pem(key))
        pw = tmp / "passwd"
        for i, (user, password) in enumerate(
            (("edgecore", "e-pass"), ("mapper", "m-pass"), ("app", "a-pass"))
        ):
            flags = ["-c"] if i == 0 else []
            subprocess.run(["mosquitto_passwd", *flags, "-b", str(pw), user, password], check=True)
        (tmp / "acl").write_bytes(ACL.read_bytes())
        self.tls_port = free_port()
        self.mosquitto = Mosquitto(
            free_port(),
            tmp,
            settings=(
                f"allow_anonymous false\npassword_file {pw}\nacl_file {tmp / 'acl'}\n"
                f"listener {self.tls_port} 127.0.0.1\ncafile {tmp / 'ca.crt'}\n"
                f"certfile {tmp / 'broker.crt'}\nkeyfile {tmp / 'broker.key'}\n"
            ),
        )
        self.mosquitto.start()
        wait_port(self.tls_port)

    @property
    def url(self) -> str:
        return f"tcp://127.0.0.1:{self.mosquitto.port}"


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    b = Broker(tmp_path_factory.mktemp("broker"))
    yield b
    b.mosquitto.stop()


async def _eventually(check: object, within: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not check():  # type: ignore[operator]
        assert asyncio.get_running_loop().time() < deadline, "not reached in time"
        await asyncio.sleep(0.02)


async def test_client_without_or_with_wrong_credentials_is_refused(
    broker: Broker, caplog: pytest.LogCaptureFixture
) -> None:
    for username, password in ((None, None), ("edgecore", "wrong")):
        caplog.clear()
        c = MqttClient(broker.url, "intruder", username=username, password=password, max_backoff=0.2)
        with caplog.at_level(logging.WARNING):
            await c.start()
            try:
                await _eventually(lambda: "refused the connection" in caplog.text)
                assert not c.connected
            finally:
                await c.stop()
        assert "not authorized" in caplog.text or "bad user name or password" in caplog.text
        assert "wrong" not in caplog.text  # the password is never logged


async def test_acl_lets_only_edgecore_and_mappers_write_twin_topics(broker: Broker) -> None:
    got: list[tuple[str, bytes]] = []
    edge = MqttClient(broker.url, "edgecore-n", username="edgecore", password="e-pass")
    edge.subscribe("$hw/events/device/+/+/twin/update", lambda t, p: got.append((t, p)))
    app = MqttClient(broker.url, "app", username="app", password="a-pass")
    mapper = MqttClient(broker.url, "mapper", username="mapper", password="m-pass")
    for c in (edge, app, mapper):
        await c.start()
    try:
        for c in (edge, app, mapper):
            await asyncio.wait_for(c.wait_connected(), 10)
        await asyncio.sleep(0.2)  # the SUBSCRIBE is in
        assert app.publish(TWIN, b'{"from":"app"}', qos=1)
        assert mapper.publish(TWIN, b'{"from":"mapper"}', qos=1)
        await _eventually(lambda: any(b"mapper" in p for _, p in got))
        await asyncio.sleep(0.3)
        assert [p for _, p in got] == [b'{"from":"mapper"}']
    finally:
        for c in (edge, app, mapper):
            await c.stop()


async def test_tls_with_our_pki(broker: Broker, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    got: list[bytes] = []
    tls = pki.client_tls_context(broker.tmp / "ca.crt")
    url = f"tcp://127.0.0.1:{broker.tls_port}"
    c = MqttClient(url, "tls-edge", username="edgecore", password="e-pass", tls=tls)
    c.subscribe(TWIN, lambda t, p: got.append(p))
    await c.start()
    try:
        await asyncio.wait_for(c.wait_connected(), 10)
        await asyncio.sleep(0.2)
        assert c.publish(TWIN, b"over-tls", qos=1)
        await _eventually(lambda: got == [b"over-tls"])
    finally:
        await c.stop()

    # A server certificate from another CA is refused by the client.
    other = pki.CertificateAuthority.create("other")
    (tmp_path / "other.crt").write_bytes(pki.cert_to_pem(other.cert))
    wrong = MqttClient(
        url,
        "tls-wrong",
        username="edgecore",
        password="e-pass",
        tls=pki.client_tls_context(tmp_path / "other.crt"),
    )
    with caplog.at_level(logging.WARNING):
        await wrong.start()
        try:
            await _eventually(lambda: "CERTIFICATE_VERIFY_FAILED" in caplog.text)
            assert not wrong.connected
        finally:
            await wrong.stop()


def test_kubeedge_eventbus_settings_parse() -> None:
    bus = EventBusConfig.model_validate(
        {
            "mqttUrl": "tcp://127.0.0.1:8883",
            "mqttUsername": "edgecore",
            "mqttPassword": "e-pass",
            "eventBusTLS": {
                "enable": True,
                "tlsMqttCAFile": "/ca.crt",
                "tlsMqttCertFile": "/c",
                "tlsMqttPrivateKeyFile": "/k",
            },
        }
    )
    assert bus.event_bus_tls.enable and bus.event_bus_tls.tls_mqtt_ca_file == Path("/ca.crt")
    assert bus.mqtt_username == "edgecore" and "e-pass" not in repr(bus)


async def test_mapper_sdk_mqtt_sink_with_credentials_and_tls(broker: Broker) -> None:
    from mappers.sdk._types import MqttPush, Reading
    from mappers.sdk.config import MqttSinkConfig
    from mappers.sdk.sinks import SinkHub

    got: list[bytes] = []
    edge = MqttClient(broker.url, "edgecore-s", username="edgecore", password="e-pass")
    edge.subscribe(TWIN, lambda t, p: got.append(p))
    await edge.start()
    await asyncio.wait_for(edge.wait_connected(), 10)
    await asyncio.sleep(0.2)
    settings = MqttSinkConfig.model_validate(
        {
            "username": "mapper",
            "password": "m-pass",
            "tls": {"enable": True, "ca_file": str(broker.tmp / "ca.crt")},
        }
    )
    hubs = {"with": SinkHub(mqtt=settings), "without": SinkHub()}
    try:
        for name, hub in hubs.items():
            reading = Reading("default", "lamp", name, "1", "int", 1)
            hub.push(MqttPush(f"tcp://127.0.0.1:{broker.tls_port}", TWIN, qos=1), reading)
        await _eventually(lambda: len(got) >= 1)
        await asyncio.sleep(0.5)
        assert len(got) == 1 and b'"propertyName": "with"' in got[0], got
        assert [s.up for s in hubs["without"].sinks()] == [False]
    finally:
        for hub in hubs.values():
            await hub.close()
        await edge.stop()


def test_kubeedge_edgecore_yaml_eventbus_credentials_and_tls_carry_over() -> None:
    from edgecore._kubeedge_config import translate

    bus = {
        "mqttServerExternal": "tcp://127.0.0.1:8883",
        "mqttUsername": "edgecore",
        "mqttPassword": "e-pass",
        "eventBusTLS": {"enable": True, "tlsMqttCAFile": "/etc/kubeedge/ca/rootCA.crt"},
    }
    off = {**bus, "eventBusTLS": {"enable": False, "tlsMqttCAFile": "/etc/kubeedge/ca/rootCA.crt"}}
    for source, tls in ((bus, True), (off, False)):
        done = translate({"modules": {"eventBus": source}})
        got = EventBusConfig.model_validate(done.data["eventBus"])
        assert (got.mqtt_username, got.mqtt_password, got.event_bus_tls.enable) == ("edgecore", "e-pass", tls)
        assert not [k for k in done.ignored if "eventBus" in k], done.ignored
    assert got.event_bus_tls.tls_mqtt_ca_file is None  # TLS off: its files are not carried
