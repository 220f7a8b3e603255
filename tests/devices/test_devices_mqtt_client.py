"""edgecore's own MQTT 3.1.1 client against real mosquitto, with paho-mqtt as an independent peer."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from _peers import Mosquitto, free_port
from paho.mqtt.enums import CallbackAPIVersion

from edgecore.eventbus import MqttClient
from kubeshore.mqtt._client import MAX_UNACKED
from kubeshore.mqtt._packets import remaining_length, split_packets
from kubeshore.mqtt._topics import encode_topic_filter, encode_topic_name, topic_matches

LOG = "kubeshore.mqtt._client"


class PahoPeer:
    """A paho-mqtt client in its own network thread; messages land in an asyncio queue."""

    def __init__(self, url: str, client_id: str) -> None:
        self._loop = asyncio.get_running_loop()
        host, port = url.removeprefix("tcp://").split(":")
        self.got: asyncio.Queue[tuple[str, bytes, int]] = asyncio.Queue()
        self._subacked = threading.Event()
        self._connected = threading.Event()
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv311)
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *_a: self._subacked.set()
        self.client.on_connect = lambda *_a: self._connected.set()
        self.client.connect(host, int(port))
        self.client.loop_start()

    def _on_message(self, _c: Any, _u: Any, msg: Any) -> None:
        self._loop.call_soon_threadsafe(self.got.put_nowait, (msg.topic, bytes(msg.payload), msg.qos))

    async def wait_connected(self) -> None:
        assert await asyncio.to_thread(self._connected.wait, 5)

    async def subscribe(self, topic_filter: str, qos: int = 1) -> None:
        await self.wait_connected()
        self._subacked.clear()
        self.client.subscribe(topic_filter, qos=qos)
        assert await asyncio.to_thread(self._subacked.wait, 5)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
async def peer(broker_url: str) -> AsyncIterator[PahoPeer]:
    p = PahoPeer(broker_url, "paho-peer")
    try:
        yield p
    finally:
        p.close()


@pytest.fixture
async def ours(broker_url: str) -> AsyncIterator[MqttClient]:
    c = MqttClient(broker_url, "ours")
    await c.start()
    await asyncio.wait_for(c.wait_connected(), 5)
    try:
        yield c
    finally:
        await c.stop()


@contextlib.contextmanager
def broker_with(config: str = "allow_anonymous true\n", port: int | None = None) -> Iterator[Mosquitto]:
    """mosquitto that a test may kill -9, stop (SIGSTOP) and start again on the same port."""
    with tempfile.TemporaryDirectory(prefix="mosq-") as tmp:
        broker = Mosquitto(port or free_port(), Path(tmp))
        broker.conf.write_text(f"listener {broker.port} 127.0.0.1\n{config}")
        try:
            broker.start()
            yield broker
        finally:
            if broker.proc is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(broker.proc.pid, signal.SIGCONT)
            broker.stop()


async def eventually(condition: Any, seconds: float = 5.0) -> None:
    for _ in range(int(seconds / 0.05)):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not met in time")


def queue_collector() -> tuple[asyncio.Queue[tuple[str, bytes]], Any]:
    got: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue()
    return got, lambda t, p: got.put_nowait((t, p))


async def settle() -> None:
    """Give a SUBSCRIBE time to reach the broker (our client has no SUBACK wait in its API)."""
    await asyncio.sleep(0.2)


# ---- codec and topics (no broker) -----------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "encoded"),
    [
        (0, b"\x00"),
        (127, b"\x7f"),
        (128, b"\x80\x01"),
        (16_383, b"\xff\x7f"),
        (16_384, b"\x80\x80\x01"),
        (2_097_151, b"\xff\xff\x7f"),
        (2_097_152, b"\x80\x80\x80\x01"),
        (268_435_455, b"\xff\xff\xff\x7f"),
    ],
)
def test_remaining_length_matches_the_spec_table(n: int, encoded: bytes) -> None:
    assert remaining_length(n) == encoded


def test_split_packets_at_every_boundary() -> None:
    packets = [b"\xd0\x00", b"\x30" + remaining_length(200) + bytes(200), b"\x40\x02\x00\x07"]
    stream = b"".join(packets)
    for cut in range(len(stream) + 1):
        got: list[bytes] = []
        rest = bytearray(stream[:cut])
        for more in (b"", stream[cut:]):
            rest += more
            pos = 0
            for first, _start, end in split_packets(rest):
                assert first == rest[pos]
                got.append(bytes(rest[pos:end]))
                pos = end
            del rest[:pos]
        assert got == packets, cut


MATCHES = [
    ("sport/tennis/player1/#", "sport/tennis/player1", True),
    ("sport/tennis/player1/#", "sport/tennis/player1/ranking", True),
    ("sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", True),
    ("sport/#", "sport", True),
    ("#", "sport/tennis", True),
    ("#", "/leading", True),
    ("sport/tennis/+", "sport/tennis/player1", True),
    ("sport/tennis/+", "sport/tennis/player1/ranking", False),
    ("sport/+", "sport", False),
    ("sport/+", "sport/", True),
    ("+/+", "/finance", True),
    ("/+", "/finance", True),
    ("+", "/finance", False),
    ("a/+/c", "a//c", True),
    ("a/b", "a/b/c", False),
    ("a/b/c", "a/b", False),
    ("A/b", "a/b", False),
    # $ topics: wildcards at the first level never match them, named levels do
    ("#", "$SYS/broker/load", False),
    ("+/monitor/Clients", "$SYS/monitor/Clients", False),
    ("$SYS/#", "$SYS/", True),
    ("$SYS/monitor/+", "$SYS/monitor/Clients", True),
    ("+/events/device/a/b/twin/get", "$hw/events/device/a/b/twin/get", False),
    ("#", "$hw/events/device/default/d1/twin/update", False),
    ("$hw/#", "$hw/events/device/default/d1/twin/update", True),
    ("$hw/events/device/+/+/twin/+", "$hw/events/device/default/d1/twin/update", True),
    ("$hw/events/device/+/+/twin/+", "$hw/events/device/default/d1/twin/update/result", False),
    ("$hw/events/device/+/+/twin/+", "$hw/events/device/default/twin/update", False),
    ("$hw/events/device/+/+/state/update", "$hw/events/device/ns/dev/state/update", True),
    ("$hw/events/node/+/membership/get", "$hw/events/node/edge1/membership/get", True),
    ("$hw/events/node/+/membership/get", "$hw/events/node/edge1/membership/get/result", False),
]


@pytest.mark.parametrize(("topic_filter", "topic", "expected"), MATCHES)
def test_topic_matching(topic_filter: str, topic: str, expected: bool) -> None:
    assert topic_matches(topic_filter, topic) is expected


@pytest.mark.parametrize(
    ("topic", "words"),
    [
        ("", "must not be empty"),
        ("a/+/c", "wildcards"),
        ("a/#", "wildcards"),
        ("a\x00b", "NUL"),
        ("x" * 65_536, "65536 bytes"),
        ("é" * 32_768, "65536 bytes"),
    ],
)
def test_publish_rejects_bad_topics(topic: str, words: str) -> None:
    c = MqttClient("tcp://127.0.0.1:1", "v")
    with pytest.raises(ValueError, match=words):
        c.publish(topic, b"x")
    assert encode_topic_name("x" * 65_535)


@pytest.mark.parametrize(
    ("topic_filter", "words"),
    [
        ("", "must not be empty"),
        ("a/#/b", "whole last level"),
        ("a#", "whole last level"),
        ("a+/b", "must be a whole level"),
    ],
)
def test_subscribe_rejects_bad_filters(topic_filter: str, words: str) -> None:
    c = MqttClient("tcp://127.0.0.1:1", "v")
    with pytest.raises(ValueError, match=words):
        c.subscribe(topic_filter, lambda _t, _p: None)
    assert encode_topic_filter("+/a/+/#")


def test_other_bad_input() -> None:
    c = MqttClient("tcp://127.0.0.1:1", "v")
    with pytest.raises(ValueError, match="QoS 2"):
        c.publish("a", b"x", qos=2)
    with pytest.raises(TypeError, match="bytes or str"):
        c.publish("a", 5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="keepalive"):
        MqttClient("tcp://127.0.0.1:1", "v", keepalive=70_000)
    with pytest.raises(ValueError, match="scheme"):
        MqttClient("ws://127.0.0.1:1", "v")


# ---- against mosquitto ----------------------------------------------------------------------


async def test_paho_receives_what_we_publish(ours: MqttClient, peer: PahoPeer) -> None:
    await peer.subscribe("$hw/events/device/+/+/twin/+", qos=1)
    assert ours.publish("$hw/events/device/default/d1/twin/update", b"zero")
    assert ours.publish("$hw/events/device/default/d1/twin/get", "one", qos=1)
    assert await asyncio.wait_for(peer.got.get(), 5) == (
        "$hw/events/device/default/d1/twin/update",
        b"zero",
        0,
    )
    assert await asyncio.wait_for(peer.got.get(), 5) == ("$hw/events/device/default/d1/twin/get", b"one", 1)


async def test_we_receive_what_paho_publishes(ours: MqttClient, peer: PahoPeer) -> None:
    got, collect = queue_collector()
    ours.subscribe("$hw/events/device/+/+/twin/+", collect)
    await settle()
    await peer.wait_connected()
    peer.client.publish("$hw/events/device/ns/dev/twin/update", b"q0", qos=0)
    peer.client.publish("$hw/events/device/ns/dev/twin/update/result", b"not for us", qos=1)
    peer.client.publish("$hw/events/device/ns/dev/twin/get", b"q1", qos=1).wait_for_publish(5)
    assert await asyncio.wait_for(got.get(), 5) == ("$hw/events/device/ns/dev/twin/update", b"q0")
    assert await asyncio.wait_for(got.get(), 5) == ("$hw/events/device/ns/dev/twin/get", b"q1")
    # paho's QoS 1 publish completed, so the broker had our PUBACK chain working; nothing else came
    await asyncio.sleep(0.1)
    assert got.empty()


# Payload sizes around the remaining-length boundaries, both as given and so that the whole
# remaining length (2 + len("t") + payload, + 2 for the packet id of QoS 1) sits exactly on them.
SIZES = sorted({0, 127, 128, 16_383, 16_384, 1 << 20} | {b - 3 for b in (127, 128, 16_383, 16_384)})


@pytest.mark.parametrize("qos", [0, 1])
async def test_payload_sizes_both_ways(ours: MqttClient, peer: PahoPeer, qos: int) -> None:
    got, collect = queue_collector()
    ours.subscribe("t", collect)
    await peer.subscribe("t", qos=1)
    payloads = [bytes(i % 251 for i in range(size)) for size in SIZES]
    for payload in payloads:
        assert ours.publish("t", payload, qos=qos)
    for payload in payloads:
        assert (await asyncio.wait_for(got.get(), 10))[1] == payload
        assert (await asyncio.wait_for(peer.got.get(), 10))[1] == payload
    for payload in payloads:
        peer.client.publish("t", payload, qos=qos)
    for payload in payloads:
        assert (await asyncio.wait_for(got.get(), 10))[1] == payload
        await asyncio.wait_for(peer.got.get(), 10)


async def test_handler_failure_does_not_stop_the_others(
    ours: MqttClient, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[str] = []

    def slow_and_broken(_t: str, _p: bytes) -> None:
        calls.append("broken")
        time.sleep(0.02)
        raise RuntimeError("handler bug")

    got, collect = queue_collector()
    ours.subscribe("a/#", slow_and_broken)
    ours.subscribe("a/+", collect)
    ours.subscribe("a/b", collect)
    await settle()
    for i in range(5):
        ours.publish("a/b", str(i))
    received = [await asyncio.wait_for(got.get(), 5) for _ in range(10)]
    assert sorted(p for _t, p in received) == sorted([str(i).encode() for i in range(5)] * 2)
    assert calls == ["broken"] * 5
    failures = [r for r in caplog.records if "handler for a/# failed on a/b" in r.getMessage()]
    assert len(failures) == 5 and failures[0].exc_info is not None
    assert ours.connected


async def test_stop_leaves_no_tasks(broker_url: str) -> None:
    before = asyncio.all_tasks()
    c = MqttClient(broker_url, "stopper", keepalive=1)
    c.subscribe("x/#", lambda _t, _p: None)
    await c.start()
    await asyncio.wait_for(c.wait_connected(), 5)
    c.publish("x/y", b"1", qos=1)
    await c.stop()
    assert not c.connected
    assert asyncio.all_tasks() == before
    # Also while it is between reconnect attempts to a broker that is not there.
    away = MqttClient(f"tcp://127.0.0.1:{free_port()}", "away")
    await away.start()
    await asyncio.sleep(0.2)
    await away.stop()
    assert asyncio.all_tasks() == before


async def test_qos1_survives_a_broker_kill_and_restart(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, LOG)
    with broker_with() as broker:
        c = MqttClient(broker.url, "survivor", max_backoff=0.2)
        got, collect = queue_collector()
        c.subscribe("q/#", collect)
        await c.start()
        try:
            await asyncio.wait_for(c.wait_connected(), 5)
            await settle()
            sent: list[bytes] = []

            def publish(count: int) -> None:
                for _ in range(count):
                    sent.append(str(len(sent)).encode())
                    assert c.publish(f"q/{len(sent) % 7}", sent[-1], qos=1)

            async def receive_all() -> None:
                async with asyncio.timeout(10):
                    while received != set(sent):
                        received.add((await got.get())[1])

            received: set[bytes] = set()
            publish(150)
            # Everything so far has gone round; otherwise a message the broker acknowledged and
            # died before delivering would be lost by the broker (no persistence), not the client.
            await receive_all()
            publish(50)  # still in the client's buffer: never reaches the dying broker
            broker.stop()  # kill -9
            await eventually(lambda: not c.connected)
            assert not c.publish("q/x", b"qos 0 is dropped")
            publish(100)  # while the broker is away
            broker.start()
            await asyncio.wait_for(c.wait_connected(), 10)
            await receive_all()
            reconnects = [r for r in caplog.records if r.getMessage().startswith("connected to MQTT")]
            assert len(reconnects) == 2
            assert "(1 subscriptions, " in reconnects[1].getMessage()
            resent = int(reconnects[1].getMessage().split(", ")[1].split()[0])
            assert resent >= 150  # those in flight at the kill and those published while away
        finally:
            await c.stop()


async def test_broker_away_qos0_dropped_qos1_delivered_later() -> None:
    port = free_port()
    c = MqttClient(f"tcp://127.0.0.1:{port}", "late", max_backoff=0.3)
    got, collect = queue_collector()
    c.subscribe("late/#", collect)
    assert not c.publish("late/x", b"lost")
    assert c.publish("late/0", b"0", qos=1)  # before start
    await c.start()  # nothing listens yet: the client keeps trying
    try:
        await asyncio.sleep(0.3)
        assert not c.connected
        assert not c.publish("late/x", b"lost")
        assert c.publish("late/1", b"1", qos=1)  # while reconnecting
        with broker_with(port=port) as broker:
            peer = PahoPeer(broker.url, "late-peer")
            try:
                await peer.subscribe("late/#")
                await asyncio.wait_for(c.wait_connected(), 10)
                # Our own subscription is restored before the queued messages go out, so they
                # reach us whatever the timing; the peer sees them if it subscribed in time.
                assert [await asyncio.wait_for(got.get(), 5) for _ in range(2)] == [
                    ("late/0", b"0"),
                    ("late/1", b"1"),
                ]
                assert c.publish("late/2", b"2", qos=1)
                async with asyncio.timeout(5):
                    while (msg := await peer.got.get())[0] != "late/2":
                        assert msg[0] in ("late/0", "late/1")
            finally:
                peer.close()
        await asyncio.sleep(0.1)
        assert got.get_nowait() == ("late/2", b"2")
    finally:
        await c.stop()


def test_qos1_queue_is_capped(caplog: pytest.LogCaptureFixture) -> None:
    c = MqttClient("tcp://127.0.0.1:1", "capped")
    for i in range(MAX_UNACKED):
        assert c.publish("cap", str(i), qos=1)
    assert not c.publish("cap", b"one too many", qos=1)
    assert any("dropped 1 new ones" in r.getMessage() for r in caplog.records)


async def test_keepalive_keeps_an_idle_connection(caplog: pytest.LogCaptureFixture, tmp_path: Path) -> None:
    caplog.set_level(logging.INFO, LOG)
    broker_log = tmp_path / "mosquitto.log"
    # user root: mosquitto started as root would switch to a user that cannot write in tmp_path
    config = f"allow_anonymous true\nuser root\nlog_dest file {broker_log}\nlog_type all\n"
    with broker_with(config) as broker:
        c = MqttClient(broker.url, "idle", keepalive=1)
        got, collect = queue_collector()
        c.subscribe("idle", collect)
        await c.start()
        try:
            await asyncio.wait_for(c.wait_connected(), 5)
            for _ in range(6):  # three keepalive intervals without a message either way
                await asyncio.sleep(0.5)
                assert c.connected
            assert c.publish("idle", b"still here")
            assert await asyncio.wait_for(got.get(), 5) == ("idle", b"still here")
            assert sum(r.getMessage().startswith("connected to MQTT") for r in caplog.records) == 1
            # every keepalive/2 while idle, each answered
            assert broker_log.read_text().count("Received PINGREQ from idle") >= 4
        finally:
            await c.stop()


async def test_missing_pingresp_means_connection_lost(caplog: pytest.LogCaptureFixture) -> None:
    with broker_with() as broker:
        c = MqttClient(broker.url, "pinger", keepalive=1, max_backoff=0.2)
        await c.start()
        try:
            await asyncio.wait_for(c.wait_connected(), 5)
            assert broker.proc is not None
            os.kill(broker.proc.pid, signal.SIGSTOP)  # the TCP connection stays, the broker is silent
            await eventually(lambda: not c.connected)
            assert any("no PINGRESP" in r.getMessage() for r in caplog.records)
            os.kill(broker.proc.pid, signal.SIGCONT)
            await asyncio.wait_for(c.wait_connected(), 10)
        finally:
            await c.stop()


async def test_qos0_dropped_while_the_broker_does_not_read() -> None:
    with broker_with() as broker:
        c = MqttClient(broker.url, "flooder")
        await c.start()
        try:
            await asyncio.wait_for(c.wait_connected(), 5)
            assert broker.proc is not None
            os.kill(broker.proc.pid, signal.SIGSTOP)
            chunk = bytes(64 << 10)
            accepted = 0
            for _ in range(2000):  # 128 MiB: far beyond socket buffers plus the 4 MiB limit
                if not c.publish("flood", chunk):
                    break
                accepted += 1
                await asyncio.sleep(0)
            assert 60 < accepted < 2000
            assert c.connected
            os.kill(broker.proc.pid, signal.SIGCONT)
            await eventually(lambda: c.publish("flood", b"again"))
            assert c.connected
        finally:
            await c.stop()


async def test_refused_connection_is_logged_with_its_meaning(caplog: pytest.LogCaptureFixture) -> None:
    with broker_with("allow_anonymous false\n") as broker:
        c = MqttClient(broker.url, "nobody")
        await c.start()
        try:
            await eventually(lambda: any("refused the connection" in r.getMessage() for r in caplog.records))
            assert any("code 5, not authorized" in r.getMessage() for r in caplog.records)
            assert not c.connected
        finally:
            await c.stop()


async def test_suback_failure_names_the_filter(caplog: pytest.LogCaptureFixture) -> None:
    """mosquitto never refuses a 3.1.1 subscription, so a scripted broker answers SUBACK 0x80."""
    subscribed = asyncio.Event()

    async def broker(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        first, length = await reader.readexactly(2)  # CONNECT (short: a one-byte length)
        assert first == 0x10
        await reader.readexactly(length)
        writer.write(b"\x20\x02\x00\x00")
        first, length = await reader.readexactly(2)
        assert first == 0x82
        body = await reader.readexactly(length)
        writer.write(b"\x90\x04" + body[:2] + b"\x01\x80")
        subscribed.set()
        await reader.read()
        writer.close()

    server = await asyncio.start_server(broker, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    c = MqttClient(f"tcp://127.0.0.1:{port}", "subs")
    c.subscribe("fine/#", lambda _t, _p: None)
    c.subscribe("refused/+", lambda _t, _p: None)
    await c.start()
    try:
        await asyncio.wait_for(subscribed.wait(), 5)
        await asyncio.sleep(0.1)
        refused = [r.getMessage() for r in caplog.records if "refused the subscription" in r.getMessage()]
        assert refused == ["MQTT broker refused the subscription to 'refused/+'"]
    finally:
        await c.stop()
        server.close()
        await server.wait_closed()


# ---- limits: what a broker (or an app through it) may make the client hold ----------------------


async def test_oversized_messages_are_skipped_acknowledged_and_the_next_arrives(
    ours: MqttClient, peer: PahoPeer, caplog: pytest.LogCaptureFixture
) -> None:
    """An app publishes messages over the client's limit: each is skipped as it streams in (never
    buffered whole), QoS 1 ones are acknowledged (else mosquitto's 20 in-flight slots would fill and
    stop all delivery), and the next message arrives."""
    caplog.set_level(logging.WARNING, LOG)
    ours.max_packet = 64 * 1024
    got, collect = queue_collector()
    ours.subscribe("lim/#", collect)
    await asyncio.sleep(0.3)  # the SUBSCRIBE reached the broker
    await peer.wait_connected()
    big = bytes(300_000)
    for i in range(30):
        peer.client.publish("lim/big", big, qos=1 if i % 3 else 0)
    peer.client.publish("lim/next", b"small", qos=1)
    topic, payload = await asyncio.wait_for(got.get(), 20)
    assert (topic, payload) == ("lim/next", b"small")
    assert got.empty()
    assert "dropped a message of 300009 bytes on 'lim/big' from the broker" in caplog.text
    conn = ours._conn
    assert conn is not None and len(conn._inbuf) < 64 * 1024


class HostileBroker:
    """A TCP server that accepts CONNECT, answers CONNACK, then sends ``then`` and counts what it gets."""

    def __init__(self, then: bytes = b"", *, read: bool = True) -> None:
        self.then = then
        self.read = read
        self.connections = 0
        self.received = bytearray()
        self.writers: list[asyncio.StreamWriter] = []
        self.server: asyncio.Server | None = None
        self.port = 0

    async def __aenter__(self) -> HostileBroker:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        for w in self.writers:
            w.close()
        self.server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.writers.append(writer)
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            await reader.readexactly(2)  # CONNECT's fixed header; its body comes with the rest
            writer.write(b"\x20\x02\x00\x00" + self.then)
            while self.read and (chunk := await reader.read(1 << 16)):
                self.received += chunk

    def publishes(self) -> int:
        """QoS 1 PUBLISH packets received (after the CONNECT)."""
        return sum(1 for first, _, _ in split_packets(bytes(self.received)) if first >> 4 == 3)


@pytest.mark.parametrize(
    ("garbage", "reason"),
    [
        (b"\xf0\x00", "unexpected packet type 15"),
        (b"\x90\xff\xff\xff\x7f", "packet type 9 of 268435455 bytes"),  # not buffered: refused at once
        (b"\x30\xff\xff\xff\xff\x01", "remaining length longer than four bytes"),
        (b"\x36\x05\x00\x01t\x00\x01", "PUBLISH with QoS 3"),
        (b"\x30\x05\x00\x09abc", "PUBLISH topic runs past the packet"),
    ],
    ids=["reserved-type", "huge-suback", "long-length", "qos3", "bad-topic"],
)
async def test_garbage_from_the_broker_is_a_clear_error(
    garbage: bytes, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, LOG)
    async with HostileBroker(garbage) as broker:
        client = MqttClient(f"tcp://127.0.0.1:{broker.port}", "victim", max_backoff=0.2)
        await client.start()
        try:
            deadline = time.monotonic() + 10
            while broker.connections < 2 and time.monotonic() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
            assert broker.connections >= 2, "the client did not reconnect"
        finally:
            await client.stop()
    assert f"MQTT broker connection lost: protocol error from the broker: {reason}" in caplog.text


async def test_inflight_and_queued_qos1_messages_are_bounded() -> None:
    async with HostileBroker() as broker:  # reads everything, acknowledges nothing
        client = MqttClient(f"tcp://127.0.0.1:{broker.port}", "publisher")
        await client.start()
        try:
            await asyncio.wait_for(client.wait_connected(), 5)
            for i in range(300):
                assert client.publish("q", f"m{i}".encode(), qos=1)
            deadline = time.monotonic() + 10
            while broker.publishes() < 100 and time.monotonic() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.3)
            assert broker.publishes() == 100  # MAX_INFLIGHT; the other 200 wait their turn
            # Bytes are bounded too, not only the count: 16 MiB of 1 MiB messages, then refusals.
            accepted = sum(client.publish("q", bytes(1 << 20), qos=1) for _ in range(40))
            assert 14 <= accepted <= 16
            # Acknowledging 10 lets exactly 10 more go out, the oldest first.
            assert broker.writers
            broker.writers[0].write(b"".join(b"\x40\x02" + i.to_bytes(2, "big") for i in range(1, 11)))
            deadline = time.monotonic() + 10
            while broker.publishes() < 110 and time.monotonic() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.3)
            assert broker.publishes() == 110
        finally:
            await client.stop()


async def test_qos0_burst_in_one_loop_iteration_is_bounded(ours: MqttClient) -> None:
    """Publishing without ever yielding to the loop cannot queue more than the write limit (4 MiB)."""
    payload = bytes(1024)
    accepted = sum(ours.publish("burst", payload) for _ in range(20_000))  # 20 MiB offered at once
    assert 3_000 < accepted < 5_000
    await asyncio.sleep(0.5)  # flushed: publishing works again
    assert ours.publish("burst", payload)
