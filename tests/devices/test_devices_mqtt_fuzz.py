"""Fuzzing the MQTT client's receive path (``kubeshore.mqtt``): what a broker sends, valid or mutated,
cut into random pieces. Deterministic seeds, a few seconds.

Valid streams (packets written here from the MQTT 3.1.1 spec, not with the client's own encoder) must
deliver the same messages and acknowledgements however they are cut, with packets over ``max_packet``
skipped and still acknowledged; mutated streams must end, if at all, in the client's protocol error,
never in another exception, and never make it buffer more than one packet's worth.
"""

from __future__ import annotations

import asyncio
import random

from kubeshore.mqtt import MqttClient
from kubeshore.mqtt._client import _Connection

MAX_PACKET = 4096


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        n, digit = divmod(n, 128)
        out.append(digit | (0x80 if n else 0))
        if not n:
            return bytes(out)


def publish(topic: str, payload: bytes, qos: int, packet_id: int) -> bytes:
    body = len(topic.encode()).to_bytes(2, "big") + topic.encode()
    if qos:
        body += packet_id.to_bytes(2, "big")
    body += payload
    return bytes([0x30 | qos << 1]) + varint(len(body)) + body


class Wire(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.out = bytearray()
        self.aborted = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.out += data

    def abort(self) -> None:
        self.aborted = True

    def close(self) -> None:
        self.aborted = True

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


def remaining_length(packet: bytes) -> int:
    n, shift, i = 0, 0, 1
    while True:
        n |= (packet[i] & 0x7F) << shift
        if packet[i] < 0x80:
            return n
        i += 1
        shift += 7


def broker_stream(rng: random.Random) -> tuple[bytes, list[tuple[str, bytes]], list[int]]:
    """(bytes, messages a subscriber to everything gets, packet ids it must acknowledge, in order)."""
    data = bytearray(b"\x20\x02\x00\x00")  # CONNACK, accepted
    expected: list[tuple[str, bytes]] = []
    acks: list[int] = []
    for i in range(rng.randint(1, 25)):
        what = rng.random()
        if what < 0.7:
            topic = "t/" + "".join(rng.choice("abcxyz/é") for _ in range(rng.randint(1, 30)))
            payload = rng.randbytes(
                rng.choice((0, 1, 127, 128, 3000, MAX_PACKET - 40, MAX_PACKET + 1, 20_000))
            )
            qos = rng.randint(0, 1)
            packet = publish(topic, payload, qos, i + 1)
            data += packet
            if remaining_length(packet) <= MAX_PACKET:
                expected.append((topic, payload))
            if qos:
                acks.append(i + 1)  # oversized ones too: skipped, but acknowledged
        elif what < 0.8:
            data += b"\x40\x02" + rng.randint(1, 65535).to_bytes(2, "big")  # PUBACK
        elif what < 0.9:
            data += b"\xd0\x00"  # PINGRESP
        else:
            data += b"\x90\x03" + rng.randint(1, 65535).to_bytes(2, "big") + b"\x01"  # SUBACK
    return bytes(data), expected, acks


def receive(data: bytes, cuts: list[int]) -> tuple[_Connection, Wire, list[tuple[str, bytes]], int]:
    """Feed a broker stream to a client connection; (connection, wire, delivered, most bytes buffered)."""
    client = MqttClient("tcp://127.0.0.1:1", "fuzz")
    client.max_packet = MAX_PACKET
    got: list[tuple[str, bytes]] = []
    client.subscribe("#", lambda topic, payload: got.append((topic, payload)))
    conn = _Connection(client, asyncio.get_running_loop())
    wire = Wire()
    conn.connection_made(wire)
    most = 0
    start = 0
    for cut in [*cuts, len(data)]:
        conn.data_received(data[start:cut])
        conn.flush()
        most = max(most, len(conn._inbuf))
        start = cut
        if wire.aborted:
            break
    return conn, wire, got, most


def pubacks(out: bytes) -> list[int]:
    assert len(out) % 4 == 0 and all(out[i : i + 2] == b"\x40\x02" for i in range(0, len(out), 4)), out[:40]
    return [int.from_bytes(out[i + 2 : i + 4], "big") for i in range(0, len(out), 4)]


async def test_valid_streams_in_any_pieces() -> None:
    rng = random.Random(311)
    for _ in range(300):
        data, expected, acks = broker_stream(rng)
        cuts = sorted(rng.sample(range(1, len(data)), min(len(data) - 1, rng.randint(0, 40))))
        _, wire, got, most = receive(data, cuts)
        assert not wire.aborted
        assert got == expected
        assert pubacks(bytes(wire.out)) == acks
        assert most <= MAX_PACKET + 5


async def test_mutated_streams_end_in_a_protocol_error_or_nothing() -> None:
    rng = random.Random(3111)
    for _ in range(600):
        data, _, _ = broker_stream(rng)
        mutated = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            what = rng.random()
            at = rng.randrange(4, len(mutated)) if len(mutated) > 4 else 4
            if what < 0.5 and at < len(mutated):
                mutated[at] = rng.randrange(256)
            elif what < 0.8:
                mutated[at:at] = rng.randbytes(rng.randint(1, 8))
            else:
                del mutated[at : at + rng.randint(1, 8)]
        cuts = sorted(rng.sample(range(1, len(mutated)), min(len(mutated) - 1, rng.randint(0, 10))))
        conn, wire, _, most = receive(bytes(mutated), cuts)
        if wire.aborted:
            assert conn.lost_reason.startswith("protocol error from the broker: "), conn.lost_reason
        # At most one packet's worth, or the start of an oversized PUBLISH up to its packet identifier.
        assert most <= MAX_PACKET + 5 + 2 + 65_535 + 2
